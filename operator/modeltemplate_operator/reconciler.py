"""One reconcile of one template: parse -> plan -> render -> apply -> status.

The only place that ties the pure layers to the API server; the Kopf handlers call it with the
template and its children as the watch caches last saw them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException

from . import kinds
from .apply import Applier, ApplyRejected, ApplyResult
from .config import OperatorConfig
from .kube import MERGE_PATCH, request
from .render import render
from .resolution import plan_for
from .status import Observed, compute_status, transition_events
from .validation import ManifestInvalid, parse_manifest
from .workqueue import Backoff

log = logging.getLogger(__name__)
TEMPLATE = kinds.MODEL_TEMPLATE


#: Refused children are retried on this backoff: fixing a quota sends the operator no event.
REFUSED = Backoff(first=10.0, cap=300.0)
#: A namespace being deleted takes its templates with it: their reconciles wait this long
#: (quietly: no write, no status, no Event) and find them gone, or the namespace made anew.
TERMINATING = Backoff(first=30.0, cap=30.0)


@dataclass
class Outcome:
    applied: ApplyResult | None  # None when nothing was applied (invalid spec, refused child)
    status_written: bool
    retry: Backoff | None = None  # reconcile again after this backoff (as a Result does)


def _ready_condition(status: Mapping[str, Any]) -> dict[str, Any]:
    conditions = status.get("conditions") or []
    return next((dict(c) for c in conditions if c.get("type") == "Ready"), {})


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
        #: Namespaces the API server said are being deleted, until when to leave them alone.
        self._terminating: dict[str, float] = {}
        #: Last status written per template, until the watch cache shows it.
        self._statuses: dict[tuple[str, str], dict[str, Any]] = {}

    def forget(self, body: Mapping[str, Any]) -> None:
        """A template is gone: drop what is kept about it."""
        meta = body["metadata"]
        self._statuses.pop((meta["namespace"], meta["name"]), None)
        self.applier.forget(meta["uid"])

    def reconcile(self, body: Mapping[str, Any], observed: Observed) -> Outcome | None:
        """Converge one template; None for a template being deleted (garbage collection's job).

        Callers never reconcile one template from two threads at once (the work queue)."""
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            return None
        if self._terminating.get(meta["namespace"], 0.0) > time.monotonic():
            return Outcome(None, False, retry=TERMINATING)
        outcome = self._reconcile(body, observed)
        log.debug(
            "reconciled %s/%s: applied=%s pruned=%s status_written=%s",
            meta["namespace"],
            meta["name"],
            outcome.applied.applied if outcome.applied else [],
            outcome.applied.pruned if outcome.applied else [],
            outcome.status_written,
        )
        return outcome

    def _reconcile(self, body: Mapping[str, Any], observed: Observed) -> Outcome:
        meta = body["metadata"]
        manifest = {
            "apiVersion": TEMPLATE.api_version,
            "kind": TEMPLATE.kind,
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
            result = self.applier.sync(render(plan), observed.objects, meta["uid"])
        except ApplyRejected as rejected:
            if rejected.namespace_terminating:
                log.debug("namespace %s is being deleted: %s", meta["namespace"], rejected)
                self._terminating[meta["namespace"]] = time.monotonic() + TERMINATING.first
                return Outcome(None, False, retry=TERMINATING)
            status = compute_status(
                dict(body), plan, [], observed, _now(), apply_error=str(rejected)
            )
            return self._finish(body, status, None, retry=REFUSED)
        if result.wrote:
            log.info(
                "applied %s pruned %s",
                result.applied,
                result.pruned,
                extra={"namespace": meta["namespace"], "modeltemplate": meta["name"]},
            )
        # What the apply answered, not the cache: after a spec change the cache still shows the
        # children of the old spec, all ready, and Ready=True would be a lie for a moment.
        now_observed = Observed(objects=result.children, pods=observed.pods)
        status = compute_status(dict(body), plan, [], now_observed, _now())
        return self._finish(body, status, result)

    def _finish(
        self,
        body: Mapping[str, Any],
        status: dict[str, Any],
        result: ApplyResult | None,
        retry: Backoff | None = None,
    ) -> Outcome:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        old = dict(body.get("status") or {})
        old.pop("kopf", None)
        last = self._statuses.get(key)
        if last is not None:
            # Only the operator writes status: until the cache shows our last write (it may lag
            # by several), that write is what the API server holds.
            if last == old:
                del self._statuses[key]
            else:
                old = last
        # Events first, each named after the transition it reports: if the operator dies before
        # the status write, the next reconcile sees the same transition and finds its Event
        # posted (409) instead of losing it, or posting it twice.
        left = _ready_condition(old)
        since = f"{left.get('reason')}@{left.get('lastTransitionTime')}"
        for event_type, reason, message in transition_events(old, status):
            self._post_event(body, since, event_type, reason, message)
        written = False
        if status != old:
            patch = {k: None for k in old if k not in status} | status
            path = TEMPLATE.path(meta["namespace"], meta["name"]) + "/status"
            request(self.api, "PATCH", path, body={"status": patch}, content_type=MERGE_PATCH)
            self._statuses[key] = status
            written = True
        return Outcome(result, written, retry)

    def _post_event(
        self, body: Mapping[str, Any], since: str, event_type: str, reason: str, message: str
    ) -> None:
        meta = body["metadata"]
        now = dt.datetime.now(dt.UTC)
        # One name per transition: the template, the Ready condition it leaves (reason and
        # when it began, as stored) and where it goes.
        transition = f"{meta['uid']}/{since}/{event_type}/{reason}"
        digest = hashlib.sha256(transition.encode()).hexdigest()[:16]
        event = {
            "metadata": {"name": f"{meta['name']}.{digest}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": TEMPLATE.api_version,
                "kind": TEMPLATE.kind,
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
            if exc.status == 409:
                return  # posted by an earlier attempt whose status write did not happen
            log.warning("could not post event %s: %s", reason, exc.reason)
