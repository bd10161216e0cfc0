"""One reconcile of one template: parse -> plan -> render -> apply -> status.

The only place that ties the pure layers to the API server; the Kopf handlers call it with the
template and its children as the watch caches last saw them.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException

from . import API_VERSION, GROUP, KIND, PLURAL, VERSION
from .apply import Applier, ApplyRejected, ApplyResult
from .config import OperatorConfig
from .kube import MERGE_PATCH, request
from .render import render
from .resolution import plan_for
from .status import Observed, compute_status, transition_events
from .validation import ManifestInvalid, parse_manifest

log = logging.getLogger(__name__)
KEDA_CRD = "scaledobjects.keda.sh"


@dataclass
class Children:
    """Objects labelled as belonging to one template, as last seen."""

    objects: list[Mapping[str, Any]] = field(default_factory=list)
    pods: list[Mapping[str, Any]] = field(default_factory=list)

    def first(self, kind: str) -> dict[str, Any] | None:
        return next((dict(o) for o in self.objects if o.get("kind") == kind), None)


@dataclass
class Outcome:
    applied: ApplyResult | None  # None when nothing was applied (invalid spec, refused child)
    status_written: bool


class RetrySchedule:
    """Templates whose children the API server refused (quota, admission): nothing about the
    template changes when the cause is fixed, so they are retried on a backoff instead.
    Thread-safe; times are ``time.monotonic()`` seconds."""

    def __init__(self, first_delay: float = 10.0, max_delay: float = 300.0):
        self.first_delay, self.max_delay = first_delay, max_delay
        self._entries: dict[tuple[str, str], tuple[float, int]] = {}
        self._guard = threading.Lock()

    def failed(self, key: tuple[str, str], now: float) -> None:
        with self._guard:
            attempts = self._entries.get(key, (0.0, 0))[1] + 1
            delay = min(self.max_delay, self.first_delay * 2 ** (attempts - 1))
            self._entries[key] = (now + delay, attempts)

    def succeeded(self, key: tuple[str, str]) -> None:
        with self._guard:
            self._entries.pop(key, None)

    def due(self, now: float) -> list[tuple[str, str]]:
        with self._guard:
            return sorted(k for k, (at, _) in self._entries.items() if at <= now)


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class Reconciler:
    def __init__(self, api: ApiClient, config: OperatorConfig, keda_installed: bool = False):
        self.api = api
        self.config = config
        self.applier = Applier(api)
        #: Is KEDA's ScaledObject CRD served? Kept current by the CRD watch of the handlers.
        self.keda_installed = keda_installed
        self.core = CoreV1Api(api)
        self.retries = RetrySchedule()
        #: Last status written per template, with the resourceVersion it was written over.
        self._statuses: dict[tuple[str, str], tuple[dict[str, Any], str | None]] = {}

    def forget(self, body: Mapping[str, Any]) -> None:
        """A template is gone: drop what is kept about it."""
        meta = body["metadata"]
        self.retries.succeeded((meta["namespace"], meta["name"]))
        self._statuses.pop((meta["namespace"], meta["name"]), None)
        self.applier.forget(meta["uid"])

    def reconcile(self, body: Mapping[str, Any], children: Children) -> Outcome | None:
        """Converge one template; None for a template being deleted (garbage collection's job).

        Callers never reconcile one template from two threads at once (the work queue)."""
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            return None
        outcome = self._reconcile(body, children)
        log.debug(
            "reconciled %s/%s: applied=%s pruned=%s status_written=%s",
            meta["namespace"],
            meta["name"],
            outcome.applied.applied if outcome.applied else [],
            outcome.applied.pruned if outcome.applied else [],
            outcome.status_written,
        )
        return outcome

    def _reconcile(self, body: Mapping[str, Any], children: Children) -> Outcome:
        meta = body["metadata"]
        manifest = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": dict(meta),
            "spec": body.get("spec"),
        }
        try:
            template = parse_manifest(manifest)
        except ManifestInvalid as invalid:
            # Nothing is rendered and existing children stay as they are.
            status = compute_status(dict(body), None, invalid.errors, Observed(), _now())
            return self._finish(body, status, None)
        plan = plan_for(template, self.config, self.keda_installed)
        try:
            result = self.applier.sync(render(plan), children.objects, meta["uid"])
        except ApplyRejected as rejected:
            self.retries.failed((meta["namespace"], meta["name"]), time.monotonic())
            observed = self._observed(children)
            status = compute_status(
                dict(body), plan, [], observed, _now(), apply_error=str(rejected)
            )
            return self._finish(body, status, None)
        if result.wrote:
            log.info(
                "applied %s pruned %s",
                result.applied,
                result.pruned,
                extra={"namespace": meta["namespace"], "modeltemplate": meta["name"]},
            )
        self.retries.succeeded((meta["namespace"], meta["name"]))
        status = compute_status(dict(body), plan, [], self._observed(children), _now())
        return self._finish(body, status, result)

    @staticmethod
    def _observed(children: Children) -> Observed:
        return Observed(
            children.first("Deployment"), children.first("Job"), [dict(p) for p in children.pods]
        )

    def _finish(
        self, body: Mapping[str, Any], status: dict[str, Any], result: ApplyResult | None
    ) -> Outcome:
        meta = body["metadata"]
        key, version = (meta["namespace"], meta["name"]), meta.get("resourceVersion")
        old = dict(body.get("status") or {})
        old.pop("kopf", None)
        last = self._statuses.get(key)
        if last is not None and last[1] == version:
            old = last[0]  # the cache has not caught up with our last status write yet
        written = False
        if status != old:
            patch = {k: None for k in old if k not in status} | status
            path = f"/apis/{GROUP}/{VERSION}/namespaces/{meta['namespace']}/{PLURAL}/{meta['name']}/status"
            request(self.api, "PATCH", path, body={"status": patch}, content_type=MERGE_PATCH)
            self._statuses[key] = (status, version)
            written = True
        for event_type, reason, message in transition_events(old, status):
            self._post_event(body, event_type, reason, message)
        return Outcome(result, written)

    def _post_event(
        self, body: Mapping[str, Any], event_type: str, reason: str, message: str
    ) -> None:
        meta = body["metadata"]
        now = dt.datetime.now(dt.UTC)
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": now.isoformat(),
            "lastTimestamp": now.isoformat(),
            "count": 1,
            "source": {"component": "modeltemplate-operator"},
            "reportingComponent": "modeltemplate-operator",
        }
        try:
            self.core.create_namespaced_event(meta["namespace"], event)
        except ApiException as exc:  # an event is never worth failing a reconcile for
            log.warning("could not post event %s: %s", reason, exc.reason)
