"""Status: observed children -> conditions, workers, endpoints (a pure fold).

Conditions (kstatus style, each with ``observedGeneration``):

``Valid``        the spec passed every check (False: ``InvalidSpec``, nothing rendered; for a
                 Model also ``InvalidParameters`` and ``TemplateMissing``).
``Ready``        the endpoint serves: all desired workers ready and up to date. True with
                 ``PureTemplate`` for a template that declares required creation parameters
                 (complete: only Models made from it run). False
                 reasons name the cause: ``Unschedulable``, ``Evicted``, ``ImagePullBackOff``
                 (and the other container waiting reasons; ``CrashLoopBackOff`` with the last
                 exit: ``OOMKilled``, exit code), ``ProgressDeadlineExceeded``,
                 ``WorkersNotReady``, ``RollingOut``, ``RolloutBlocked`` (no room for the
                 new worker of a one-worker rollout: :mod:`.gpu_rollout`),
                 ``BrokerNotConfigured`` (ASYNC without a task queue broker in the operator's
                 settings), ``JobFailed``, ``FailedCreate`` (the API server refuses the
                 workers' pods: a quota, an admission policy — a Deployment's
                 ``ReplicaFailure``, the ``FailedCreate`` Events of a Job without pods),
                 ``JobLost`` (a fine-tuning job's Job deleted before it finished),
                 ``InvalidSpec``, ``InvalidParameters``, ``TemplateMissing`` (a Model whose
                 template is gone keeps its workers as they were), ``TemplateInvalid``,
                 ``ApplyFailed``,
                 ``Pending``.
``Autoscaling``  the scaling the spec asks for is in place (False: ``NoScaleToZero`` when
                 minWorkers is 0 and KEDA is not installed; ``NoQueueScaling`` for an ASYNC
                 endpoint without KEDA: fixed workers).

An ASYNC endpoint's ``status.queue`` names its task queue (a Redis Stream). Its workers are
ready only while their forwarder reaches both ``main`` and the broker.
``Stalled``      present (True) only while Ready is False for a reason that needs a person
                 (:data:`STALLED_REASONS`), with Ready's reason and message: kstatus (Flux, kpt)
                 then says ``Failed`` at once instead of waiting out its timeout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import contract as c
from ..api.models import EndpointType
from ..api.parameters import ParameterSchema
from ..observed import (
    CREATED_BY_TYPE_ANNOTATION,
    CREATED_BY_USER_ANNOTATION,
    FAILED_WAITING_REASONS,
    INVALID_SPEC,
    PURE_TEMPLATE,
    STALLED_REASONS,
    WARNING_REASONS,
    Observed,
    deployment_behind,
)
from ..plan.resolution import Plan, Rollout, RolloutMode, ScalingMode
from ..tasks import protocol as tasks


@dataclass(frozen=True)
class Verdict:
    status: str
    reason: str
    message: str


def conditions_by_type(obj: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions") or []}


def pod_problem(pods: list[dict[str, Any]]) -> Verdict | None:
    """The first reason a pod cannot serve: unschedulable, image pull, crash, ..."""
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        name = pod["metadata"]["name"]
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        status = pod.get("status") or {}
        scheduled = conditions_by_type(pod).get("PodScheduled")
        if (
            scheduled
            and scheduled.get("status") == "False"
            and scheduled.get("reason") == "Unschedulable"
        ):
            return Verdict(
                "False", "Unschedulable", f"pod {name}: {scheduled.get('message', '')}".strip()
            )
        for cs in status.get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in FAILED_WAITING_REASONS:
                detail = waiting.get("message") or waiting["reason"]
                return Verdict(
                    "False",
                    waiting["reason"],
                    f"pod {name} container {cs['name']}: {detail}{_last_exit(cs)}",
                )
    return None


def _evicted(pods: list[dict[str, Any]]) -> Verdict | None:
    """An evicted worker (its replacement is not ready yet: the caller checks that first)."""
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        status = pod.get("status") or {}
        if status.get("phase") == "Failed" and status.get("reason") == "Evicted":
            detail = status.get("message") or "evicted by the kubelet"
            return Verdict("False", "Evicted", f"pod {pod['metadata']['name']}: {detail}")
    return None


def _last_exit(container_status: dict[str, Any]) -> str:
    """Why the container's last run ended (``OOMKilled``, exit code 137), for a crash loop."""
    terminated = (container_status.get("lastState") or {}).get("terminated") or {}
    if not terminated:
        return ""
    reason = terminated.get("reason") or "Error"
    code = terminated.get("exitCode")
    restarts = container_status.get("restartCount")
    text = f"; last exit: {reason}" + (f" (exit code {code})" if code is not None else "")
    return text + (f" after {restarts} restarts" if restarts else "")


