"""Status fold: conditions, workers, endpoints and events from observed children."""

import copy

from support.templates import BASE, plan

from modeltemplate_operator.observed import Observed
from modeltemplate_operator.status.conditions import (
    compute_status,
    job_refused,
    job_stuck,
    transition_events,
)

NOW = "2026-02-01T00:00:00Z"


def deployment(replicas=1, ready=1, updated=1, generation=2, observed_generation=2):
    return {
        "kind": "Deployment",
        "metadata": {"name": "llm", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed_generation,
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
        },
    }


def deployment_with(ctype, status, reason, message="", **kwargs):
    """deployment(**kwargs) with one condition in its status."""
    dep = deployment(**kwargs)
    condition = {"type": ctype, "status": status, "reason": reason, "message": message}
    dep["status"]["conditions"] = [condition]
    return dep


def pod(name="llm-abc", scheduled=None, waiting=None, ready=True):
    conditions = []
    if scheduled:
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": scheduled,
            }
        )
    statuses = [
        {
            "name": "main",
            "ready": ready,
            "state": {"waiting": waiting} if waiting else {"running": {}},
        }
    ]
    return {
        "metadata": {"name": name},
        "status": {"conditions": conditions, "containerStatuses": statuses},
    }


def conditions(status):
    return {c["type"]: c for c in status["conditions"]}


def status_of(observed, p=None, body=None):
    return compute_status(body or copy.deepcopy(BASE), p or plan(), [], observed, NOW)


def test_ready_when_every_desired_worker_is_ready():
    st = status_of(
        Observed([deployment(replicas=2, ready=2, updated=2)], pods=[pod("a"), pod("b")])
    )
    ready = conditions(st)["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "True",
        "WorkersReady",
        "2/2 workers ready",
    )
    assert ready["observedGeneration"] == 3 and st["observedGeneration"] == 3
    assert st["workers"] == {"desired": 2, "ready": 2}
    assert conditions(st)["Valid"]["status"] == "True"
    assert conditions(st)["Autoscaling"]["reason"] == "HPA"


def test_sgp_read_only_fields_come_from_metadata():
    body = copy.deepcopy(BASE)
    body["metadata"]["annotations"] = {
        "launch.modelops.dev/created-by-user-id": "alice",
        "launch.modelops.dev/created-by-identity-type": "user",
    }
    st = status_of(Observed([deployment()]), body=body)
    assert st["id"] == "uid-1"
    assert st["createdAt"] == "2026-01-02T03:04:05Z"
    assert st["accountId"] == "team-a"
    assert st["createdByUserId"] == "alice" and st["createdByIdentityType"] == "user"


def test_unschedulable_pod_is_the_reason():
    msg = "0/7 nodes are available: 1 Insufficient nvidia.com/gpu, 6 node(s) didn't match Pod's node affinity/selector."
    st = status_of(Observed([deployment(ready=0)], pods=[pod(scheduled=msg, ready=False)]))
    ready = conditions(st)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "Unschedulable")
    assert "Insufficient nvidia.com/gpu" in ready["message"] and "llm-abc" in ready["message"]


def test_image_pull_failure_is_the_reason():
    waiting = {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "docker.io/x:1"'}
    st = status_of(Observed([deployment(ready=0)], pods=[pod(waiting=waiting, ready=False)]))
    ready = conditions(st)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "ImagePullBackOff")
    assert "Back-off pulling image" in ready["message"]


def test_readiness_never_passing_names_the_container():
    st = status_of(Observed([deployment(ready=0)], pods=[pod(ready=False)]))
    ready = conditions(st)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "WorkersNotReady")
    assert ready["message"] == "0/1 workers ready; not ready: llm-abc/main"


def test_rollout_in_progress():
    st = status_of(Observed([deployment(replicas=2, ready=2, updated=1)]))
    assert conditions(st)["Ready"]["reason"] == "RollingOut"
    st = status_of(Observed([deployment(generation=3, observed_generation=2)]))
    assert conditions(st)["Ready"]["reason"] == "RollingOut"


def test_async_is_reported_as_not_available():
    st = status_of(Observed(), p=plan(endpointType="ASYNC"))
    ready = conditions(st)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "BrokerNotConfigured")
    assert "Autoscaling" not in conditions(st) and "endpoints" not in st


