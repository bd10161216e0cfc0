"""A fine-tuning run's phase and status, from its Job and pod (a pure fold, as for endpoints).

The phase follows the Job: ``Pending`` (the causes named as for endpoints), ``Running``,
``Succeeded``, ``Failed`` (the Job's reason and the container's exit; ``JobLost`` when the Job
disappeared before it finished: the run is never started again by itself) or ``Cancelled``.
A finished phase is final.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..api.models import FineTuningPhase
from ..api.models.finetuning import TERMINAL_PHASES
from ..observed import INVALID_SPEC
from .conditions import (
    Verdict,
    conditions_by_type,
    job_refused,
    make_condition,
    pod_problem,
    sgp_identity,
    stalled_conditions,
)

JOB_FAILED = "JobFailed"
#: Ready reason of a run whose Job disappeared before it finished.
JOB_LOST = "JobLost"
CANCELLED = "Cancelled"


@dataclass(frozen=True)
class Phase:
    phase: FineTuningPhase
    reason: str
    message: str
    start_time: str | None = None
    completion_time: str | None = None


def _terminated(pods: list[dict[str, Any]]) -> str:
    """How the job's last pod ended (exit code, reason, termination message)."""
    for pod in sorted(
        pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True
    ):
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated") or {}
            if term:
                text = f"pod {pod['metadata']['name']}: {term.get('reason') or 'Error'}"
                if term.get("exitCode") is not None:
                    text += f" (exit code {term['exitCode']})"
                if term.get("message"):
                    text += f": {term['message']}"
                return text
    return ""


def verdict(
    job: Mapping[str, Any] | None,
    pods: list[dict[str, Any]],
    events: list[Mapping[str, Any]] | None = None,
) -> Phase:
    """The phase of a run from its Job and pods (the Job not created yet: Pending); ``events``:
    the Job's ``FailedCreate`` Events, read while it has no pod. The start time is when the
    container started running (a Job starts as its pod is created)."""
    if job is None:
        return Phase(FineTuningPhase.PENDING, "Pending", "waiting for the Job to be created")
    st = job.get("status") or {}
    conditions = conditions_by_type(dict(job))
    start = st.get("startTime")
    complete = conditions.get("Complete") or {}
    if complete.get("status") == "True":
        return Phase(
            FineTuningPhase.SUCCEEDED,
            "Succeeded",
            "the fine-tuning job completed",
            start,
            st.get("completionTime") or complete.get("lastTransitionTime"),
        )
    failed = conditions.get("Failed") or {}
    if failed.get("status") == "True":
        detail = _terminated(pods)
        message = failed.get("message") or failed.get("reason") or "the Job failed"
        return Phase(
            FineTuningPhase.FAILED,
            JOB_FAILED,
            f"{message}; {detail}" if detail else message,
            start,
            failed.get("lastTransitionTime"),
        )
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        meta = job["metadata"]
        return job_lost(meta.get("name") or "", start, meta["deletionTimestamp"], deleting=True)
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    problem = pod_problem(live) or job_refused(job, live, list(events or []))
    if problem:
        return Phase(FineTuningPhase.PENDING, problem.reason, problem.message)
    running = [p for p in live if (p.get("status") or {}).get("phase") == "Running"]
    if running:
        return Phase(
            FineTuningPhase.RUNNING,
            "Running",
            f"pod {running[0]['metadata']['name']} is running",
            _started(running[0]) or start,
        )
    return Phase(FineTuningPhase.PENDING, "Pending", "waiting for the job's pod to start")


def _started(pod: Mapping[str, Any]) -> str | None:
    """When the pod's container started (else when the kubelet took the pod)."""
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or []:
        running = (cs.get("state") or {}).get("running") or {}
        if running.get("startedAt"):
            return running["startedAt"]
    return status.get("startTime")


#: Ready reason while the Job is being created (``status.jobName`` written, the create sent).
CREATING = "CreatingJob"