def _not_ready_containers(pods: list[dict[str, Any]]) -> list[str]:
    out = []
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if not cs.get("ready"):
                out.append(f"{pod['metadata']['name']}/{cs['name']}")
    return sorted(out)


def _deployment_verdict(observed: Observed, rollout: Rollout) -> Verdict:
    dep = observed.deployment
    if dep is None:
        return Verdict("False", "Pending", "waiting for the Deployment to be created")
    spec, st = dep.get("spec") or {}, dep.get("status") or {}
    desired = spec.get("replicas", 1)
    ready = st.get("readyReplicas", 0)
    updated = st.get("updatedReplicas", 0)
    if rollout.mode is RolloutMode.BLOCKED:
        return Verdict("False", "RolloutBlocked", rollout.message)
    problem = pod_problem(observed.pods)
    if rollout.mode is RolloutMode.IN_PLACE and (
        problem is None or problem.reason == "Unschedulable"
    ):
        # The new worker waits for an old one's accelerator: the fallback at work.
        return Verdict(
            "False", "RollingOut", f"{rollout.message}; {updated} of {desired} workers updated"
        )
    if problem:
        return problem
    failure = conditions_by_type(dep).get("ReplicaFailure") or {}
    if failure.get("status") == "True":  # e.g. a quota or an admission policy refuses the pods
        return Verdict(
            "False", failure.get("reason") or "FailedCreate", failure.get("message", "").strip()
        )
    progressing = conditions_by_type(dep).get("Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return Verdict(
            "False",
            "ProgressDeadlineExceeded",
            progressing.get("message") or "the Deployment made no progress within its deadline",
        )
    if deployment_behind(dep):
        return Verdict(
            "False", "RollingOut", "the Deployment controller has not seen the latest spec yet"
        )
    if updated < desired or st.get("replicas", 0) > desired:
        return Verdict(
            "False", "RollingOut", f"rolling out: {updated} of {desired} workers updated"
        )
    if desired == 0:
        return Verdict("True", "ScaledToZero", "no workers: scaled to zero until requests arrive")
    if ready >= desired:
        return Verdict("True", "WorkersReady", f"{ready}/{desired} workers ready")
    evicted = _evicted(observed.pods)
    if evicted:
        return evicted
    waiting = _not_ready_containers(observed.pods)
    detail = f"; not ready: {', '.join(waiting[:5])}" if waiting else ""
    return Verdict("False", "WorkersNotReady", f"{ready}/{desired} workers ready{detail}")


def job_stuck(job: Mapping[str, Any] | None, pods: list[Mapping[str, Any]]) -> bool:
    """A Job that has not started anything: no pod, nothing active, succeeded or failed, not
    finished. Only then are its Events worth reading (:func:`job_refused`)."""
    if job is None or pods or (job.get("metadata") or {}).get("deletionTimestamp"):
        return False
    st = job.get("status") or {}
    if st.get("active") or st.get("succeeded") or st.get("failed") or st.get("ready"):
        return False
    conditions = conditions_by_type(dict(job))
    return not any(conditions.get(t, {}).get("status") == "True" for t in ("Complete", "Failed"))


def _event_time(event: Mapping[str, Any]) -> str:
    series = event.get("series") or {}
    return (
        series.get("lastObservedTime")
        or event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or ""
    )


