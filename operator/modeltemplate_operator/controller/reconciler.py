"""One reconcile of one owner (of each kind of :data:`.kinds.OWNERS`): parse -> plan -> render ->
apply -> status.

The only place that ties the pure layers to the API server, through the :class:`~.cluster.Cluster`
it is given. The runtime calls
:meth:`Reconciler.reconcile_owner` with the owner and what it reads besides (:class:`Related`:
its children and pods, the owners it names, those naming it), all as the watch caches last saw
them; each owner kind's reconcile is registered with :func:`reconciles`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from ..api import kinds
from ..api.models import FineTuningJob, FineTuningPhase, Model, ModelDeployment
from ..api.validation import ManifestInvalid, format_errors, parse_manifest
from ..observed import (
    INVALID_PARAMETERS,
    INVALID_SPEC,
    MODEL_MISSING,
    TEMPLATE_INVALID,
    TEMPLATE_MISSING,
    Observed,
    deployment_behind,
)
from ..plan import finetuning as ft
from ..plan import rollout
from ..plan.config import OperatorConfig
from ..plan.gpu_rollout import with_rollout
from ..plan.instantiate import check_model, deployment_as_model
from ..plan.resolution import Plan, plan_for, plan_for_model
from ..render import render, render_fine_tuning
from ..status import finetuning as fts
from ..status.conditions import (
    compute_status,
    job_stuck,
    model_status,
    ready_moved,
    transition_events,
)
from . import metrics
from .apply import Applier, ApplyRejected, ApplyResult
from .caches import cached
from .cluster import EVENT, Cluster
from .kube import is_transient, status_message
from .workqueue import Backoff

log = logging.getLogger(__name__)
TEMPLATE = kinds.MODEL_TEMPLATE


#: Refused children are retried on this backoff: fixing a quota sends the operator no event.
REFUSED = Backoff(first=10.0, cap=300.0)
#: A Job without pods is looked at again on this backoff: its controller's refusal (a
#: ``FailedCreate`` Event, within a second or two of the Job) and a fixed quota wake no reconcile.
JOB_WITHOUT_PODS = Backoff(first=2.0, cap=300.0)
#: A namespace being deleted takes its templates with it: their reconciles wait this long
#: (quietly: no write, no status, no Event) and find them gone, or the namespace made anew.
TERMINATING = Backoff(first=30.0, cap=30.0)
#: Children not settled yet (written just now, or their controller behind): the status waits
#: for their watch events, this long at most before it is written as it stands.
SETTLE = Backoff(first=5.0, cap=5.0)


@dataclass
class Related:
    """What one reconcile reads besides the owner itself, from the watch caches."""

    observed: Observed = field(default_factory=Observed)
    #: The owners its spec names, by kind (None: named, not found), followed through each other
    #: (a fine-tuning job of a Model: that Model's template).
    refs: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)
    #: The owners naming it, by kind (a template's models).
    referrers: dict[str, list[Mapping[str, Any]]] = field(default_factory=dict)
    #: The owners of its kind naming the same owner, itself included (a model's family, which
    #: moves to a new template generation a few at a time).
    siblings: list[Mapping[str, Any]] = field(default_factory=list)


#: Each owner kind's reconcile: ``kind -> Reconciler method (body, related)``.
_RECONCILES: dict[str, Callable[..., Outcome | None]] = {}


def reconciles(owner: kinds.OwnerKind):
    """Register the decorated method as the reconcile of ``owner``'s objects."""

    def register(method):
        _RECONCILES[owner.kind] = method
        return method

    return register


def _gone(body: Mapping[str, Any] | None) -> bool:
    return body is None or bool(body["metadata"].get("deletionTimestamp"))


def _missing(where: str, kind: str, name: str, namespace: str, who: str, reason: str) -> Unplanned:
    """An owner whose named owner is gone: said, and its workers left as they were."""
    message = (
        f"{where}: {kind} {name!r} not found in namespace {namespace!r}; the {who} keeps its "
        "workers as they were"
    )
    return Unplanned([message], reason=reason)


@dataclass
class Outcome:
    applied: ApplyResult | None  # None when nothing was applied (invalid spec, refused child)
    status_written: bool
    retry: Backoff | None = None  # reconcile again after this backoff (as a Result does)
    status: dict[str, Any] | None = None  # the status written, when one was
    #: The status waits for the children to settle; their events (or ``retry``) come back.
    settling: bool = False


