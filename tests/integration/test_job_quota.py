"""Job-based workloads whose pods a ResourceQuota refuses name it as Deployments do.

A Job has no condition saying that its controller cannot create its pods (a Deployment has
``ReplicaFailure``); the Job controller says it in ``FailedCreate`` Events. A BATCH template and
a fine-tuning job whose Job has no pod report ``Ready=False FailedCreate`` with the API
server's message, ``Stalled=True`` and a Warning Event — on the real control plane, with a real
quota.
"""

from __future__ import annotations

import pytest
from support.k8s import apply_list, apply_quota, get_json, wait_for
from support.manifests import tiny_template
from test_fine_tuning import a100_template, ftj

pytestmark = pytest.mark.integration


def conditions_of(cluster, namespace, kind, name) -> dict:
    obj = get_json(cluster, kind, name, "-n", namespace)
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def refused(cluster, namespace, kind, name) -> dict:
    """The Ready condition once it says FailedCreate (and the Stalled one with it)."""
    return wait_for(
        lambda: (
            (c := conditions_of(cluster, namespace, kind, name)).get("Ready", {}).get("reason")
            == "FailedCreate"
            and c
        ),
        timeout=90,
        what=f"{kind} {name} Ready=False/FailedCreate "
        f"(last: {conditions_of(cluster, namespace, kind, name).get('Ready')})",
    )


def warning_event(cluster, namespace, name, reason) -> None:
    wait_for(
        lambda: any(
            e["involvedObject"].get("name") == name
            and e["reason"] == reason
            and e["type"] == "Warning"
            and e["involvedObject"].get("kind") != "Job"
            for e in get_json(cluster, "events", "-n", namespace)["items"]
        ),
        what=f"a Warning {reason} Event on {name}",
    )


def test_a_batch_template_whose_pods_a_quota_refuses_says_so(cluster, operator, namespace):
    apply_quota(cluster, namespace, "no-pods", {"pods": "0"})
    batch = tiny_template("batch", endpoint_type="BATCH", minWorkers=2, maxWorkers=2)
    apply_list(cluster, namespace, [batch])
    conditions = refused(cluster, namespace, "modeltemplate", "batch")
    ready, stalled = conditions["Ready"], conditions["Stalled"]
    assert ready["status"] == "False"
    assert "exceeded quota: no-pods" in ready["message"], ready
    assert ready["message"].startswith("Job batch cannot create its pods: pods "), ready
    assert (stalled["status"], stalled["reason"]) == ("True", "FailedCreate")
    warning_event(cluster, namespace, "batch", "FailedCreate")


def test_a_fine_tuning_job_whose_pod_a_gpu_quota_refuses_says_so(cluster, operator, namespace):
    apply_quota(cluster, namespace, "no-gpus", {"requests.nvidia.com/gpu": "0"})
    apply_list(cluster, namespace, [a100_template(), ftj("tune")])
    conditions = refused(cluster, namespace, "finetuningjob", "tune")
    ready, stalled = conditions["Ready"], conditions["Stalled"]
    assert "exceeded quota: no-gpus" in ready["message"], ready
    assert "requests.nvidia.com/gpu" in ready["message"], ready
    assert (stalled["status"], stalled["reason"]) == ("True", "FailedCreate")
    st = get_json(cluster, "finetuningjob", "tune", "-n", namespace)["status"]
    assert st["phase"] == "Pending" and st["jobName"] == "tune"
    assert st["message"] == ready["message"]
    warning_event(cluster, namespace, "tune", "FailedCreate")
