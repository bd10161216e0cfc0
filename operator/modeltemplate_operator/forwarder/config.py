"""Forwarder configuration: command-line flags with matching ``FORWARDER_*`` environment variables.

Precedence: an explicit flag wins over the environment variable, which wins over the default.
Every flag ``--some-name`` has the environment variable ``FORWARDER_SOME_NAME``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .. import contract as c
from .params import ParameterSchema, load_schema
from .routes import PROTOCOLS

ENV_PREFIX = "FORWARDER_"


class ConfigError(ValueError):
    """A flag or environment variable has an unusable value."""


@dataclass(frozen=True)
class Config:
    host: str = "0.0.0.0"
    port: int = c.FORWARDER_PORT
    upstream: str = f"http://127.0.0.1:{c.MAIN_PORT}"
    predict_route: str = "/predict"
    streaming_predict_route: str = "/generate_streaming"
    healthcheck_route: str = "/readyz"
    protocol: str = "SGP"
    per_worker: int = 10
    request_parameters_schema: ParameterSchema = field(default_factory=ParameterSchema)
    concurrency_wait_seconds: float = 1.0
    retry_after_seconds: int = 1
    grace_period_seconds: float = 580.0
    shutdown_delay_seconds: float = 5.0
    upstream_timeout_seconds: float = 600.0
    upstream_connect_timeout_seconds: float = 5.0
    upstream_keepalive_seconds: float = 4.0
    health_timeout_seconds: float = 2.0
    health_cache_seconds: float = 0.5
    max_body_bytes: int = 16 * 1024 * 1024
    max_buffered_bytes: int = 32 * 1024 * 1024
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 10.0
    body_deadline_seconds: float = 60.0
    keepalive_timeout_seconds: float = 3630.0
    event_loop: str = "auto"
    access_log: bool = False
    log_level: str = "INFO"
    log_format: str = "json"
    mode: str = c.MODE_SYNC
    broker_url: str = ""
    broker_password: str = ""
    queue: str = ""
    result_ttl_seconds: int = 86400
    visibility_timeout_seconds: float = 60.0
    consumer_name: str = ""


# (flag name, Config field, type, help). The env var is FORWARDER_ + flag upper-cased.
_FLAGS: list[tuple[str, str, str, str]] = [
    ("host", "host", "str", "address to listen on"),
    (c.PORT_FLAG, "port", "int", f"port to listen on (the Service targets {c.FORWARDER_PORT})"),
    (c.UPSTREAM_FLAG, "upstream", "url", "base URL of the model container"),
    (c.PREDICT_ROUTE_FLAG, "predict_route", "route", "upstream route behind POST /predict"),
    (
        c.STREAMING_PREDICT_ROUTE_FLAG,
        "streaming_predict_route",
        "route",
        "upstream route behind POST /stream",
    ),
    (c.HEALTHCHECK_ROUTE_FLAG, "healthcheck_route", "route", "upstream route /readyz checks"),
    (c.PROTOCOL_FLAG, "protocol", "protocol", "endpoint protocol: SGP, COHERE or VLLM"),
    (c.PER_WORKER_FLAG, "per_worker", "posint", "max requests in flight to the upstream"),
    (
        c.REQUEST_PARAMETERS_SCHEMA_FLAG,
        "request_parameters_schema",
        "schema",
        "modelRequestParametersSchema as JSON, or a path to a JSON file",
    ),
    (
        "concurrency-wait-seconds",
        "concurrency_wait_seconds",
        "nonneg",
        "how long a request waits for a free slot before 429",
    ),
    ("retry-after-seconds", "retry_after_seconds", "nonnegint", "Retry-After sent with 429"),
    (
        "grace-period-seconds",
        "grace_period_seconds",
        "nonneg",
        "on SIGTERM, how long in-flight requests may take to finish",
    ),
    (
        c.SHUTDOWN_DELAY_FLAG,
        "shutdown_delay_seconds",
        "nonneg",
        "on SIGTERM, how long to keep accepting (readiness already 503) before closing the "
        "listener and draining",
    ),
    (
        "upstream-timeout-seconds",
        "upstream_timeout_seconds",
        "pos",
        "max wait for the upstream's headers or its next body bytes (then 504)",
    ),
    (
        "upstream-connect-timeout-seconds",
        "upstream_connect_timeout_seconds",
        "pos",
        "max wait to connect to the upstream (then 503)",
    ),
    (
        "upstream-keepalive-seconds",
        "upstream_keepalive_seconds",
        "nonneg",
        "idle upstream connections are closed after this (keep it below the upstream's own)",
    ),
    ("health-timeout-seconds", "health_timeout_seconds", "pos", "timeout of the upstream check"),
    (
        "health-cache-seconds",
        "health_cache_seconds",
        "nonneg",
        "reuse an upstream health result for this long",
    ),
    ("max-body-bytes", "max_body_bytes", "posint", "largest request body accepted (then 413)"),
    (
        "max-buffered-bytes",
        "max_buffered_bytes",
        "posint",
        "request body bytes held at once across all requests (then 503 with Retry-After)",
    ),
    (
        "header-timeout-seconds",
        "header_timeout_seconds",
        "pos",
        "a client has this long for its request head, from connecting or from the first byte "
        "of the next request (then the connection is closed)",
    ),
    (
        "body-timeout-seconds",
        "body_timeout_seconds",
        "pos",
        "longest silence between request body bytes (then 408 and the connection is closed)",
    ),
    (
        "body-deadline-seconds",
        "body_deadline_seconds",
        "pos",
        "the whole request body must arrive within this, however it drips (then 408 and the "
        "connection is closed)",
    ),
    (
        "keepalive-timeout-seconds",
        "keepalive_timeout_seconds",
        "pos",
        "an idle kept-alive client connection is closed after this",
    ),
    ("event-loop", "event_loop", "loop", "auto (uvloop when installed), asyncio or uvloop"),
    ("access-log", "access_log", "bool", "log every request"),
    ("log-level", "log_level", "str", "DEBUG, INFO, WARNING, ERROR"),
    ("log-format", "log_format", "logformat", "json (one object per line) or text"),
    (c.MODE_FLAG, "mode", "mode", "sync (HTTP in front of main) or async (consume the task queue)"),
    (c.BROKER_URL_FLAG, "broker_url", "broker", "async: the broker, redis://host:port[/db]"),
    ("broker-password", "broker_password", "str", "async: the broker's password (use the env var)"),
    (c.QUEUE_FLAG, "queue", "str", "async: the endpoint's task queue (a Redis Stream)"),
    (c.RESULT_TTL_FLAG, "result_ttl_seconds", "posint", "async: how long results are kept"),
    (
        c.VISIBILITY_TIMEOUT_FLAG,
        "visibility_timeout_seconds",
        "pos",
        "async: a task held this long by a forwarder that stopped renewing it is taken again",
    ),
    ("consumer-name", "consumer_name", "str", "async: consumer name (default: host name + pid)"),
]


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.upper().replace("-", "_")


def _convert(kind: str, name: str, raw: str):
    try:
        if kind == "str":
            return raw
        if kind == "logformat":
            if raw not in ("json", "text"):
                raise ValueError("must be json or text")
            return raw
        if kind == "int":
            return int(raw)
        if kind in ("posint", "nonnegint"):
            value = int(raw)
            if value < (1 if kind == "posint" else 0):
                raise ValueError(f"must be {'> 0' if kind == 'posint' else '>= 0'}")
            return value
        if kind in ("pos", "nonneg"):
            value = float(raw)
            if value < 0 or (kind == "pos" and value == 0):
                raise ValueError(f"must be {'> 0' if kind == 'pos' else '>= 0'}")
            return value
        if kind == "bool":
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
            raise ValueError("must be true or false")
        if kind == "route":
            if not raw.startswith("/"):
                raise ValueError("must start with '/'")
            return raw
        if kind == "url":
            parts = urlsplit(raw)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("must be an http(s) URL such as http://127.0.0.1:5005")
            return raw.rstrip("/")
        if kind == "protocol":
            value = raw.strip().upper()
            if value not in PROTOCOLS:
                raise ValueError(f"must be one of {', '.join(sorted(PROTOCOLS))}")
            return value
        if kind == "loop":
            value = raw.strip().lower()
            if value not in ("auto", "asyncio", "uvloop"):
                raise ValueError("must be auto, asyncio or uvloop")
            return value
        if kind == "schema":
            return load_schema(raw)
        if kind == "mode":
            value = raw.strip().lower()
            if value not in (c.MODE_SYNC, c.MODE_ASYNC):
                raise ValueError(f"must be {c.MODE_SYNC} or {c.MODE_ASYNC}")
            return value
        if kind == "broker":
            parts = urlsplit(raw)
            if parts.scheme not in ("redis", "rediss") or not parts.hostname:
                raise ValueError("must be a redis:// or rediss:// URL such as redis://redis:6379")
            return raw
    except ValueError as exc:
        raise ConfigError(f"--{name} / {env_name(name)}: {exc}") from None
    raise AssertionError(kind)


def build_parser() -> argparse.ArgumentParser:
    defaults = Config()
    parser = argparse.ArgumentParser(
        prog="modeltemplate-forwarder",
        description=(
            "HTTP forwarder sidecar of a Launch-style model pod. Every flag can also be set by "
            f"the environment variable {ENV_PREFIX}<FLAG_NAME> (e.g. {ENV_PREFIX}PORT); "
            "a flag wins over the variable."
        ),
    )
    for name, attr, kind, help_text in _FLAGS:
        default = getattr(defaults, attr)
        if kind == "schema" or attr == "broker_password":
            shown = "none"
        else:
            shown = default
        parser.add_argument(
            f"--{name}",
            dest=attr,
            default=None,
            metavar=name.replace("-", "_").upper() if kind != "bool" else "BOOL",
            help=f"{help_text} [env {env_name(name)}; default {shown}]",
        )
    return parser


def parse_config(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Build a Config from flags (``argv``) and ``environ`` (default: ``os.environ``)."""
    environ = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    values = {}
    for name, attr, kind, _ in _FLAGS:
        raw = getattr(args, attr)
        if raw is None:
            raw = environ.get(env_name(name))
        if raw is None or (raw == "" and kind not in ("str", "bool", "schema")):
            continue
        values[attr] = _convert(kind, name, raw)
    config = Config(**values)
    if config.mode == c.MODE_ASYNC:
        missing = [
            f"--{flag} / {env_name(flag)}"
            for flag, value in (
                (c.BROKER_URL_FLAG, config.broker_url),
                (c.QUEUE_FLAG, config.queue),
            )
            if not value
        ]
        if missing:
            raise ConfigError(f"--mode async needs {' and '.join(missing)}")
    return config
