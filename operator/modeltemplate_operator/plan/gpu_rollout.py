"""GPU-aware rollout: how a Deployment rolls when there is no room for a surge worker (pure).

A rolling update with ``maxSurge: 1`` starts one new worker before it stops an old one, so it
needs one spare accelerator of the workload's class (a spare GPU of the same type, or any spare
capacity the worker requests). When the cluster has none, the new worker stays ``Pending``
(``PodScheduled=False``, reason ``Unschedulable``) and the rollout never ends. From the
observed pods and Deployment, :func:`decide` says what to do instead:

Only when stopping an old worker would give a new one what it lacks (:func:`frees_room`: the
old workers run on the same accelerator class); a worker that needs a GPU type the old workers
do not hold stays plain ``Unschedulable``, as any pod:

- a workload with more than one worker is replaced **in place**: ``maxSurge: 0,
  maxUnavailable: 1`` (one old worker stops, its accelerator goes to a new one; the others keep
  serving). The fallback lasts until the rollout completes, then the Deployment goes back to
  surging (a strategy change alone starts no new rollout);
- a workload with one worker cannot be replaced without stopping the endpoint: the old worker
  keeps serving, and Ready says ``False``/``RolloutBlocked`` naming the missing resource (until
  one frees up and the surge worker starts, or someone decides otherwise).

The decision rides on the plan (:func:`with_rollout`), so the fallback is applied by the one
renderer through the normal apply, and the status reads it from the same plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..observed import Observed, deployment_behind
from .resolution import Plan, Rollout, RolloutMode

__all__ = ["HASH_LABEL", "decide", "with_rollout"]

#: The label the Deployment controller gives the pods of each ReplicaSet (one per pod template).
HASH_LABEL = "pod-template-hash"


def _hash(pod: Mapping[str, Any]) -> str | None:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(HASH_LABEL)


def _live(pods: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [
        p
        for p in pods
        if not (p.get("metadata") or {}).get("deletionTimestamp")
        and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]


def _unschedulable(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return dict(cond)
    return None


def _scheduled(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def _stuck(observed: Observed) -> tuple[Mapping[str, Any], list[Mapping[str, Any]]] | None:
    """A new worker that cannot be scheduled and the scheduled workers of older pod templates
    (created before it) that still run."""
    pods = sorted(_live(observed.pods), key=lambda p: p["metadata"]["name"])
    for pod in pods:
        if _unschedulable(pod) is None:
            continue
        created = pod["metadata"].get("creationTimestamp") or ""
        older = [
            q
            for q in pods
            if _hash(q) != _hash(pod)
            and _scheduled(q)
            and (q["metadata"].get("creationTimestamp") or "") <= created
        ]
        if older:
            return pod, older
    return None


def frees_room(plan: Plan, older: list[Mapping[str, Any]]) -> bool:
    """Would stopping one old worker give a new one what it lacks? Only for GPU workers whose
    old workers run on the same accelerator class (the same node selector: the watch caches
    keep no pod containers, so not the GPU count); otherwise (a new GPU type, a CPU-only
    worker) stopping one frees nothing it can use, and the status says Unschedulable as for
    any pod."""
    sched = plan.scheduling
    if not sched.resource or sched.count <= 0 or not sched.node_selector:
        return False
    return any(
        dict((q.get("spec") or {}).get("nodeSelector") or {}) == dict(sched.node_selector)
        for q in older
    )


def _rolling(observed: Observed) -> bool:
    """Is a rollout under way: pods of more than one template, or the Deployment not done?"""
    dep = observed.deployment or {}
    spec, st = dep.get("spec") or {}, dep.get("status") or {}
    if len({_hash(p) for p in _live(observed.pods)}) > 1:
        return True
    if deployment_behind(dep):
        return True
    return st.get("updatedReplicas", 0) < spec.get("replicas", 1)


def _falls_back(observed: Observed) -> bool:
    """Does the Deployment already replace workers in place (as this module renders it)?"""
    strategy = ((observed.deployment or {}).get("spec") or {}).get("strategy") or {}
    return (strategy.get("rollingUpdate") or {}).get("maxSurge") in (0, "0", "0%")


def _missing(plan: Plan) -> str:
    """The resource a new worker needs, as the message names it."""
    sched = plan.scheduling
    where = ", ".join(f"{k}={v}" for k, v in sorted(sched.node_selector.items()))
    return f"{sched.count} free {sched.resource}" + (f" on nodes {where}" if where else "")


def decide(plan: Plan, observed: Observed) -> Rollout:
    """How the Deployment of ``plan`` should roll, given its pods and Deployment as observed."""
    dep = observed.deployment
    if dep is None:
        return Rollout()
    workers = (dep.get("spec") or {}).get("replicas", 1)
    found = _stuck(observed)
    if found is None or not frees_room(plan, found[1]):
        if plan.scheduling.resource and _falls_back(observed) and _rolling(observed):
            return Rollout(
                RolloutMode.IN_PLACE,
                f"replacing workers in place, one at a time: no room for a surge worker "
                f"(needs {_missing(plan)})",
            )
        return Rollout()
    pod = found[0]["metadata"]["name"]
    why = (_unschedulable(found[0]) or {}).get("message", "").strip()
    detail = f"pod {pod} cannot be scheduled: it needs {_missing(plan)}" + (
        f" ({why})" if why else ""
    )
    if workers > 1:
        return Rollout(
            RolloutMode.IN_PLACE,
            f"replacing workers in place, one at a time (maxSurge 0, maxUnavailable 1): {detail}",
        )
    return Rollout(
        RolloutMode.BLOCKED,
        f"rollout blocked: {detail}; the one worker keeps serving the previous spec, and "
        "replacing it in place would stop the endpoint (free the resource, or run more "
        "than one worker)",
    )


def with_rollout(plan: Plan, observed: Observed) -> Plan:
    """The plan with its rollout decided from ``observed`` (only Deployments roll)."""
    rollout = decide(plan, observed)
    return plan if rollout == plan.rollout else replace(plan, rollout=rollout)