#: How the Job controller words a refused pod in its Event.
_EVENT_PREFIX = "Error creating: "


def job_refused(
    job: Mapping[str, Any] | None, pods: list[Mapping[str, Any]], events: list[Mapping[str, Any]]
) -> Verdict | None:
    """``FailedCreate`` with the API server's message when the Job controller cannot create a
    stuck Job's pods (``exceeded quota: ...``, an admission policy): the latest of its
    ``FailedCreate`` Events, as a Deployment's ``ReplicaFailure`` condition says it."""
    if not job_stuck(job, pods):
        return None
    uid = (job.get("metadata") or {}).get("uid")
    refusals = [
        e
        for e in events
        if e.get("reason") == "FailedCreate"
        and (uid is None or (e.get("involvedObject") or {}).get("uid") == uid)
    ]
    if not refusals:
        return None
    message = (max(refusals, key=_event_time).get("message") or "").strip()
    message = message.removeprefix(_EVENT_PREFIX)
    name = (job.get("metadata") or {}).get("name") or ""
    return Verdict("False", "FailedCreate", f"Job {name} cannot create its pods: {message}")


def _job_verdict(observed: Observed) -> Verdict:
    job = observed.job
    if job is None:
        return Verdict("False", "Pending", "waiting for the Job to be created")
    conditions = conditions_by_type(job)
    if conditions.get("Complete", {}).get("status") == "True":
        return Verdict("True", "Completed", "all batch workers completed")
    failed = conditions.get("Failed", {})
    if failed.get("status") == "True":
        return Verdict("False", "JobFailed", failed.get("message") or "the batch Job failed")
    problem = pod_problem(observed.pods)
    if problem:
        return problem
    refused = job_refused(job, observed.pods, observed.events)
    if refused:
        return refused
    st = job.get("status") or {}
    active, ready = st.get("active", 0), st.get("ready", 0)
    if active and ready >= active:
        return Verdict(
            "True", "Running", f"{ready} batch workers running, {st.get('succeeded', 0)} done"
        )
    return Verdict("False", "WorkersNotReady", f"{ready}/{active} batch workers ready")


def ready_verdict(plan: Plan, observed: Observed) -> Verdict:
    if plan.pure:
        names = ", ".join(
            p.name
            for p in ParameterSchema.from_model(
                plan.spec.model_creation_parameters_schema
            ).parameters
            if p.required
        )
        return Verdict(
            "True",
            PURE_TEMPLATE,
            f"the template declares required creation parameters ({names}): it runs only as "
            "the Models made from it, and renders nothing itself",
        )
    if plan.spec.endpoint_type is EndpointType.ASYNC and not plan.config.broker_url:
        return Verdict(
            "False",
            "BrokerNotConfigured",
            "ASYNC endpoints need a task queue broker: set broker.url in the operator's "
            "settings (MODELTEMPLATE_BROKER_URL); the template is valid and stored, but "
            "nothing is deployed",
        )
    if plan.spec.endpoint_type is EndpointType.BATCH:
        return _job_verdict(observed)
    return _deployment_verdict(observed, plan.rollout)


def autoscaling_verdict(plan: Plan) -> Verdict | None:
    if plan.pure or plan.spec.endpoint_type is EndpointType.BATCH:
        return None
    w = plan.workers
    if plan.spec.endpoint_type is EndpointType.ASYNC:
        if not plan.config.broker_url:
            return None
        if w.mode is ScalingMode.NO_QUEUE_SCALING:
            return Verdict(
                "False",
                "NoQueueScaling",
                f"KEDA is not installed, so nothing scales on the task queue: running "
                f"{w.fixed_replicas} fixed worker(s); install KEDA to scale between "
                f"{w.min} and {w.max} workers on queue length",
            )
        if w.mode is ScalingMode.KEDA:
            return Verdict(
                "True",
                "KEDA",
                f"KEDA ScaledObject on the task queue: {w.min}-{w.max} workers, one per "
                f"{w.per_worker} tasks waiting or in flight",
            )
    if w.mode is ScalingMode.NO_SCALE_TO_ZERO:
        return Verdict(
            "False",
            "NoScaleToZero",
            "minWorkers is 0 but KEDA is not installed: running 1 worker without scale-to-zero; "
            "install KEDA to scale between 0 and maxWorkers",
        )
    messages = {
        ScalingMode.FIXED: f"fixed at {w.min} workers (minWorkers == maxWorkers)",
        ScalingMode.HPA: f"HorizontalPodAutoscaler: {w.min}-{w.max} workers, {w.per_worker} concurrent requests each",
        ScalingMode.KEDA: f"KEDA ScaledObject: {w.min}-{w.max} workers, {w.per_worker} concurrent requests each",
    }
    return Verdict("True", w.mode.value, messages[w.mode])


