"""Prometheus metrics of the operator, served on ``MODELTEMPLATE_METRICS_PORT`` (``--metrics-port``).

One registry per process (:data:`REGISTRY`); the runtime, the reconciler, the request helper
and the watch handlers bump it, ``deploy/components/metrics`` scrapes it and the scale
benchmark reads its per-template figures from it. Exposed series:

- ``modeltemplate_operator_reconciles_total{result}`` (counter): ``ok``, ``retry`` (a backoff
  was returned), ``error`` (an unexpected exception), ``gone`` (deleted before its turn).
- ``modeltemplate_operator_reconcile_duration_seconds`` (histogram).
- ``modeltemplate_operator_workqueue_depth`` (gauge): keys waiting for a worker.
- ``modeltemplate_operator_workqueue_wait_seconds`` (histogram): from queued to taken.
- ``modeltemplate_operator_retries_pending`` (gauge): keys waiting for their backoff to end.
- ``modeltemplate_operator_api_requests_total{verb,code}`` (counter): the operator's own
  requests (apply, status patch, delete, events); Kopf's watch requests are not in it.
- ``modeltemplate_operator_watch_events_total{kind}`` (counter).
- ``modeltemplate_operator_watch_events_ignored_total{kind}`` (counter): events that changed
  nothing a reconcile reads (caches.py), so queued nothing.
- ``modeltemplate_operator_status_writes_total`` (counter).
- ``modeltemplate_operator_child_writes_total{kind}``, ``..._child_prunes_total{kind}``.
- ``modeltemplate_operator_templates{kind,reason}`` (gauge): owners of each kind
  (``ModelTemplate``, ``Model``, ``ModelDeployment``, ``FineTuningJob``) by their Ready reason.
- ``process_*``: the operator process (RSS, CPU, open fds).
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily

PREFIX = "modeltemplate_operator_"
PORT_ENV = "MODELTEMPLATE_METRICS_PORT"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class ReadyReasons:
    """The Ready reason of every known owner (keyed ``(kind, namespace, name)``), exported as
    a count per kind and reason at scrape."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reasons: dict[tuple[str, str, str], str] = {}

    def set(self, key: tuple[str, str, str], reason: str | None) -> None:
        with self._lock:
            if reason is None:
                self._reasons.pop(key, None)
            else:
                self._reasons[key] = reason

    def counts(self) -> dict[tuple[str, str], int]:
        """Owners by ``(kind, reason)``."""
        with self._lock:
            return dict(Tally((key[0], reason) for key, reason in self._reasons.items()))

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            PREFIX + "templates",
            "Owners (templates, models, deployments, fine-tuning jobs) by kind and the reason "
            "of their Ready condition.",
            labels=["kind", "reason"],
        )
        for (kind, reason), count in sorted(self.counts().items()):
            family.add_metric([kind, reason], count)
        yield family


REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
RECONCILES = Counter(PREFIX + "reconciles", "Reconciles by result.", ["result"], registry=REGISTRY)
RECONCILE_DURATION = Histogram(
    PREFIX + "reconcile_duration_seconds",
    "Duration of one reconcile (render, apply, status).",
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(PREFIX + "workqueue_depth", "Keys waiting for a worker.", registry=REGISTRY)
QUEUE_WAIT = Histogram(
    PREFIX + "workqueue_wait_seconds",
    "From a key being queued to a worker taking it.",
    buckets=WAIT_BUCKETS,
    registry=REGISTRY,
)
ACTIVE = Gauge(
    PREFIX + "active",
    "1 while this replica acts (peering chose it, its caches are fresh); 0 while it stands by.",
    registry=REGISTRY,
)
RETRIES_PENDING = Gauge(
    PREFIX + "retries_pending", "Keys waiting for their retry backoff to end.", registry=REGISTRY
)
API_REQUESTS = Counter(
    PREFIX + "api_requests",
    "Requests of the operator to the API server by verb and HTTP code (0: no answer).",
    ["verb", "code"],
    registry=REGISTRY,
)
WATCH_EVENTS = Counter(
    PREFIX + "watch_events", "Watch events received, by kind.", ["kind"], registry=REGISTRY
)
EVENTS_IGNORED = Counter(
    PREFIX + "watch_events_ignored",
    "Watch events that changed nothing a reconcile reads, by kind (no reconcile queued).",
    ["kind"],
    registry=REGISTRY,
)
STATUS_WRITES = Counter(PREFIX + "status_writes", "Template status patches.", registry=REGISTRY)
CHILD_WRITES = Counter(
    PREFIX + "child_writes", "Children server-side applied, by kind.", ["kind"], registry=REGISTRY
)
CHILD_PRUNES = Counter(
    PREFIX + "child_prunes", "Children deleted, by kind.", ["kind"], registry=REGISTRY
)
READY_REASONS = ReadyReasons()
REGISTRY.register(READY_REASONS)


def names(registry: CollectorRegistry = REGISTRY) -> set[str]:
    """Every metric name a registry exports, as Prometheus sees them (with their suffixes)."""
    out = set()
    for family in registry.collect():
        out.update(sample.name for sample in family.samples)
        if family.type == "histogram":
            out.update(f"{family.name}_{s}" for s in ("bucket", "sum", "count"))
        elif family.type == "counter":
            out.add(f"{family.name}_total")
        else:
            out.add(family.name)
    return out


def serve(port: int) -> None:
    """Serve /metrics on ``port`` from a daemon thread (0: do not serve)."""
    if port:
        start_http_server(port, registry=REGISTRY)
