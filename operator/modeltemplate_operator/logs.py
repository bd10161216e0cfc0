"""Log lines of the gateway and the forwarder: one JSON object per line (as the operator
writes them: ``timestamp``, ``severity``, ``logger``, ``message``), or plain text."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson

__all__ = ["FORMATS", "JsonFormatter", "configure"]

FORMATS = ("json", "text")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "severity": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure(level: str, log_format: str = "json") -> None:
    """The root logger at ``level``, writing ``log_format`` lines to stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
