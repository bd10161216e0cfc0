"""GPU-aware rollout: the pure decision (surge, replace in place, blocked), its rendering and
the Ready condition it leads to."""

from dataclasses import replace

import pytest
from support.templates import plan

from modeltemplate_operator.observed import STALLED_REASONS, Observed
from modeltemplate_operator.plan.gpu_rollout import decide, with_rollout
from modeltemplate_operator.plan.resolution import Rollout, RolloutMode
from modeltemplate_operator.render.workloads import render
from modeltemplate_operator.status.conditions import compute_status

pytestmark = pytest.mark.unit

NOW = "2026-02-01T00:00:00Z"
H100 = {"gpuType": "nvidia-hopper-h100", "gpus": 2, "minWorkers": 2, "maxWorkers": 2}
NO_GPU = (
    "0/9 nodes are available: 1 Insufficient nvidia.com/gpu, 8 node(s) didn't match "
    "Pod's node affinity/selector."
)


def gpu_plan(workers: int = 2):
    return plan({**H100, "minWorkers": workers, "maxWorkers": workers})


def deployment(replicas=2, updated=1, max_surge=1, generation=4, observed_generation=4):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llm", "generation": generation},
        "spec": {
            "replicas": replicas,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": 1 - max_surge},
            },
        },
        "status": {
            "observedGeneration": observed_generation,
            "replicas": replicas + 1,
            "updatedReplicas": updated,
            "readyReplicas": replicas,
        },
    }


def pod(
    name,
    template_hash,
    *,
    node=None,
    unschedulable=None,
    created="2026-02-01T00:00:00Z",
    selector=None,
):
    conditions = []
    if unschedulable is not None:
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": unschedulable,
            }
        )
    # As the watch cache keeps a pod: no containers.
    spec = {"nodeSelector": selector or {"k8s.amazonaws.com/accelerator": "nvidia-hopper-h100"}}
    if node:
        spec["nodeName"] = node
    return {
        "metadata": {
            "name": name,
            "labels": {"pod-template-hash": template_hash},
            "creationTimestamp": created,
        },
        "spec": spec,
        "status": {"phase": "Pending" if node is None else "Running", "conditions": conditions},
    }


OLD = [pod(f"llm-old-{i}", "old", node="gpu-h100") for i in range(2)]
SURGE = pod("llm-new-0", "new", unschedulable=NO_GPU, created="2026-02-01T00:05:00Z")


def rendered_deployment(p):
    return next(o for o in render(p) if o["kind"] == "Deployment")


def observed(pods, **dep):
    return Observed(objects=[deployment(**dep)], pods=pods)


def test_nothing_observed_or_nothing_stuck_keeps_surging():
    assert decide(gpu_plan(), Observed()) == Rollout()
    assert decide(gpu_plan(), observed(OLD, updated=2)) == Rollout()
    running_surge = pod("llm-new-0", "new", node="gpu-h100", created="2026-02-01T00:05:00Z")
    assert decide(gpu_plan(), observed([*OLD, running_surge])) == Rollout()


def test_a_first_rollout_that_cannot_schedule_is_not_a_blocked_rollout():
    """No older workers run: plain Unschedulable (the status says so), not a fallback."""
    alone = observed([pod("llm-new-0", "new", unschedulable=NO_GPU)], replicas=1, updated=1)
    assert decide(gpu_plan(1), alone).mode is RolloutMode.SURGE


def test_several_workers_fall_back_to_replacing_in_place():
    decision = decide(gpu_plan(), observed([*OLD, SURGE]))
    assert decision.mode is RolloutMode.IN_PLACE
    assert "llm-new-0" in decision.message
    assert "2 free nvidia.com/gpu on nodes k8s.amazonaws.com/accelerator=nvidia-hopper-h100" in (
        decision.message
    )
    deployment_out = rendered_deployment(with_rollout(gpu_plan(), observed([*OLD, SURGE])))
    assert deployment_out["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
    }