def _ready_condition(status: Mapping[str, Any]) -> dict[str, Any]:
    conditions = status.get("conditions") or []
    return next((dict(c) for c in conditions if c.get("type") == "Ready"), {})


@dataclass(frozen=True)
class Unplanned:
    """Why nothing can be rendered for an object (its children stay as they are)."""

    errors: list[str]
    reason: str = INVALID_SPEC


@dataclass(frozen=True)
class Waiting:
    """A model waiting for its turn in its template's rollout (its children stay as they are)."""

    plan: Plan
    waiting_for: str


def _manifest(kind: kinds.Kind, body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": dict(body["metadata"]),
        "spec": body.get("spec"),
    }


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) turning ``old`` into ``new``: keys gone are nulled at
    every depth (a field dropped inside ``models`` or ``scheduling`` must not linger)."""
    patch: dict[str, Any] = {k: None for k in old if k not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            patch[key] = merge_patch(before, value)
        else:
            patch[key] = value
    return patch


def _key(body: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = body["metadata"]
    return (body["kind"], meta["namespace"], meta["name"])


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class Reconciler:
    """Reconciles owners of every kind; what it reads and writes beyond the watch caches goes
    through ``cluster`` (:class:`~.cluster.Cluster`), and it reads the time from ``now`` (status
    timestamps) and ``monotonic`` (how long to wait), so each decision can be tested alone."""

    def __init__(
        self,
        cluster: Cluster,
        config: OperatorConfig,
        keda_installed: bool = False,
        *,
        now: Callable[[], str] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.cluster = cluster
        self.config = config
        self.now = now
        self.monotonic = monotonic
        self.applier = Applier(cluster)
        #: Is KEDA's ScaledObject CRD served? Kept current by the CRD watch of the handlers.
        self.keda_installed = keda_installed
        #: Namespaces the API server said are being deleted, until when to leave them alone.
        self._terminating: dict[str, float] = {}
        #: Last status written per owner, until the watch cache shows it.
        self._statuses: dict[tuple[str, str, str], dict[str, Any]] = {}
        #: Told (template, status) as soon as a status patch is accepted.
        self.on_status_write: Callable[[Mapping[str, Any], dict[str, Any]], None] | None = None
        #: Since when an owner's status has waited for its children to settle.
        self._settling: dict[tuple[str, str, str], float] = {}
        #: Models moving to their template's new generation, not yet shown by the cache.
        self.claims = rollout.Claims()

    def forget(self, body: Mapping[str, Any]) -> None:
        """An owner is gone: drop what is kept about it."""
        key = _key(body)
        self._statuses.pop(key, None)
        self._settling.pop(key, None)
        self.applier.forget(body["metadata"]["uid"])

    def reconcile_owner(self, body: Mapping[str, Any], related: Related) -> Outcome | None:
        """Converge one owner of any kind (its registered reconcile); None for an owner being
        deleted (garbage collection's job). Callers never reconcile one object from two threads
        at once (the work queue)."""
        return _RECONCILES[body["kind"]](self, body, related)

    @reconciles(kinds.MODEL_TEMPLATE)
    def reconcile(self, body: Mapping[str, Any], related: Related) -> Outcome | None:
        """Converge one template; the models made from it (``related.referrers``) are counted
        in its status."""
        observed, models = related.observed, related.referrers.get(kinds.MODEL.kind, [])

        def finish(status: dict[str, Any]) -> dict[str, Any]:
            if not models:
                return status
            states = [rollout.ModelState.of(self._latest(m)) for m in models]
            return {**status, "models": rollout.summary(body["metadata"]["generation"], states)}

        return self._converge(body, observed, lambda: self._template_plan(body), finish)

    @reconciles(kinds.MODEL)
    def reconcile_model(self, body: Mapping[str, Any], related: Related) -> Outcome | None:
        """Converge one model made from its template (None: the template does not exist); its
        siblings (the template's models, itself included) decide its turn in the rollout."""
        template, observed = related.refs.get(TEMPLATE.kind), related.observed
        siblings = related.siblings
        turn = rollout.Turn(True)

        def planned() -> Plan | Unplanned | Waiting:
            nonlocal turn
            plan = self._model_plan(body, template)
            if isinstance(plan, Plan) and template is not None:
                meta = template["metadata"]
                turn = self.claims.decide(
                    (meta["namespace"], meta["name"]),
                    body["metadata"]["name"],
                    meta["generation"],
                    [rollout.ModelState.of(self._latest(m)) for m in siblings or [body]],
                    rollout.max_unavailable(template, self.config.model_rollout_max_unavailable),
                )
            return plan if turn.move else Waiting(plan, turn.waiting_for)

        return self._converge(
            body,
            observed,
            planned,
            finish=lambda status: model_status(
                status, template, body.get("status"), self.now(), waiting_for=turn.waiting_for
            ),
        )

    def _latest(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """An owner as cached, with the status last written for it when the cache lags."""
        written = self._statuses.get(_key(body))
        return body if written is None else {**body, "status": written}

    @reconciles(kinds.MODEL_DEPLOYMENT)
    def reconcile_deployment(self, body: Mapping[str, Any], related: Related) -> Outcome | None:
        """Converge one deployment of a Model: the Model's plan with the deployment's
        parameters and worker settings, rendered and reported as a model's."""
        model = related.refs.get(kinds.MODEL.kind)
        template = related.refs.get(TEMPLATE.kind)
        return self._converge(
            body,
            related.observed,
            lambda: self._deployment_plan(body, model, template),
            finish=lambda status: model_status(status, template, body.get("status"), self.now()),
        )

    @reconciles(kinds.FINE_TUNING_JOB)
    def reconcile_fine_tuning(self, body: Mapping[str, Any], related: Related) -> Outcome | None:
        """Run one fine-tuning job: checked, then its ConfigMap and Job created once; its phase
        followed from the Job and its pod. A finished job (Succeeded, Failed, Cancelled in its
        status) is never run again; a running job's spec is fixed, except ``cancelled``. Its
        model is the Model of ``spec.modelRef`` (its template then is the model's)."""
        template = related.refs.get(TEMPLATE.kind)
        model = related.refs.get(kinds.MODEL.kind)
        observed = related.observed
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            return None
        if self._terminating.get(meta["namespace"], 0.0) > self.monotonic():
            return Outcome(None, False, retry=TERMINATING)
        # The status last written when the cache lags: a run just finished stays finished.
        previous = {
            k: v for k, v in (self._latest(body).get("status") or {}).items() if k != "kopf"
        }
        body = {**body, "status": previous}
        now = self.now()
        try:
            job = FineTuningJob.model_validate(_manifest(kinds.FINE_TUNING_JOB, body))
        except ValidationError as exc:
            status = fts.fine_tuning_status(body, None, now, errors=format_errors(exc))
            return self._finish(body, status, None)
        if fts.is_finished(previous):
            result = None
            if previous.get("phase") == FineTuningPhase.CANCELLED and observed.objects:
                result = self.applier.sync([], observed.objects, meta["uid"])
            extra = self._output_model(job, previous, model)
            if not extra:
                return Outcome(result, False)
            merged = {k: v for k, v in {**previous, **extra}.items() if v is not None}
            return self._finish(body, merged, result)
        if job.spec.cancelled:
            result = self.applier.sync([], observed.objects, meta["uid"])
            status = fts.fine_tuning_status(body, fts.cancelled(previous, now), now)
            return self._finish(body, status, result)
        result = None
        extra: dict[str, Any] = {"output": ft.output_location(job, self.config)}
        if template is not None:
            extra["template"] = template["metadata"]["name"]
            extra["baseModelId"] = template["metadata"].get("uid")
        elif job.spec.template_ref is not None:
            extra["template"] = job.spec.template_ref.name
        live_job = observed.job
        marked = fts.marked_job(previous)
        if live_job is None and marked:
            # The Job was created (its name is written first): the cache may lag behind our
            # create; if the API server has no such Job either, it is lost and never made again.
            live_job = self._job_of(body, marked)
            if live_job is None:
                lost = fts.job_lost(marked, previous.get("startTime"), now)
                return self._finish(
                    body, fts.fine_tuning_status(body, lost, now, extra=extra), None
                )
        if live_job is None:
            planned = self._fine_tuning_plan(job, template, model)
            if isinstance(planned, Unplanned):
                status = fts.fine_tuning_status(
                    body, None, now, errors=planned.errors, invalid_reason=planned.reason
                )
                # A missing template or ConfigMap sends no event when it appears: look again.
                retry = None if planned.reason in (INVALID_SPEC, INVALID_PARAMETERS) else REFUSED
                return self._finish(body, status, None, retry=retry)
            extra["template"] = planned.template.metadata.name
            extra["baseModelId"] = planned.template.metadata.uid
            children = render_fine_tuning(planned)
            # The mark first, then the create: an operator that dies in between finds the
            # mark and no Job, and fails the run rather than risk running it twice.
            mark = {**extra, "jobName": meta["name"]}
            mark_status = fts.fine_tuning_status(body, fts.creating(meta["name"]), now, extra=mark)
            self._finish(body, mark_status, None)
            body = {**body, "status": mark_status}
            try:
                result = self.applier.sync(children, observed.objects, meta["uid"])
            except ApplyRejected as rejected:
                # Refused: no Job was created, so the mark goes (a retry may create it).
                body = {**body, "status": previous}
                if rejected.namespace_terminating:
                    self._finish(body, previous, None)
                    self._terminating[meta["namespace"]] = self.monotonic() + TERMINATING.first
                    return Outcome(None, False, retry=TERMINATING)
                phase = fts.Phase(FineTuningPhase.PENDING, "ApplyFailed", str(rejected))
                status = fts.fine_tuning_status(body, phase, now, extra=extra)
                status.pop("jobName", None)
                return self._finish(body, status, None, retry=REFUSED)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                # Throttled, a lost connection, a server error: the create may or may not have
                # happened. If the API server shows no Job now, the mark goes (the retry
                # creates it); if it cannot be asked, the mark stays and a Job still missing
                # then fails the run — never a second run.
                if self._job_of(body, meta["name"]) is None:
                    self._finish(body, previous, None)
                raise
            if result.wrote:
                log.info(
                    "%s %s/%s: applied %s",
                    body["kind"],
                    meta["namespace"],
                    meta["name"],
                    result.applied,
                    extra=object_ref(body),
                )
            live_job = next((o for o in result.children if o.get("kind") == "Job"), None)
        extra["jobName"] = (live_job or {}).get("metadata", {}).get("name") or meta["name"]
        pods = list(observed.pods)
        events = self._refusals(live_job, pods) if result is None else []
        phase = fts.verdict(live_job, pods, events)
        status = fts.fine_tuning_status(body, phase, now, extra=extra)
        if phase.phase is FineTuningPhase.SUCCEEDED:
            status.update(self._output_model(job, status, model))
            status = {k: v for k, v in status.items() if v is not None}
        return self._finish(body, status, result, retry=self._stuck_retry(live_job, pods, events))

    def _job_of(self, body: Mapping[str, Any], name: str) -> dict[str, Any] | None:
        """The Job ``name`` of an owner as the API server has it now (None: there is none), for
        when the watch cache shows none: one list request, by name (list is what the watch
        needs already)."""
        meta = body["metadata"]
        log.debug("Job %s/%s not in the cache: asking the API server", meta["namespace"], name)
        found = self.cluster.list(kinds.JOB, meta["namespace"], f"metadata.name={name}")
        return next(
            (
                cached(kinds.JOB, j)
                for j in found
                if any(
                    r.get("uid") == meta["uid"] for r in j["metadata"].get("ownerReferences") or []
                )
            ),
            None,
        )

    def _refusals(
        self, job: Mapping[str, Any] | None, pods: list[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """The ``FailedCreate`` Events of a Job that has no pods and no progress (else none,
        and no request): one list, selected by the Job's uid and the reason."""
        if not job_stuck(job, pods):
            return []
        assert job is not None
        meta = job["metadata"]
        log.debug(
            "Job %s/%s has no pods: reading its FailedCreate Events",
            meta["namespace"],
            meta["name"],
        )
        selector = f"involvedObject.uid={meta['uid']},reason=FailedCreate"
        return self.cluster.list(EVENT, meta["namespace"], selector)

    @staticmethod
    def _stuck_retry(
        job: Mapping[str, Any] | None,
        pods: list[Mapping[str, Any]],
        events: list[Mapping[str, Any]],
    ) -> Backoff | None:
        """A Job without pods is looked at again (:data:`JOB_WITHOUT_PODS`) until its controller's
        refusal is seen; its first pod wakes a reconcile of its own."""
        return JOB_WITHOUT_PODS if job_stuck(job, pods) and not events else None

    def _fine_tuning_plan(
        self,
        job: FineTuningJob,
        template_body: Mapping[str, Any] | None,
        model_body: Mapping[str, Any] | None,
    ) -> ft.FineTuningPlan | Unplanned:
        namespace = job.metadata.namespace
        model = None
        if job.spec.model_ref is not None:
            if model_body is None:
                return Unplanned(
                    [
                        f"spec.modelRef.name: Model {job.spec.model_ref.name!r} not found in "
                        f"namespace {namespace!r}"
                    ],
                    reason=TEMPLATE_MISSING,
                )
            try:
                model = Model.model_validate(_manifest(kinds.MODEL, model_body))
            except ValidationError as exc:
                return Unplanned(
                    [
                        f"Model {job.spec.model_ref.name!r} is invalid: {'; '.join(format_errors(exc))}"
                    ],
                    reason=TEMPLATE_INVALID,
                )
        name = model.spec.template_ref.name if model else job.target_name
        if template_body is None or template_body["metadata"].get("deletionTimestamp"):
            return Unplanned(
                [
                    f"{'spec.modelRef.name: its template' if model else 'spec.templateRef.name:'} "
                    f"ModelTemplate {name!r} not found in namespace {namespace!r}"
                ],
                reason=TEMPLATE_MISSING,
            )
        try:
            template = parse_manifest(_manifest(TEMPLATE, template_body))
        except ManifestInvalid as invalid:
            return Unplanned(
                [f"ModelTemplate {name!r} is invalid: {'; '.join(invalid.errors)}"],
                reason=TEMPLATE_INVALID,
            )
        rows = {role: self._dataset_rows(job, role) for role in ft.ROLES}
        problems = ft.check(job, template, rows, model)
        if problems:
            missing = any(r is not None and r.missing for r in rows.values())
            return Unplanned(
                [f"{p['field']}: {p['problem']}" for p in problems],
                reason=ft.DATASET_MISSING if missing else INVALID_SPEC,
            )
        return ft.plan_fine_tuning(job, template, self.config, model)

    def _dataset_rows(self, job: FineTuningJob, role: str) -> ft.DatasetRows | None:
        """What the ConfigMap of a configMap dataset holds (None: not a configMap dataset)."""
        dataset = ft.dataset_of(job, role)
        if dataset is None or dataset.config_map is None:
            return None
        ref = dataset.config_map
        try:
            found = self.cluster.get(kinds.CONFIG_MAP, job.metadata.namespace or "", ref.name)
        except ApiException as exc:
            if exc.status == 404:
                return ft.DatasetRows(error=f"ConfigMap {ref.name!r} not found", missing=True)
            raise
        data = found.get("data") or {}
        if ref.key not in data:
            return ft.DatasetRows(
                error=f"ConfigMap {ref.name!r} has no key {ref.key!r}", missing=True
            )
        return ft.DatasetRows(text=data[ref.key])

    def _output_model(
        self, job: FineTuningJob, status: Mapping[str, Any], model_body: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """Create the Model of a succeeded job (once); the status fields linking it."""
        if (
            status.get("phase") != FineTuningPhase.SUCCEEDED
            or not job.spec.output_model_name
            or status.get("outputModel")
        ):
            return {}
        model = None
        if model_body is not None:
            try:
                model = Model.model_validate(_manifest(kinds.MODEL, model_body))
            except ValidationError:
                model = None
        manifest = ft.output_model(job, status.get("template") or "", status["output"], model)
        assert manifest is not None
        namespace = job.metadata.namespace or ""
        try:
            created = self.cluster.create(kinds.MODEL, namespace, manifest)
            uid = created["metadata"]["uid"]
        except ApiException as exc:
            if exc.status != 409:
                if is_transient(exc):
                    raise
                # Said in the status, tried again on the job's next event.
                return {"outputModelError": status_message(exc)}
            uid = None  # made by an earlier attempt whose status write did not happen
        return {
            k: v
            for k, v in {
                "outputModel": manifest["metadata"]["name"],
                "fineTunedModelId": uid,
                "outputModelError": None,
            }.items()
            if v or k == "outputModelError"
        }

    def _converge(
        self,
        body: Mapping[str, Any],
        observed: Observed,
        planned: Callable[[], Plan | Unplanned | Waiting],
        finish: Callable[[dict[str, Any]], dict[str, Any]] = lambda status: status,
    ) -> Outcome | None:
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            return None
        if self._terminating.get(meta["namespace"], 0.0) > self.monotonic():
            return Outcome(None, False, retry=TERMINATING)
        outcome = self._reconcile(body, observed, planned(), finish)
        log.debug(
            "reconciled %s %s/%s: applied=%s pruned=%s status_written=%s",
            body.get("kind"),
            meta["namespace"],
            meta["name"],
            outcome.applied.applied if outcome.applied else [],
            outcome.applied.pruned if outcome.applied else [],
            outcome.status_written,
        )
        return outcome

    def _template_plan(self, body: Mapping[str, Any]) -> Plan | Unplanned:
        try:
            template = parse_manifest(_manifest(TEMPLATE, body))
        except ManifestInvalid as invalid:
            return Unplanned(invalid.errors)
        return plan_for(template, self.config, self.keda_installed)

    def _model_plan(
        self, body: Mapping[str, Any], template_body: Mapping[str, Any] | None
    ) -> Plan | Unplanned:
        try:
            model = Model.model_validate(_manifest(kinds.MODEL, body))
        except ValidationError as exc:
            return Unplanned(format_errors(exc))
        return self._instance_plan(model, template_body, "spec.templateRef.name", "model")

    def _deployment_plan(
        self,
        body: Mapping[str, Any],
        model_body: Mapping[str, Any] | None,
        template_body: Mapping[str, Any] | None,
    ) -> Plan | Unplanned:
        """A deployment's plan: its Model's, with its own parameters and worker settings."""
        meta = body["metadata"]
        try:
            deployment = ModelDeployment.model_validate(_manifest(kinds.MODEL_DEPLOYMENT, body))
        except ValidationError as exc:
            return Unplanned(format_errors(exc))
        if _gone(model_body):
            name = deployment.spec.model_ref.name
            return _missing(
                "spec.modelRef.name", "Model", name, meta["namespace"], "deployment", MODEL_MISSING
            )
        try:
            model = Model.model_validate(_manifest(kinds.MODEL, model_body))
        except ValidationError as exc:
            name = deployment.spec.model_ref.name
            return Unplanned([f"Model {name!r} is invalid: {'; '.join(format_errors(exc))}"])
        where = f"spec.modelRef.name: Model {model.metadata.name!r}: spec.templateRef.name"
        as_model = deployment_as_model(deployment, model)
        plan = self._instance_plan(as_model, template_body, where, "deployment")
        return replace(plan, owner=kinds.MODEL_DEPLOYMENT) if isinstance(plan, Plan) else plan

    def _instance_plan(
        self, model: Model, template_body: Mapping[str, Any] | None, where: str, who: str
    ) -> Plan | Unplanned:
        """The plan of a model (or of a deployment, as the model it runs) from its template;
        ``where`` names the template reference in messages."""
        if _gone(template_body):
            name, namespace = model.spec.template_ref.name, model.metadata.namespace or ""
            return _missing(where, "ModelTemplate", name, namespace, who, TEMPLATE_MISSING)
        try:
            template = parse_manifest(_manifest(TEMPLATE, template_body))
        except ManifestInvalid as invalid:
            name = model.spec.template_ref.name
            return Unplanned(
                [f"ModelTemplate {name!r} is invalid: {'; '.join(invalid.errors)}"],
                reason=TEMPLATE_INVALID,
            )
        problems = check_model(model, template)
        if problems:
            return Unplanned(
                [f"{p['field']}: {p['problem']}" for p in problems], reason=INVALID_PARAMETERS
            )
        return plan_for_model(model, template, self.config, self.keda_installed)

    def _reconcile(
        self,
        body: Mapping[str, Any],
        observed: Observed,
        plan: Plan | Unplanned | Waiting,
        finish: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> Outcome:
        meta = body["metadata"]
        if isinstance(plan, Waiting):
            # Its workload stays as it is; the status describes it as the cache shows it.
            status = compute_status(dict(body), plan.plan, [], observed, self.now())
            return self._finish(body, finish(status), None)
        if isinstance(plan, Unplanned):
            # Nothing is rendered and existing children stay as they are.
            status = compute_status(
                dict(body), None, plan.errors, Observed(), self.now(), invalid_reason=plan.reason
            )
            return self._finish(body, finish(status), None)
        plan = with_rollout(plan, observed)
        try:
            result = self.applier.sync(render(plan), observed.objects, meta["uid"])
        except ApplyRejected as rejected:
            if rejected.namespace_terminating:
                log.debug("namespace %s is being deleted: %s", meta["namespace"], rejected)
                self._terminating[meta["namespace"]] = self.monotonic() + TERMINATING.first
                return Outcome(None, False, retry=TERMINATING)
            status = compute_status(
                dict(body), plan, [], observed, self.now(), apply_error=str(rejected)
            )
            return self._finish(body, finish(status), None, retry=REFUSED)
        if result.wrote:
            log.info(
                "%s %s/%s: applied %s pruned %s",
                body["kind"],
                meta["namespace"],
                meta["name"],
                result.applied,
                result.pruned,
                extra=object_ref(body),
            )
        if self._unsettled(_key(body), result, observed):
            return Outcome(result, False, retry=SETTLE, settling=True)
        # What the apply answered, not the cache: after a spec change the cache still shows the
        # children of the old spec, all ready, and Ready=True would be a lie for a moment.
        now_observed = Observed(objects=result.children, pods=observed.pods)
        job, pods = now_observed.job, list(observed.pods)
        now_observed.events = self._refusals(job, pods)  # a BATCH Job without pods only
        status = compute_status(dict(body), plan, [], now_observed, self.now())
        retry = self._stuck_retry(job, pods, now_observed.events)
        return self._finish(body, finish(status), result, retry=retry)

    def _unsettled(
        self, key: tuple[str, str, str], result: ApplyResult, observed: Observed
    ) -> bool:
        """Would the status describe children about to change? Then it waits (at most
        ``SETTLE.first`` seconds): written once when they settle, not once per step."""
        if result.wrote or result.pending or deployment_behind(observed.deployment):
            since = self._settling.setdefault(key, self.monotonic())
            if self.monotonic() - since < SETTLE.first:
                return True
        self._settling.pop(key, None)
        return False

    def _finish(
        self,
        body: Mapping[str, Any],
        status: dict[str, Any],
        result: ApplyResult | None,
        retry: Backoff | None = None,
    ) -> Outcome:
        meta, key = body["metadata"], _key(body)
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
        left, reached = _ready_condition(old), _ready_condition(status)
        since = f"{left.get('reason')}@{left.get('lastTransitionTime')}"
        for event_type, reason, message in transition_events(old, status):
            self._post_event(body, since, event_type, reason, message)
        written, written_status = False, None
        if status != old:
            owner = kinds.OWNER_BY_KIND[body["kind"]]
            if self.on_status_write is not None:
                # Before the patch: its watch event may come back before the patch call returns.
                self.on_status_write(body, status)
            self.cluster.patch_status(
                owner, meta["namespace"], meta["name"], merge_patch(old, status)
            )
            metrics.STATUS_WRITES.inc()
            if ready_moved(left, reached):
                log.info(
                    "%s %s/%s: Ready %s/%s -> %s/%s: %s",
                    body["kind"],
                    meta["namespace"],
                    meta["name"],
                    left.get("status", "-"),
                    left.get("reason", "-"),
                    reached.get("status"),
                    reached.get("reason"),
                    reached.get("message", ""),
                    extra=object_ref(body),
                )
            self._statuses[key] = status
            written, written_status = True, status
        metrics.READY_REASONS.set(key, _ready_reason(status))
        return Outcome(result, written, retry, status=written_status)

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
                "apiVersion": body["apiVersion"],
                "kind": body["kind"],
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
            self.cluster.post_event(meta["namespace"], event)
        except ApiException as exc:  # an event is never worth failing a reconcile for
            if exc.status == 409:
                return  # posted by an earlier attempt whose status write did not happen
            log.warning("could not post event %s: %s", reason, exc.reason)


def object_ref(body: Mapping[str, Any]) -> dict[str, Any]:
    """Log ``extra`` naming the object: Kopf's JSON format writes it as the line's ``object``
    (``{"apiVersion", "kind", "name", "namespace", "uid"}``), as for its own per-object lines."""
    meta = body["metadata"]
    return {
        "k8s_ref": {
            "apiVersion": body.get("apiVersion"),
            "kind": body["kind"],
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        }
    }


def _ready_reason(status: Mapping[str, Any]) -> str | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("reason") or condition.get("status")
    return None
