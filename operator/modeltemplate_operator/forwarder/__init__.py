"""``http-forwarder``: the sidecar in front of a Launch-style model container.

Public ``POST /predict`` and ``POST /stream`` (plus the protocol's native routes) are forwarded to
the model container; the forwarder enforces ``perWorker``, checks ``model_request_parameters``,
reports readiness from the model's healthcheck and exports Prometheus metrics. See
docs/forwarder.md.
"""

from .app import Forwarder
from .config import ENV_PREFIX, Config, ConfigError, parse_config

__all__ = ["ENV_PREFIX", "Config", "ConfigError", "Forwarder", "parse_config"]
