"""The gateway's ``/metrics``: its requests, its access reviews, its watch caches, and the
inference usage of :mod:`...serving.usage` (one registry).

- ``modeltemplate_gateway_requests_total{route,method,code}`` and
  ``modeltemplate_gateway_request_seconds{route}``: every request by its route template
  (``/v4/models/{model_id}``, never the id itself, so the series stay few);
- ``modeltemplate_gateway_access_reviews_total{answer}``: access reviews answered from the
  cache (``cached``) or asked of the API server (``asked``);
- ``modeltemplate_gateway_cached_objects{kind}`` and
  ``modeltemplate_gateway_watch_event_age_seconds{kind}``: each watch cache's size and the
  time since its last list or event (how far behind it may be).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:
    from .caller import Gateway

__all__ = ["GatewayMetrics"]


class GatewayMetrics:
    def __init__(self, gateway: Gateway) -> None:
        registry = gateway.usage.registry
        self.requests = Counter(
            "modeltemplate_gateway_requests",
            "Requests answered, by route template, method and status code.",
            ("route", "method", "code"),
            registry=registry,
        )
        self.seconds = Histogram(
            "modeltemplate_gateway_request_seconds",
            "Time to answer (to the start of the answer for streams), by route template.",
            ("route",),
            registry=registry,
        )
        self.reviews = Counter(
            "modeltemplate_gateway_access_reviews",
            "Access reviews: answered from the cache, or asked of the API server.",
            ("answer",),
            registry=registry,
        )
        gateway.access.on_review = lambda cached: self.reviews.labels(
            "cached" if cached else "asked"
        ).inc()
        registry.register(_Caches(gateway))

    def wrap(self, app):
        """``app`` (ASGI) with each HTTP request counted by its route template."""

        async def wrapped(scope, receive, send):
            if scope["type"] != "http":
                return await app(scope, receive, send)
            started = time.perf_counter()
            status = 500

            async def sending(message):
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    route = getattr(scope.get("route"), "path", "unmatched")
                    self.seconds.labels(route).observe(time.perf_counter() - started)
                await send(message)

            try:
                await app(scope, receive, sending)
            finally:
                route = getattr(scope.get("route"), "path", "unmatched")
                self.requests.labels(route, scope["method"], str(status)).inc()

        return wrapped


class _Caches:
    """The watch caches' sizes and ages, read when Prometheus scrapes."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self):
        size = GaugeMetricFamily(
            "modeltemplate_gateway_cached_objects", "Objects in a watch cache.", labels=["kind"]
        )
        age = GaugeMetricFamily(
            "modeltemplate_gateway_watch_event_age_seconds",
            "Seconds since a watch cache's last list or event.",
            labels=["kind"],
        )
        now = time.monotonic()
        for watcher in self.gateway.watchers:
            kind = watcher.path.rsplit("/", 1)[-1]
            size.add_metric([kind], len(watcher.store))
            age.add_metric([kind], now - watcher.last_event if watcher.last_event else -1)
        yield size
        yield age
