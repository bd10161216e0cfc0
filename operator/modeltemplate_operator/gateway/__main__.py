"""``modeltemplate-gateway``: serve the SGP model template API (FastAPI on uvicorn).

Settings (flag, or environment variable with the ``MODELTEMPLATE_GATEWAY_`` prefix):

==========================  ================================  ==========================
flag                        environment variable              default
==========================  ================================  ==========================
``--host``                  MODELTEMPLATE_GATEWAY_HOST        0.0.0.0
``--port``                  MODELTEMPLATE_GATEWAY_PORT        8000
``--kubeconfig``            KUBECONFIG                        in-cluster, else ~/.kube/config
``--access-ttl``            MODELTEMPLATE_GATEWAY_ACCESS_TTL  10 (seconds an access review is reused)
``--log-level``             MODELTEMPLATE_GATEWAY_LOG_LEVEL   info
``--log-format``            MODELTEMPLATE_GATEWAY_LOG_FORMAT  json (or text)
``--broker-url``            MODELTEMPLATE_BROKER_URL          none (no async task routes)
(env only)                  MODELTEMPLATE_BROKER_PASSWORD     none
``--result-ttl-seconds``    MODELTEMPLATE_BROKER_RESULT_TTL_SECONDS  86400
``--endpoint-addresses``    MODELTEMPLATE_GATEWAY_ENDPOINT_ADDRESSES  none (cluster DNS)
==========================  ================================  ==========================

``--endpoint-addresses``: a JSON file ``{"<namespace>/<name>": "http://host:port"}`` of
endpoints reached elsewhere than their Service's DNS name — for control planes whose pods run
nothing (the local one's fake nodes); a cluster leaves it unset.

The broker settings are the operator's (the same variables): the task routes
``/v1/async-tasks`` enqueue to ASYNC endpoints' queues there.

The kubeconfig (or the pod's ServiceAccount) is the gateway's own identity, used only for the
watch cache: it needs ``list`` and ``watch`` on modeltemplates, nothing else.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import uvicorn

from .. import logs
from .app import create_app
from .endpoints import Endpoints
from .kubeapi import KubeAPI, load_configuration
from .routers.tasks import Broker
from .server import SERVER_SETTINGS

ENV = "MODELTEMPLATE_GATEWAY_"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="modeltemplate-gateway", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default=env(ENV + "HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(env(ENV + "PORT", "8000")))
    parser.add_argument("--kubeconfig", default=env("KUBECONFIG"))
    parser.add_argument("--access-ttl", type=float, default=float(env(ENV + "ACCESS_TTL", "10")))
    parser.add_argument("--log-level", default=env(ENV + "LOG_LEVEL", "info"))
    parser.add_argument(
        "--log-format", choices=logs.FORMATS, default=env(ENV + "LOG_FORMAT", "json")
    )
    parser.add_argument("--broker-url", default=env("MODELTEMPLATE_BROKER_URL", ""))
    parser.add_argument(
        "--result-ttl-seconds",
        type=int,
        default=int(env("MODELTEMPLATE_BROKER_RESULT_TTL_SECONDS", "86400")),
    )
    parser.add_argument("--endpoint-addresses", default=env(ENV + "ENDPOINT_ADDRESSES") or None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    kubeconfig = args.kubeconfig.split(os.pathsep)[0] if args.kubeconfig else None
    broker = None
    if args.broker_url:
        broker = Broker.connect(
            args.broker_url,
            os.environ.get("MODELTEMPLATE_BROKER_PASSWORD"),
            args.result_ttl_seconds,
        )
    app = create_app(
        KubeAPI(load_configuration(kubeconfig)),
        access_ttl=args.access_ttl,
        broker=broker,
        endpoints=Endpoints(args.endpoint_addresses),
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level.lower(),
        log_config=None,  # uvicorn's lines in the gateway's format
        access_log=False,
        timeout_graceful_shutdown=10,
        **SERVER_SETTINGS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