def creating(name: str) -> Phase:
    """The phase written with ``status.jobName``, just before the Job is created."""
    return Phase(FineTuningPhase.PENDING, CREATING, f"creating the Job {name}")


def marked_job(status: Mapping[str, Any] | None) -> str | None:
    """The Job a run's status says was created (None: none was). ``jobName`` is written
    before the create and taken back when the API server refuses it; statuses of earlier
    versions also named it beside a refused create (``ApplyFailed``) or a spec refused after
    that, which created nothing: those are not marks."""
    status = status or {}
    name = status.get("jobName")
    if not name:
        return None
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    if (conditions.get("Ready") or {}).get("reason") == "ApplyFailed":
        return None
    if (conditions.get("Valid") or {}).get("status") == "False":
        return None
    return name


def job_lost(
    name: str, start_time: str | None, now: str | None, *, deleting: bool = False
) -> Phase:
    """The phase of a run whose Job is gone (or being deleted) before it finished: Failed, and
    final — the operator never creates the Job again, so training never runs twice."""
    what = "is being deleted" if deleting else "no longer exists"
    return Phase(
        FineTuningPhase.FAILED,
        JOB_LOST,
        f"the Job {name} of this run {what}: it was deleted before it finished (or lost "
        "while the operator was down); the run is not restarted by itself — create a new "
        "FineTuningJob to run it again",
        start_time,
        now,
    )


def cancelled(previous: Mapping[str, Any], now: str) -> Phase:
    """The phase of a cancelled run: the times already recorded are kept."""
    return Phase(
        FineTuningPhase.CANCELLED,
        CANCELLED,
        "cancelled (spec.cancelled is true): the Job was deleted",
        previous.get("startTime"),
        previous.get("completionTime") or now,
    )


def is_finished(status: Mapping[str, Any] | None) -> bool:
    return (status or {}).get("phase") in {p.value for p in TERMINAL_PHASES}


def fine_tuning_status(
    body: Mapping[str, Any],
    phase: Phase | None,
    now: str,
    *,
    errors: list[str] | None = None,
    invalid_reason: str = INVALID_SPEC,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole status of a FineTuningJob. ``phase`` None: ``errors`` say why nothing runs
    (the job stays Pending, Ready=False with ``invalid_reason``, Stalled for a bad spec)."""
    meta = body.get("metadata") or {}
    generation = meta.get("generation")
    previous_status = dict(body.get("status") or {})
    previous = {c["type"]: c for c in previous_status.get("conditions") or []}
    if phase is None:
        phase = Phase(FineTuningPhase.PENDING, invalid_reason, "; ".join(errors or []))
        valid = Verdict("False", invalid_reason, phase.message)
    else:
        valid = Verdict("True", "Valid", "the spec passed validation")
    ready_status = "True" if phase.phase is FineTuningPhase.SUCCEEDED else "False"
    ready = Verdict(ready_status, phase.reason, phase.message)
    conditions = [
        make_condition("Valid", valid, generation, previous, now),
        make_condition("Ready", ready, generation, previous, now),
        *stalled_conditions(ready, generation, previous, now),
    ]
    identity = sgp_identity(dict(body))
    status: dict[str, Any] = {
        "id": identity.get("id"),
        "createdAt": identity.get("createdAt"),
        "observedGeneration": generation,
        "conditions": conditions,
        "phase": phase.phase.value,
        "message": phase.message,
    }
    for key in ("template", "baseModelId", "jobName", "output", "outputModel", "fineTunedModelId"):
        if previous_status.get(key) is not None:
            status[key] = previous_status[key]
    if phase.start_time or previous_status.get("startTime"):
        status["startTime"] = previous_status.get("startTime") or phase.start_time
    if phase.completion_time:
        status["completionTime"] = phase.completion_time
    status.update({k: v for k, v in (extra or {}).items() if v is not None})
    return {k: v for k, v in status.items() if v is not None}
