"""``modeltemplate-forwarder`` console script."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from .. import contract as c
from .. import logs
from .app import Forwarder
from .config import ConfigError, parse_config
from .memory import fix_mmap_threshold


def _runner(choice: str):
    """The event loop to run on: uvloop when asked, or on ``auto`` when it is installed."""
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ConfigError("--event-loop uvloop: uvloop is not installed") from None
        else:
            return uvloop.run
    return asyncio.run


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = parse_config(argv)
        run = _runner(config.event_loop)
    except ConfigError as exc:
        print(f"modeltemplate-forwarder: {exc}", file=sys.stderr)
        return 2
    logs.configure(config.log_level, config.log_format)
    fix_mmap_threshold()  # large bodies in their own mappings: grown without copies, freed at once
    if config.mode == c.MODE_ASYNC:
        from .asyncmode import AsyncForwarder

        server = AsyncForwarder(config)
    else:
        server = Forwarder(config)
    try:
        run(server.serve_forever())
    except OSError as exc:
        logging.getLogger("modeltemplate_operator.forwarder").error("cannot serve: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