def test_the_fallback_lasts_until_the_rollout_is_done_then_surging_returns():
    # An old worker was stopped for the new one, which now runs: still rolling, still in place.
    mid = [OLD[0], pod("llm-new-0", "new", node="gpu-h100", created="2026-02-01T00:05:00Z")]
    assert decide(gpu_plan(), observed(mid, max_surge=0)).mode is RolloutMode.IN_PLACE
    # All workers on the new template: back to surging (and the render says so).
    done = [pod(f"llm-new-{i}", "new", node="gpu-h100") for i in range(2)]
    finished = observed(done, max_surge=0, updated=2)
    assert decide(gpu_plan(), finished) == Rollout()
    rendered = rendered_deployment(with_rollout(gpu_plan(), finished))
    assert rendered["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_one_worker_is_blocked_naming_the_missing_resource():
    one = observed([OLD[0], SURGE], replicas=1, updated=0)
    decision = decide(gpu_plan(1), one)
    assert decision.mode is RolloutMode.BLOCKED
    assert "2 free nvidia.com/gpu" in decision.message and "llm-new-0" in decision.message
    assert "Insufficient nvidia.com/gpu" in decision.message
    # The render keeps surging: the old worker keeps serving.
    rendered = rendered_deployment(with_rollout(gpu_plan(1), one))
    assert rendered["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_status_says_rollout_blocked_and_stalled():
    one = observed([OLD[0], SURGE], replicas=1, updated=0)
    p = with_rollout(gpu_plan(1), one)
    body = {"metadata": {"name": "llm", "namespace": "team-a", "uid": "u", "generation": 4}}
    status = compute_status(body, p, [], one, NOW)
    by_type = {c["type"]: c for c in status["conditions"]}
    assert (by_type["Ready"]["status"], by_type["Ready"]["reason"]) == ("False", "RolloutBlocked")
    assert "nvidia.com/gpu" in by_type["Ready"]["message"]
    assert "RolloutBlocked" in STALLED_REASONS and by_type["Stalled"]["status"] == "True"


def test_status_while_replacing_in_place_is_rolling_out_not_unschedulable():
    seen = observed([*OLD, SURGE])
    p = with_rollout(gpu_plan(), seen)
    body = {"metadata": {"name": "llm", "namespace": "team-a", "uid": "u", "generation": 4}}
    ready = {c["type"]: c for c in compute_status(body, p, [], seen, NOW)["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "RollingOut")
    assert "in place" in ready["message"] and "1 of 2 workers updated" in ready["message"]
    # Without the decision (a plain plan), the same pods read as Unschedulable.
    plain = replace(p, rollout=Rollout())
    ready = {c["type"]: c for c in compute_status(body, plain, [], seen, NOW)["conditions"]}
    assert ready["Ready"]["reason"] == "Unschedulable"


def test_no_fallback_when_stopping_an_old_worker_would_not_make_room():
    """A new worker needing another GPU class, or no GPU at all: stopping an old worker frees
    nothing it can use, so the rollout is left as it is (Unschedulable)."""
    a100 = {"k8s.amazonaws.com/accelerator": "nvidia-ampere-a100"}
    elsewhere = [pod(f"llm-old-{i}", "old", node="gpu-a100", selector=a100) for i in range(2)]
    assert decide(gpu_plan(), observed([*elsewhere, SURGE])) == Rollout()
    cpu = plan({"gpus": 0, "gpuType": None, "minWorkers": 1, "maxWorkers": 1})
    assert cpu.scheduling.resource is None
    stuck = pod("llm-new-0", "new", unschedulable="0/9 nodes: Insufficient cpu", created="z")
    assert decide(cpu, observed([OLD[0], stuck], replicas=1, updated=0)) == Rollout()
    # The status then says what the scheduler says.
    body = {"metadata": {"name": "llm", "namespace": "team-a", "uid": "u", "generation": 4}}
    seen = observed([*elsewhere, SURGE])
    ready = {
        c["type"]: c
        for c in compute_status(body, with_rollout(gpu_plan(), seen), [], seen, NOW)["conditions"]
    }["Ready"]
    assert ready["reason"] == "Unschedulable"


def test_terminating_and_finished_pods_do_not_count():
    gone = pod("llm-old-0", "old", node="gpu-h100")
    gone["metadata"]["deletionTimestamp"] = "2026-02-01T00:06:00Z"
    assert decide(gpu_plan(1), observed([gone, SURGE], replicas=1, updated=0)) == Rollout()
    blocked = decide(gpu_plan(1), observed([OLD[0], SURGE], replicas=1, updated=0))
    assert blocked.mode is RolloutMode.BLOCKED and "llm-new-0" in blocked.message


def test_a_model_rolls_the_same_way():
    """The decision applies to any plan the renderer takes: a Model's too."""
    from support.templates import manifest

    from modeltemplate_operator.api.models import Model
    from modeltemplate_operator.api.validation import parse_manifest
    from modeltemplate_operator.plan.config import OperatorConfig
    from modeltemplate_operator.plan.resolution import plan_for_model

    template = parse_manifest(manifest(H100))
    model = Model.model_validate(
        {
            "apiVersion": "launch.modelops.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "llm", "namespace": "team-a", "uid": "uid-m"},
            "spec": {"templateRef": {"name": "llm"}, "minWorkers": 1, "maxWorkers": 1},
        }
    )
    p = plan_for_model(model, template, OperatorConfig(), keda_installed=False)
    stuck = observed([OLD[0], SURGE], replicas=1, updated=0)
    assert with_rollout(p, stuck).rollout.mode is RolloutMode.BLOCKED
    two = model.model_copy(
        update={"spec": model.spec.model_copy(update={"min_workers": 2, "max_workers": 2})}
    )
    p2 = plan_for_model(two, template, OperatorConfig(), keda_installed=False)
    assert rendered_deployment(with_rollout(p2, observed([*OLD, SURGE])))["spec"]["strategy"][
        "rollingUpdate"
    ] == {"maxSurge": 0, "maxUnavailable": 1}


def test_the_decision_reads_only_what_the_pod_cache_keeps():
    """Pods as the watch cache keeps them (no containers) carry what the decision reads."""
    from modeltemplate_operator.api.kinds import POD
    from modeltemplate_operator.controller.caches import cached

    def full(p):
        p = {**p, "spec": {**p["spec"], "containers": [{"name": "main", "image": "x"}]}}
        return cached(POD, p)

    pods = [full(p) for p in [*OLD, SURGE]]
    assert all("containers" not in p["spec"] for p in pods)
    assert decide(gpu_plan(), observed(pods)).mode is RolloutMode.IN_PLACE