def test_no_scale_to_zero_without_keda_is_a_false_condition():
    st = status_of(Observed([deployment()]), p=plan(endpoint={"minWorkers": 0}))
    auto = conditions(st)["Autoscaling"]
    assert (auto["status"], auto["reason"]) == ("False", "NoScaleToZero")
    assert "KEDA is not installed" in auto["message"]


def test_batch_job_states():
    p = plan(endpointType="BATCH", endpoint={"minWorkers": 2, "maxWorkers": 2})
    running = {"kind": "Job", "spec": {"parallelism": 2}, "status": {"active": 2, "ready": 2}}
    assert conditions(status_of(Observed([running]), p=p))["Ready"]["reason"] == "Running"
    done = {
        "kind": "Job",
        "spec": {"parallelism": 2},
        "status": {"conditions": [{"type": "Complete", "status": "True"}]},
    }
    assert conditions(status_of(Observed([done]), p=p))["Ready"]["reason"] == "Completed"
    failed = {
        "kind": "Job",
        "status": {
            "conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]
        },
    }
    ready = conditions(status_of(Observed([failed]), p=p))["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "JobFailed",
        "BackoffLimitExceeded",
    )


def test_invalid_spec_keeps_last_resolved_fields_and_says_why():
    body = copy.deepcopy(BASE)
    body["status"] = {"workers": {"desired": 1, "ready": 1}}
    st = compute_status(body, None, ["spec.x (1) must be y"], Observed(), NOW)
    assert conditions(st)["Valid"] == {
        "type": "Valid",
        "status": "False",
        "reason": "InvalidSpec",
        "message": "spec.x (1) must be y",
        "lastTransitionTime": NOW,
        "observedGeneration": 3,
    }
    assert conditions(st)["Ready"]["reason"] == "InvalidSpec"
    assert st["workers"] == {"desired": 1, "ready": 1}


def test_endpoint_urls_of_the_service():
    st = status_of(Observed([deployment()]), p=plan(endpointType="STREAMING"))
    assert st["endpoints"] == {
        "predict": "http://llm.team-a.svc.cluster.local/predict",
        "streaming": "http://llm.team-a.svc.cluster.local/stream",
        "health": "http://llm.team-a.svc.cluster.local/readyz",
    }
    assert st["scheduling"] == {
        "resource": "nvidia.com/gpu: 1",
        "nodeSelector": {"k8s.amazonaws.com/accelerator": "nvidia-hopper-h100"},
    }


def test_steady_state_is_a_fixed_point():
    """Folding again over the same children gives the identical status (so nothing is written)."""
    observed = Observed([deployment()], pods=[pod()])
    first = status_of(observed)
    body = copy.deepcopy(BASE) | {"status": first}
    again = compute_status(body, plan(), [], observed, "2030-01-01T00:00:00Z")
    assert again == first


def test_transition_time_moves_only_when_the_status_flips():
    first = status_of(Observed([deployment(ready=0)], pods=[pod(ready=False)]))
    body = copy.deepcopy(BASE) | {"status": first}
    later = compute_status(body, plan(), [], Observed([deployment()]), "2030-01-01T00:00:00Z")
    assert conditions(later)["Ready"]["lastTransitionTime"] == "2030-01-01T00:00:00Z"
    assert conditions(later)["Valid"]["lastTransitionTime"] == NOW


def test_events_on_ready_transitions():
    not_ready = status_of(
        Observed(
            [deployment(ready=0)], pods=[pod(scheduled="0/7 nodes are available", ready=False)]
        )
    )
    ready = status_of(Observed([deployment()]))
    assert transition_events({}, not_ready) == [
        ("Warning", "Unschedulable", conditions(not_ready)["Ready"]["message"])
    ]
    assert transition_events(not_ready, not_ready) == []
    assert transition_events(not_ready, ready) == [("Normal", "Ready", "1/1 workers ready")]
    assert (
        transition_events({}, status_of(Observed([deployment(ready=0)], pods=[pod(ready=False)])))
        == []
    )


def test_a_refused_child_is_the_reason():
    refused = 'Deployment/llm: deployments.apps "llm" is forbidden: exceeded quota: q, requested: count/deployments.apps=1'
    st = compute_status(copy.deepcopy(BASE), plan(), [], Observed(), NOW, apply_error=refused)
    ready = conditions(st)["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", "ApplyFailed", refused)
    assert transition_events({}, st) == [("Warning", "ApplyFailed", refused)]


