"""The operator against the real control plane: samples, scheduling, rollouts, drift, pruning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support.k8s import apply_quota, get_json, wait_for
from support.manifests import tiny_template

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO_ROOT / "deploy" / "samples").glob("*.yaml"))
NODE_OF_GPU = {
    None: {"cpu-m5-4xlarge-0", "cpu-m7i-48xlarge-0"},
    "nvidia-tesla-t4": {"gpu-t4-g4dn-12xlarge-0"},
    "nvidia-ampere-a10": {"gpu-a10-g5-24xlarge-0"},
    "nvidia-ampere-a100": {"gpu-a100-p4d-24xlarge-0"},
    "nvidia-ampere-a100e": {"gpu-a100e-p4de-24xlarge-0"},
    "nvidia-hopper-h100": {"gpu-h100-p5-48xlarge-0"},
    "nvidia-hopper-h100-1g20gb": {"gpu-h100-mig-p5-48xlarge-0"},
    "nvidia-hopper-h100-3g40gb": {"gpu-h100-mig-p5-48xlarge-0"},
}


def apply_template(cluster, namespace, manifest):
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))


def template(name="tiny", **endpoint):
    """A CPU-only template, autoscaled between 1 and 3 workers unless told otherwise."""
    return tiny_template(name, **{"maxWorkers": 3, **endpoint})


def wait_ready(cluster, namespace, name, timeout=90):
    cluster.kubectl(
        "wait",
        "-n",
        namespace,
        "--for=condition=Ready",
        f"--timeout={timeout}s",
        f"modeltemplate/{name}",
        timeout=timeout + 10,
    )


def condition(cluster, namespace, name, ctype="Ready"):
    mt = get_json(cluster, "modeltemplate", name, "-n", namespace)
    return {c["type"]: c for c in (mt.get("status") or {}).get("conditions") or []}.get(ctype)


def children(cluster, namespace, name):
    items = get_json(
        cluster,
        "deployments,services,hpa,pdb,jobs",
        "-n",
        namespace,
        "-l",
        f"app.kubernetes.io/instance={name}",
    )["items"]
    return {i["kind"] for i in items}


def pods(cluster, namespace, name):
    return get_json(cluster, "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={name}")[
        "items"
    ]


def test_every_sample_is_served_on_the_right_nodes(cluster, operator, namespace):
    cluster.kubectl("apply", "-n", namespace, *[f"-f={s}" for s in SAMPLES])
    for path in SAMPLES:
        sample = yaml.safe_load(path.read_text())
        name, spec = sample["metadata"]["name"], sample["spec"]
        ec = spec["vendorConfiguration"].get("endpointConfig") or {}
        if spec["endpointType"] == "ASYNC":
            cond = wait_for(lambda n=name: condition(cluster, namespace, n), what=f"{name} status")
            assert (cond["status"], cond["reason"]) == ("False", "BrokerNotConfigured")
            assert children(cluster, namespace, name) == set()
            continue
        wait_ready(cluster, namespace, name)
        kinds = children(cluster, namespace, name)
        creation = (spec.get("modelCreationParametersSchema") or {}).get("parameters") or []
        if any(p.get("required") for p in creation):  # runs only as Models made from it
            assert condition(cluster, namespace, name)["reason"] == "PureTemplate", name
            assert kinds == set(), name
            continue
        if spec["endpointType"] == "BATCH":
            assert kinds == {"Job"}
        else:
            min_w, max_w = ec.get("minWorkers", 0), ec.get("maxWorkers", 1)
            expected = {"Deployment", "Service", "PodDisruptionBudget"}
            if 1 <= min_w < max_w:
                expected.add("HorizontalPodAutoscaler")
            assert kinds == expected, name
        gpu_type = ec.get("gpuType") if ec.get("gpus", 0) else None
        placed = {p["spec"]["nodeName"] for p in pods(cluster, namespace, name)}
        assert placed and placed <= NODE_OF_GPU[gpu_type], (name, placed)


def test_rendered_deployment_key_fields(cluster, operator, namespace):
    apply_template(
        cluster,
        namespace,
        template("keys", gpus=1, gpuType="nvidia-hopper-h100", cpus=4, memory="16Gi"),
    )
    wait_ready(cluster, namespace, "keys")
    dep = get_json(cluster, "deployment", "keys", "-n", namespace)
    pod = dep["spec"]["template"]["spec"]
    main, fwd = pod["containers"]
    assert main["name"] == "main" and fwd["name"] == "http-forwarder"
    assert main["resources"]["limits"] == {
        "cpu": "4",
        "memory": "16Gi",
        "ephemeral-storage": "1Gi",
        "nvidia.com/gpu": "1",
    }
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 5005, "scheme": "HTTP"}
    assert pod["nodeSelector"] == {"k8s.amazonaws.com/accelerator": "nvidia-hopper-h100"}
    assert dep["metadata"]["ownerReferences"][0]["kind"] == "ModelTemplate"
    mt = get_json(cluster, "modeltemplate", "keys", "-n", namespace)
    assert not mt["metadata"].get("finalizers")  # deletion is plain garbage collection
    status = mt["status"]
    assert status["workers"] == {"desired": 1, "ready": 1}
    assert status["scheduling"]["resource"] == "nvidia.com/gpu: 1"
    assert status["endpoints"]["predict"] == f"http://keys.{namespace}.svc.cluster.local/predict"
    assert status["accountId"] == namespace and status["id"]
    [p] = pods(cluster, namespace, "keys")
    assert p["spec"]["nodeName"] == "gpu-h100-p5-48xlarge-0"


def test_oversize_gpu_request_is_reported_unschedulable(cluster, operator, namespace):
    apply_template(
        cluster,
        namespace,
        template("huge", gpus=9, gpuType="nvidia-hopper-h100", minWorkers=1, maxWorkers=1),
    )
    cond = wait_for(
        lambda: (
            (c := condition(cluster, namespace, "huge")) and c["reason"] == "Unschedulable" and c
        ),
        what="Ready=False/Unschedulable",
    )
    assert cond["status"] == "False"
    assert "Insufficient nvidia.com/gpu" in cond["message"]
    events = wait_for(
        lambda: [
            e
            for e in get_json(cluster, "events", "-n", namespace)["items"]
            if e["involvedObject"].get("kind") == "ModelTemplate" and e["reason"] == "Unschedulable"
        ],
        what="an Unschedulable event on the template",
    )
    assert events[0]["type"] == "Warning" and events[0]["involvedObject"]["name"] == "huge"


def test_spec_change_rolls_the_deployment(cluster, operator, namespace):
    apply_template(cluster, namespace, template("roll"))
    wait_ready(cluster, namespace, "roll")
    before = get_json(cluster, "deployment", "roll", "-n", namespace)
    changed = template("roll")
    changed["spec"]["vendorConfiguration"]["bundleConfig"]["tag"] = "2"
    apply_template(cluster, namespace, changed)

    def rolled():
        dep = get_json(cluster, "deployment", "roll", "-n", namespace)
        image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
        return image == "docker.io/modelops/tiny:2" and dep

    dep = wait_for(rolled, what="the new image in the Deployment")
    assert dep["metadata"]["generation"] > before["metadata"]["generation"]
    wait_for(
        lambda: (
            (c := condition(cluster, namespace, "roll"))
            and c["status"] == "True"
            and c["observedGeneration"] == 2
        ),
        what="Ready for generation 2",
    )
    [p] = wait_for(
        lambda: (
            [
                p
                for p in pods(cluster, namespace, "roll")
                if not p["metadata"].get("deletionTimestamp")
            ]
            if len(pods(cluster, namespace, "roll")) == 1
            else None
        ),
        what="one pod after the rollout",
    )
    assert p["spec"]["containers"][0]["image"] == "docker.io/modelops/tiny:2"


def test_manual_edit_of_a_managed_field_is_reverted(cluster, operator, namespace):
    apply_template(cluster, namespace, template("drift"))
    wait_ready(cluster, namespace, "drift")
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "evil/image:1"}]}}}
    }
    cluster.kubectl(
        "patch", "deployment", "drift", "-n", namespace, "--type=strategic", "-p", json.dumps(patch)
    )
    cluster.kubectl(
        "patch",
        "service",
        "drift",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"selector": {"app.kubernetes.io/instance": "other"}}}),
    )
    wait_for(
        lambda: (
            get_json(cluster, "deployment", "drift", "-n", namespace)["spec"]["template"]["spec"][
                "containers"
            ][0]["image"]
            == "docker.io/modelops/tiny:1"
        ),
        what="the image edit reverted",
    )
    wait_for(
        lambda: (
            get_json(cluster, "service", "drift", "-n", namespace)["spec"]["selector"][
                "app.kubernetes.io/instance"
            ]
            == "drift"
        ),
        what="the selector edit reverted",
    )


def test_switching_between_hpa_and_fixed_workers_prunes_the_old_child(cluster, operator, namespace):
    apply_template(cluster, namespace, template("switch", minWorkers=1, maxWorkers=3))
    wait_ready(cluster, namespace, "switch")
    assert "HorizontalPodAutoscaler" in children(cluster, namespace, "switch")

    apply_template(cluster, namespace, template("switch", minWorkers=2, maxWorkers=2))
    wait_for(
        lambda: "HorizontalPodAutoscaler" not in children(cluster, namespace, "switch"),
        what="HPA pruned",
    )
    wait_for(
        lambda: get_json(cluster, "deployment", "switch", "-n", namespace)["spec"]["replicas"] == 2,
        what="2 fixed replicas",
    )
    wait_for(
        lambda: (
            (c := condition(cluster, namespace, "switch"))
            and c["status"] == "True"
            and c["observedGeneration"] == 2
        ),
        what="Ready with 2 workers",
    )
    assert condition(cluster, namespace, "switch", "Autoscaling")["reason"] == "Fixed"

    apply_template(cluster, namespace, template("switch", minWorkers=1, maxWorkers=3))
    wait_for(
        lambda: "HorizontalPodAutoscaler" in children(cluster, namespace, "switch"), what="HPA back"
    )


def test_deleting_a_template_removes_every_child(cluster, operator, namespace):
    apply_template(cluster, namespace, template("gone"))
    wait_ready(cluster, namespace, "gone")
    assert children(cluster, namespace, "gone") == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    cluster.kubectl("delete", "modeltemplate", "gone", "-n", namespace)
    wait_for(
        lambda: not children(cluster, namespace, "gone") and not pods(cluster, namespace, "gone"),
        what="garbage collection of every child",
        timeout=90,
    )


@pytest.mark.parametrize("endpoint_type", ["STREAMING"])
def test_streaming_template_exposes_the_streaming_url(cluster, operator, namespace, endpoint_type):
    m = template("stream")
    m["spec"]["endpointType"] = endpoint_type
    apply_template(cluster, namespace, m)
    wait_ready(cluster, namespace, "stream")
    status = get_json(cluster, "modeltemplate", "stream", "-n", namespace)["status"]
    assert status["endpoints"]["streaming"].endswith("/stream")


def _kubelet_reports(
    cluster,
    namespace,
    name,
    main_state: dict,
    main_ready: bool,
    main_extra: dict | None = None,
    pod_name: str | None = None,
):
    """Write what a kubelet would report for the template's pod (kwok runs no containers):
    ``main``'s state and readiness, plus ``main_extra`` fields (restartCount, lastState)."""
    [p] = [
        p
        for p in pods(cluster, namespace, name)
        if not p["metadata"].get("deletionTimestamp")
        and (pod_name is None or p["metadata"]["name"] == pod_name)
    ]
    statuses = []
    for c in p["spec"]["containers"]:
        is_main = c["name"] == "main"
        statuses.append(
            {
                "name": c["name"],
                "image": c["image"],
                "imageID": "",
                "restartCount": 0,
                "ready": main_ready if is_main else True,
                "started": not is_main or main_ready,
                "state": main_state
                if is_main
                else {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                **((main_extra or {}) if is_main else {}),
            }
        )
    conditions = [
        {"type": t, "status": "True" if main_ready else "False"}
        for t in ("Ready", "ContainersReady")
    ]
    patch = {"status": {"containerStatuses": statuses, "conditions": conditions}}
    cluster.kubectl(
        "patch",
        "pod",
        p["metadata"]["name"],
        "-n",
        namespace,
        "--subresource=status",
        "--type=strategic",
        "-p",
        json.dumps(patch),
    )


def test_image_pull_failure_is_reported_with_an_event(cluster, operator, namespace):
    apply_template(cluster, namespace, template("pull", minWorkers=1, maxWorkers=1))
    wait_ready(cluster, namespace, "pull")
    waiting = {
        "waiting": {
            "reason": "ImagePullBackOff",
            "message": 'Back-off pulling image "docker.io/modelops/tiny:1"',
        }
    }
    _kubelet_reports(cluster, namespace, "pull", waiting, main_ready=False)
    cond = wait_for(
        lambda: (c := condition(cluster, namespace, "pull")) and c["status"] == "False" and c,
        what="Ready=False after the pull failure",
    )
    assert cond["reason"] == "ImagePullBackOff"
    assert "Back-off pulling image" in cond["message"]
    wait_for(
        lambda: [
            e
            for e in get_json(cluster, "events", "-n", namespace)["items"]
            if e["involvedObject"].get("name") == "pull" and e["reason"] == "ImagePullBackOff"
        ],
        what="an ImagePullBackOff event on the template",
    )


def test_readiness_never_passing_is_reported(cluster, operator, namespace):
    apply_template(cluster, namespace, template("probe", minWorkers=1, maxWorkers=1))
    wait_ready(cluster, namespace, "probe")
    _kubelet_reports(
        cluster,
        namespace,
        "probe",
        {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
        main_ready=False,
    )
    cond = wait_for(
        lambda: (c := condition(cluster, namespace, "probe")) and c["status"] == "False" and c,
        what="Ready=False while the readiness probe fails",
    )
    assert cond["reason"] == "WorkersNotReady"
    assert "/main" in cond["message"] and "0/1 workers ready" in cond["message"]


def test_a_child_the_api_server_refuses_is_reported_and_retried(cluster, operator, namespace):
    apply_quota(cluster, namespace, "no-deployments", {"count/deployments.apps": "0"})
    apply_template(cluster, namespace, template("quota"))
    cond = wait_for(
        lambda: (
            (c := condition(cluster, namespace, "quota")) and c["reason"] == "ApplyFailed" and c
        ),
        what="Ready=False/ApplyFailed",
    )
    assert cond["message"].startswith("Deployment/quota: ") and "exceeded quota" in cond["message"]
    wait_for(
        lambda: [
            e
            for e in get_json(cluster, "events", "-n", namespace)["items"]
            if e["involvedObject"].get("name") == "quota" and e["reason"] == "ApplyFailed"
        ],
        what="an ApplyFailed event",
    )
    # Raising the quota sends the operator no event; the retry backoff picks the template up.
    cluster.kubectl("delete", "resourcequota", "no-deployments", "-n", namespace)
    wait_ready(cluster, namespace, "quota", timeout=60)


def test_batch_template_change_replaces_the_job(cluster, operator, namespace):
    batch = tiny_template("batch", endpoint_type="BATCH", minWorkers=2, maxWorkers=2)
    apply_template(cluster, namespace, batch)
    wait_ready(cluster, namespace, "batch")
    first = get_json(cluster, "job", "batch", "-n", namespace)
    assert first["spec"]["completions"] == first["spec"]["parallelism"] == 2
    batch["spec"]["vendorConfiguration"]["bundleConfig"]["tag"] = "2"
    apply_template(cluster, namespace, batch)

    def replaced():
        job = get_json(cluster, "jobs", "-n", namespace, "-l", "app.kubernetes.io/instance=batch")[
            "items"
        ]
        return job and job[0]["metadata"]["uid"] != first["metadata"]["uid"] and job[0]

    job = wait_for(replaced, what="a new Job with the new template")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "docker.io/modelops/tiny:2"
    wait_for(
        lambda: (
            (c := condition(cluster, namespace, "batch"))
            and c["status"] == "True"
            and c["observedGeneration"] == 2
        ),
        what="Ready for generation 2",
    )
