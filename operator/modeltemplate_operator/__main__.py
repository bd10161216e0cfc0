"""``python -m modeltemplate_operator`` runs the operator against $KUBECONFIG (or in-cluster).

Settings: environment variables with the ``MODELTEMPLATE_`` prefix (see config.py).
``--standalone`` skips peering (a single replica for development and tests).
``--metrics-port`` (``MODELTEMPLATE_METRICS_PORT``) serves Prometheus metrics (metrics.py).
``--log-level`` (``MODELTEMPLATE_LOG_LEVEL``): debug, info (default), warning or error. At info,
Kopf's line per handled event ("Handler '...' succeeded.") is left out (debug shows it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import sys

import kopf

from .controller import allocator, kopfadapt, metrics
from .plan.config import ConfigError, OperatorConfig

PEERING_NAME = "modeltemplate-operator"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_LEVEL_ENV = "MODELTEMPLATE_LOG_LEVEL"


def peering_priority() -> int:
    """Kopf pauses every replica when peers share a priority: each process draws its own.

    The live replica with the highest priority acts; the others wait and take over when it
    leaves. ``MODELTEMPLATE_PEERING_PRIORITY`` pins it (e.g. to prefer one replica).
    """
    pinned = os.environ.get("MODELTEMPLATE_PEERING_PRIORITY")
    return int(pinned) if pinned else random.SystemRandom().randint(1, 2**31 - 1)


def configure_logging(level: str, log_format: str) -> None:
    """Kopf's log handler and format at ``level``; Kopf's per-event lines only at debug."""
    kopf.configure(
        verbose=level == "debug",
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.PLAIN,
    )
    logging.getLogger().setLevel(level.upper())
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    kopfadapt.per_event_logs_at_debug()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modeltemplate-operator", description=__doc__)
    parser.add_argument("--standalone", action="store_true", help="no peering with other replicas")
    parser.add_argument("--verbose", action="store_true", help="the same as --log-level=debug")
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        type=str.lower,
        default=(os.environ.get(LOG_LEVEL_ENV) or "info").lower(),
        help=f"debug, info, warning or error (env {LOG_LEVEL_ENV}; default info). At info "
        "Kopf's line per handled event is left out",
    )
    parser.add_argument(
        "--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get(metrics.PORT_ENV) or 0),
        help=f"serve Prometheus /metrics on this port (0: off; env {metrics.PORT_ENV})",
    )
    args = parser.parse_args(argv)
    if args.log_level not in LOG_LEVELS:  # from the environment
        parser.error(f"{LOG_LEVEL_ENV}={args.log_level}: must be one of {', '.join(LOG_LEVELS)}")
    level = "debug" if args.verbose else args.log_level
    try:
        config = OperatorConfig.load()
    except (ConfigError, OSError) as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    allocator.limit_arenas()  # before any thread starts
    configure_logging(level, config.log_format)
    kopfadapt.install()  # any object decodes; a restart's wait for the indices is linear
    from .controller import handlers  # noqa: F401 - registers the handlers

    metrics.serve(args.metrics_port)

    asyncio.run(
        kopf.operator(
            clusterwide=config.namespace is None,
            namespaces=[config.namespace] if config.namespace else [],
            standalone=args.standalone,
            peering_name=None if args.standalone else PEERING_NAME,
            priority=peering_priority(),
            liveness_endpoint=args.liveness,
            memo=kopf.Memo(config=config),  # the handlers' one copy of the settings
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