def test_crash_loop_names_the_last_exit():
    crashing = pod(waiting={"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}, ready=False)
    main = crashing["status"]["containerStatuses"][0]
    main["restartCount"] = 7
    main["lastState"] = {"terminated": {"reason": "OOMKilled", "exitCode": 137}}
    ready = conditions(status_of(Observed([deployment(ready=0)], pods=[crashing])))["Ready"]
    assert ready["reason"] == "CrashLoopBackOff"
    assert ready["message"] == (
        "pod llm-abc container main: back-off 5m0s; last exit: OOMKilled (exit code 137) "
        "after 7 restarts"
    )


def test_evicted_pods_and_stuck_rollouts_are_named():
    evicted = pod(ready=False)
    evicted["status"].update(
        phase="Failed", reason="Evicted", message="The node was low on resource: memory."
    )
    ready = conditions(status_of(Observed([deployment(ready=0)], pods=[evicted])))["Ready"]
    assert (ready["reason"], ready["message"]) == (
        "Evicted",
        "pod llm-abc: The node was low on resource: memory.",
    )
    # Once its replacement serves, an evicted pod left behind is history, not trouble.
    replaced = Observed([deployment()], pods=[evicted, pod("llm-new")])
    assert conditions(status_of(replaced))["Ready"]["reason"] == "WorkersReady"
    stuck = deployment_with(
        "Progressing",
        "False",
        "ProgressDeadlineExceeded",
        'ReplicaSet "llm-5d8" has timed out progressing.',
        replicas=2,
        updated=1,
    )
    ready = conditions(status_of(Observed([stuck])))["Ready"]
    assert (ready["reason"], ready["message"]) == (
        "ProgressDeadlineExceeded",
        'ReplicaSet "llm-5d8" has timed out progressing.',
    )
    assert transition_events({}, status_of(Observed([stuck])))[0][:2] == (
        "Warning",
        "ProgressDeadlineExceeded",
    )


def test_pods_the_replicaset_cannot_create_are_the_reason():
    dep = deployment_with(
        "ReplicaFailure",
        "True",
        "FailedCreate",
        'pods "llm-abc" is forbidden: exceeded quota: q, requested: pods=1',
        ready=0,
    )
    ready = conditions(status_of(Observed([dep])))["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "FailedCreate")
    assert "exceeded quota" in ready["message"]
    dep["status"]["conditions"][0]["status"] = "False"  # the controller recovered
    assert conditions(status_of(Observed([dep])))["Ready"]["reason"] == "WorkersNotReady"


def stuck_job(**status):
    return {
        "kind": "Job",
        "metadata": {"name": "batch", "uid": "job-uid"},
        "spec": {"parallelism": 2},
        "status": status,
    }


def failed_create(message, when, uid="job-uid"):
    return {
        "reason": "FailedCreate",
        "type": "Warning",
        "involvedObject": {"kind": "Job", "name": "batch", "uid": uid},
        "message": message,
        "lastTimestamp": when,
    }


QUOTA = 'Error creating: pods "batch-0-x" is forbidden: exceeded quota: no-pods, limited: pods=0'


def test_a_batch_job_whose_pods_are_refused_says_failed_create():
    p = plan(endpointType="BATCH", endpoint={"minWorkers": 2, "maxWorkers": 2})
    job = stuck_job()
    older = failed_create("Error creating: an older refusal", "2026-01-01T00:00:00Z")
    events = [failed_create(QUOTA, "2026-01-01T00:01:00Z"), older]
    st = status_of(Observed([job], events=events), p=p)
    ready, stalled = conditions(st)["Ready"], conditions(st)["Stalled"]
    assert (ready["status"], ready["reason"]) == ("False", "FailedCreate")
    assert ready["message"] == (
        'Job batch cannot create its pods: pods "batch-0-x" is forbidden: exceeded quota: '
        "no-pods, limited: pods=0"
    )
    assert (stalled["status"], stalled["reason"]) == ("True", "FailedCreate")
    assert transition_events({}, st) == [("Warning", "FailedCreate", ready["message"])]
    # Without the Events (not read, or none yet): as before, workers not ready.
    assert conditions(status_of(Observed([job]), p=p))["Ready"]["reason"] == "WorkersNotReady"


def test_failed_create_only_for_a_job_without_pods_or_progress():
    events = [failed_create(QUOTA, "t")]
    assert job_stuck(stuck_job(), []) and job_refused(stuck_job(), [], events)
    assert not job_stuck(None, [])
    assert not job_stuck(stuck_job(), [pod()])  # its pods came once the quota was raised
    assert not job_stuck(stuck_job(active=1), [])
    assert not job_stuck(stuck_job(succeeded=1), [])
    done = stuck_job(conditions=[{"type": "Complete", "status": "True"}])
    assert not job_stuck(done, []) and job_refused(done, [], events) is None
    # Another Job's Events (an earlier Job of the same name) say nothing of this one.
    assert job_refused(stuck_job(), [], [failed_create(QUOTA, "t", uid="old")]) is None


STALLED_CASES = {
    "Unschedulable": lambda: status_of(
        Observed([deployment(ready=0)], pods=[pod(scheduled="0/7 nodes", ready=False)])
    ),
    "ImagePullBackOff": lambda: status_of(
        Observed([deployment(ready=0)], pods=[pod(waiting={"reason": "ImagePullBackOff"})])
    ),
    "BrokerNotConfigured": lambda: status_of(Observed(), p=plan(endpointType="ASYNC")),
    "InvalidSpec": lambda: compute_status(
        copy.deepcopy(BASE), None, ["spec.x (1) must be y"], Observed(), NOW
    ),
    "ApplyFailed": lambda: compute_status(
        copy.deepcopy(BASE), plan(), [], Observed(), NOW, apply_error="refused"
    ),
}
PASSING_CASES = {
    "WorkersReady": lambda: status_of(Observed([deployment()], pods=[pod()])),
    "WorkersNotReady": lambda: status_of(Observed([deployment(ready=0)], pods=[pod(ready=False)])),
    "RollingOut": lambda: status_of(Observed([deployment(replicas=2, ready=2, updated=1)])),
    "Pending": lambda: status_of(Observed()),
}


def _evicted():
    evicted = pod(ready=False)
    evicted["status"].update(phase="Failed", reason="Evicted", message="low on memory")
    return status_of(Observed([deployment(ready=0)], pods=[evicted]))


def _stuck():
    stuck = deployment_with(
        "Progressing", "False", "ProgressDeadlineExceeded", replicas=2, updated=1
    )
    return status_of(Observed([stuck]))


STALLED_CASES["ProgressDeadlineExceeded"] = _stuck
PASSING_CASES["Evicted"] = _evicted  # the Deployment is already replacing the worker


def test_stalled_while_ready_is_false_for_a_reason_that_needs_a_person():
    for reason, make in STALLED_CASES.items():
        st = make()
        ready, stalled = conditions(st)["Ready"], conditions(st).get("Stalled")
        assert ready["reason"] == reason
        assert stalled is not None, reason
        assert (stalled["status"], stalled["reason"], stalled["message"]) == (
            "True",
            reason,
            ready["message"],
        )
        assert stalled["observedGeneration"] == st["observedGeneration"]


def test_no_stalled_condition_while_ready_or_progressing():
    for reason, make in PASSING_CASES.items():
        st = make()
        assert conditions(st)["Ready"]["reason"] == reason
        assert "Stalled" not in conditions(st), reason


def test_stalled_goes_when_the_cause_does():
    stuck = STALLED_CASES["Unschedulable"]()
    body = copy.deepcopy(BASE) | {"status": stuck}
    fixed = compute_status(body, plan(), [], Observed([deployment()], pods=[pod()]), NOW)
    assert "Stalled" not in conditions(fixed)
    again = compute_status(
        copy.deepcopy(BASE) | {"status": stuck},
        plan(),
        [],
        Observed([deployment(ready=0)], pods=[pod(scheduled="0/7 nodes", ready=False)]),
        "2030-01-01T00:00:00Z",
    )
    assert again == stuck  # a stalled steady state is a fixed point too (nothing written)


def test_status_patch_nulls_fields_gone_at_every_depth():
    from modeltemplate_operator.controller.reconciler import merge_patch

    old = {
        "models": {"total": 3, "outdated": ["c"]},
        "scheduling": {"resource": "nvidia.com/gpu: 1", "nodeSelector": {"a": "b"}},
        "gone": 1,
    }
    new = {"models": {"total": 3}, "scheduling": {"resource": "x"}}
    assert merge_patch(old, new) == {
        "models": {"total": 3, "outdated": None},
        "scheduling": {"resource": "x", "nodeSelector": None},
        "gone": None,
    }
