"""Prometheus metrics of the forwarder.

The hot path only bumps plain Python numbers (the forwarder is single-threaded asyncio); the
Prometheus text is built at scrape time by a collector, in prometheus-client's exposition format.

Exposed series (see docs/forwarder.md):

- ``modeltemplate_forwarder_requests_in_flight`` (gauge): inference requests being handled now, waiting for
  a ``perWorker`` slot or in flight to the model. The per-pod series behind the HPA metric
  ``request-concurrency-average``.
- ``modeltemplate_forwarder_requests_in_flight_seconds_total`` (counter): the time integral of that gauge;
  ``rate()`` of it over a window is the exact average concurrency in the window.
- ``modeltemplate_forwarder_upstream_in_flight`` (gauge): requests holding a slot (never above perWorker).
- ``modeltemplate_forwarder_per_worker`` (gauge): the configured cap.
- ``modeltemplate_forwarder_requests_total{route,status}`` (counter).
- ``modeltemplate_forwarder_request_duration_seconds{route}`` (histogram): arrival to last byte sent.
- ``modeltemplate_forwarder_time_to_first_byte_seconds{route}`` (histogram): arrival to the first body byte
  from the model being written to the client.
- ``modeltemplate_forwarder_upstream_ready`` (gauge): result of the last upstream health check (1/0).
- ``process_*``: the forwarder process (RSS, CPU, open fds).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from .. import contract as c

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)
TTFB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Histogram:
    """Cumulative buckets of observed values (the sync forwarder's routes and the async
    forwarder's tasks)."""

    __slots__ = ("bounds", "counts", "total", "count")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def buckets(self) -> list[tuple[str, int]]:
        out = []
        acc = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            acc += n
            out.append((repr(float(bound)), acc))
        out.append(("+Inf", self.count))
        return out


class ForwarderMetrics:
    def __init__(self, per_worker: int, in_flight: Callable[[], int] = lambda: 0) -> None:
        self.per_worker = per_worker
        self.concurrency = 0  # waiting + in flight, inference routes
        self.in_flight = in_flight  # holding a perWorker slot
        self._integral = 0.0
        self._last = time.monotonic()
        self.upstream_ready = 0
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, Histogram] = {}
        self.ttfb: dict[str, Histogram] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        self.registry.register(ProcessCollector(registry=None))

    # -- hot path -------------------------------------------------------------------------
    def _advance(self) -> None:
        now = time.monotonic()
        self._integral += self.concurrency * (now - self._last)
        self._last = now

    def enter(self) -> None:
        self._advance()
        self.concurrency += 1

    def leave(self) -> None:
        self._advance()
        self.concurrency -= 1

    def observe(self, route: str, status: int, duration: float) -> None:
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.latency.get(route)
        if hist is None:
            hist = self.latency[route] = Histogram(LATENCY_BUCKETS)
        hist.observe(duration)

    def observe_ttfb(self, route: str, seconds: float) -> None:
        hist = self.ttfb.get(route)
        if hist is None:
            hist = self.ttfb[route] = Histogram(TTFB_BUCKETS)
        hist.observe(seconds)

    # -- scrape ---------------------------------------------------------------------------
    def concurrency_seconds(self) -> float:
        self._advance()
        return self._integral

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Collector:
    def __init__(self, m: ForwarderMetrics) -> None:
        self.m = m

    def collect(self):
        m = self.m
        yield GaugeMetricFamily(
            c.IN_FLIGHT_METRIC,
            "Inference requests being handled (waiting for a perWorker slot or in flight).",
            value=m.concurrency,
        )
        yield CounterMetricFamily(
            "modeltemplate_forwarder_requests_in_flight_seconds",
            "Time integral of modeltemplate_forwarder_requests_in_flight; rate() is the average concurrency.",
            value=m.concurrency_seconds(),
        )
        yield GaugeMetricFamily(
            "modeltemplate_forwarder_upstream_in_flight",
            "Requests in flight to the model container (at most perWorker).",
            value=m.in_flight(),
        )
        yield GaugeMetricFamily(
            "modeltemplate_forwarder_per_worker",
            "Configured perWorker concurrency cap.",
            value=m.per_worker,
        )
        yield GaugeMetricFamily(
            "modeltemplate_forwarder_upstream_ready",
            "1 when the model container's healthcheck route last answered 200.",
            value=m.upstream_ready,
        )
        requests = CounterMetricFamily(
            "modeltemplate_forwarder_requests",
            "Requests answered, by route and status.",
            labels=["route", "status"],
        )
        for (route, status), n in sorted(m.requests.items()):
            requests.add_metric([route, str(status)], n)
        yield requests
        latency = HistogramMetricFamily(
            "modeltemplate_forwarder_request_duration_seconds",
            "From request arrival to the last response byte sent.",
            labels=["route"],
        )
        for route, h in sorted(m.latency.items()):
            latency.add_metric([route], h.buckets(), h.total)
        yield latency
        ttfb = HistogramMetricFamily(
            "modeltemplate_forwarder_time_to_first_byte_seconds",
            "From request arrival to the first response body byte of the model sent on.",
            labels=["route"],
        )
        for route, h in sorted(m.ttfb.items()):
            ttfb.add_metric([route], h.buckets(), h.total)
        yield ttfb