def make_condition(
    ctype: str, verdict: Verdict, generation: int | None, previous: dict, now: str
) -> dict:
    old = previous.get(ctype)
    changed = old is None or old.get("status") != verdict.status
    return {
        "type": ctype,
        "status": verdict.status,
        "reason": verdict.reason,
        "message": verdict.message,
        "lastTransitionTime": now if changed else old.get("lastTransitionTime", now),
        "observedGeneration": generation,
    }


def stalled_conditions(
    ready: Verdict, generation: int | None, previous: dict, now: str
) -> list[dict]:
    """[Stalled=True] while Ready is False for a reason that needs a person, else []."""
    if ready.status != "False" or ready.reason not in STALLED_REASONS:
        return []
    return [
        make_condition(
            "Stalled", Verdict("True", ready.reason, ready.message), generation, previous, now
        )
    ]


def sgp_identity(body: dict[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    out = {
        "id": meta.get("uid"),
        "createdAt": meta.get("creationTimestamp"),
        "accountId": meta.get("namespace"),
        "createdByUserId": annotations.get(CREATED_BY_USER_ANNOTATION),
        "createdByIdentityType": annotations.get(CREATED_BY_TYPE_ANNOTATION),
    }
    return {k: v for k, v in out.items() if v is not None}


def compute_status(
    body: dict[str, Any],
    plan: Plan | None,
    errors: list[str],
    observed: Observed,
    now: str,
    apply_error: str | None = None,
    invalid_reason: str = INVALID_SPEC,
) -> dict[str, Any]:
    """The whole ``status`` of a template or a model; ``plan`` is None when nothing can be
    rendered (``errors`` say why, ``invalid_reason`` is the reason of Valid and Ready), and
    ``apply_error`` says why the API server refused a child."""
    meta = body.get("metadata") or {}
    generation = meta.get("generation")
    previous_status = body.get("status") or {}
    previous = {c["type"]: c for c in previous_status.get("conditions") or []}

    if plan is None:
        invalid = Verdict("False", invalid_reason, "; ".join(errors))
        conditions = [
            make_condition("Valid", invalid, generation, previous, now),
            make_condition("Ready", invalid, generation, previous, now),
            *stalled_conditions(invalid, generation, previous, now),
        ]
        status = {**sgp_identity(body), "observedGeneration": generation, "conditions": conditions}
        # What was resolved for the last valid spec still describes the running children.
        for key in ("workers", "endpoints", "scheduling"):
            if key in previous_status:
                status[key] = previous_status[key]
        return status

    ready = (
        Verdict("False", "ApplyFailed", apply_error)
        if apply_error
        else ready_verdict(plan, observed)
    )
    conditions = [
        make_condition(
            "Valid",
            Verdict("True", "Valid", "the spec passed validation"),
            generation,
            previous,
            now,
        ),
        make_condition("Ready", ready, generation, previous, now),
        *stalled_conditions(ready, generation, previous, now),
    ]
    scaling = autoscaling_verdict(plan)
    if scaling:
        conditions.append(make_condition("Autoscaling", scaling, generation, previous, now))

    status: dict[str, Any] = {
        **sgp_identity(body),
        "observedGeneration": generation,
        "conditions": conditions,
    }
    if plan.pure:
        return status
    status["workers"] = _workers(plan, observed)
    if plan.spec.endpoint_type in (EndpointType.SYNC, EndpointType.STREAMING):
        status["endpoints"] = endpoint_urls(plan)
    if plan.spec.endpoint_type is EndpointType.ASYNC and plan.config.broker_url:
        status["queue"] = tasks.queue_name(plan.namespace, plan.name)
    scheduling: dict[str, Any] = {}
    if plan.scheduling.resource:
        scheduling["resource"] = f"{plan.scheduling.resource}: {plan.scheduling.count}"
    if plan.scheduling.node_selector:
        scheduling["nodeSelector"] = dict(plan.scheduling.node_selector)
    if scheduling:
        status["scheduling"] = scheduling
    return status


def _workers(plan: Plan, observed: Observed) -> dict[str, int]:
    if plan.spec.endpoint_type is EndpointType.BATCH:
        st = (observed.job or {}).get("status") or {}
        spec = (observed.job or {}).get("spec") or {}
        return {"desired": spec.get("parallelism", 0), "ready": st.get("ready", 0)}
    if observed.deployment is None:
        return {"desired": 0, "ready": 0}
    return {
        "desired": (observed.deployment.get("spec") or {}).get("replicas", 0),
        "ready": (observed.deployment.get("status") or {}).get("readyReplicas", 0),
    }


def endpoint_urls(plan: Plan) -> dict[str, str]:
    base = f"http://{plan.name}.{plan.namespace}.svc.{plan.config.cluster_domain}"  # port 80
    urls = {"predict": base + c.PREDICT_PATH, "health": base + c.READY_PATH}
    if plan.spec.endpoint_type is EndpointType.STREAMING:
        urls["streaming"] = base + c.STREAM_PATH
    return urls


def ready_moved(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Did the Ready condition change its status or reason (a transition, not a new message)?"""
    return (before.get("status"), before.get("reason")) != (
        after.get("status"),
        after.get("reason"),
    )


def transition_events(
    old: dict[str, Any] | None, new: dict[str, Any]
) -> list[tuple[str, str, str]]:
    """Kubernetes Events (type, reason, message) for a change of the Ready condition."""

    def ready(status):
        return {c["type"]: c for c in (status or {}).get("conditions") or []}.get("Ready") or {}

    before, after = ready(old), ready(new)
    if not ready_moved(before, after):
        return []
    if after.get("status") == "True":
        return [("Normal", "Ready", after.get("message", ""))]
    if after.get("reason") in WARNING_REASONS:
        return [("Warning", after["reason"], after.get("message", ""))]
    return []


def model_status(
    status: dict[str, Any],
    template: Mapping[str, Any] | None,
    previous: Mapping[str, Any] | None,
    now: str,
    waiting_for: str = "",
) -> dict[str, Any]:
    """A model's status: the common one plus its template (SGP id, the generation it runs) and
    the predict URL; while the template is missing, what the last status said of it; while it
    waits for its turn in the template's rollout (``waiting_for`` says why), the generation it
    still runs and an ``UpToDate=False`` condition."""
    previous = previous or {}
    out = dict(status)
    if template is not None:
        out["modelTemplateId"] = template["metadata"].get("uid")
        out["templateGeneration"] = template["metadata"].get("generation")
    if template is None or waiting_for:
        for key in ("modelTemplateId", "templateGeneration"):
            out.pop(key, None)
            if key in previous:
                out[key] = previous[key]
    if waiting_for:
        before = {c["type"]: c for c in previous.get("conditions") or []}
        generation = status.get("observedGeneration")
        message = f"waiting for the template's generation {template['metadata'].get('generation')}"
        verdict = Verdict("False", "WaitingForRollout", f"{message}: {waiting_for}")
        conditions = list(status.get("conditions") or [])
        conditions.append(make_condition("UpToDate", verdict, generation, before, now))
        out["conditions"] = conditions
    predict = (out.get("endpoints") or {}).get("predict")
    if predict:
        out["endpointUrl"] = predict
    return out
