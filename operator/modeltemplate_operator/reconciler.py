"""One reconcile of one template: parse -> plan -> render -> apply -> status.

The only place that ties the pure layers to the API server; the Kopf handlers call it with the
template and its children as the watch caches last saw them.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException

from . import API_VERSION, GROUP, KIND, PLURAL, VERSION
from .apply import Applier, ApplyResult
from .config import OperatorConfig
from .kube import MERGE_PATCH, request
from .render import plan_for, render
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
    status: dict[str, Any]
    applied: ApplyResult | None
    status_written: bool
    events: list[tuple[str, str, str]]


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
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def forget(self, namespace: str, name: str) -> None:
        with self._locks_guard:
            self._locks.pop((namespace, name), None)

    def reconcile(self, body: Mapping[str, Any], children: Children) -> Outcome | None:
        """Converge one template; None for a template being deleted (garbage collection's job)."""
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            return None
        with self._lock((meta["namespace"], meta["name"])):
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
        result = self.applier.sync(render(plan), children.objects, meta["uid"])
        if result.wrote:
            log.info(
                "applied %s pruned %s",
                result.applied,
                result.pruned,
                extra={"namespace": meta["namespace"], "modeltemplate": meta["name"]},
            )
        observed = Observed(
            children.first("Deployment"), children.first("Job"), [dict(p) for p in children.pods]
        )
        status = compute_status(dict(body), plan, [], observed, _now())
        return self._finish(body, status, result)

    def _finish(
        self, body: Mapping[str, Any], status: dict[str, Any], result: ApplyResult | None
    ) -> Outcome:
        old = dict(body.get("status") or {})
        old.pop("kopf", None)
        written = False
        if status != old:
            patch = {k: None for k in old if k not in status} | status
            meta = body["metadata"]
            path = f"/apis/{GROUP}/{VERSION}/namespaces/{meta['namespace']}/{PLURAL}/{meta['name']}/status"
            request(self.api, "PATCH", path, body={"status": patch}, content_type=MERGE_PATCH)
            written = True
        events = transition_events(old, status)
        for event_type, reason, message in events:
            self._post_event(body, event_type, reason, message)
        return Outcome(status, result, written, events)

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
