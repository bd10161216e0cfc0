"""FineTuningJobs on the real control plane: the template's fineTuningJobBundleConfig run as a
Job on the A100 node with its configuration mounted as one file, phases followed as the pod
runs, succeeds or fails, cancelled, never run again after an operator restart, and bad input
refused before any Job.

kwok completes a Job's pod as soon as it runs it; to walk a pod through Pending, Running and
Failed at the test's pace, kwok is paused (SIGSTOP) for a few seconds and the test writes the
pod status a kubelet would write, then kwok resumes.
"""

from __future__ import annotations

import copy
import json
import os
import posixpath
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from support.k8s import apply_list, get_json, wait_for

pytestmark = pytest.mark.integration
SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
A100_NODE = "gpu-a100-p4d-24xlarge-0"
MOUNT = "/workspace/launch_specific/config.json"
ROWS = [{"input": "2+2?", "output": "4"}, {"input": "capital of France?", "output": "Paris"}]


def a100_template() -> dict:
    """The fine-tunable A100 sample: two A100s for fine-tuning, a weights parameter."""
    doc = yaml.safe_load((SAMPLES / "finetunable-llm-a100.yaml").read_text())
    doc["metadata"] = {"name": "llm-a100"}
    return doc


def ftj(name: str, template: str = "llm-a100", **spec) -> dict:
    body = {
        "templateRef": {"name": template},
        "trainingDataset": {"inline": copy.deepcopy(ROWS)},
        "hyperparameters": {"epochs": 2, "learning_rate": 0.0001, "lora": {"r": 8}},
    }
    body.update(spec)
    return {
        "apiVersion": "launch.modelops.dev/v1alpha1",
        "kind": "FineTuningJob",
        "metadata": {"name": name},
        "spec": body,
    }


def apply(cluster, namespace, *docs):
    apply_list(cluster, namespace, list(docs))


def status(cluster, namespace, name) -> dict:
    return get_json(cluster, "finetuningjob", name, "-n", namespace).get("status") or {}


def wait_phase(cluster, namespace, name, phase, timeout=60) -> dict:
    return wait_for(
        lambda: (s := status(cluster, namespace, name)).get("phase") == phase and s,
        timeout=timeout,
        what=f"FineTuningJob {name} {phase} (last: {status(cluster, namespace, name)})",
    )


def job_pods(cluster, namespace, name) -> list[dict]:
    items = get_json(cluster, "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={name}")[
        "items"
    ]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


@contextmanager
def kubelet_paused(cluster):
    """kwok (the fake kubelets) stopped meanwhile: pods are bound but nothing reports them."""
    pid = getattr(cluster, "pids", {}).get("kwok")
    if pid is None:
        pytest.skip("needs the local control plane's kwok process (not USE_EXISTING_CLUSTER)")
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def bound_pod(cluster, namespace, name) -> dict:
    """The job's pod once the scheduler bound it to a node."""
    return wait_for(
        lambda: next(
            (p for p in job_pods(cluster, namespace, name) if p["spec"].get("nodeName")), None
        ),
        what=f"a bound pod of {name}",
    )


RUNNING = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}


def kubelet_reports(cluster, namespace, pod: dict, phase: str, main_state: dict) -> None:
    """Write the pod status a kubelet would (kwok runs no containers)."""
    container = pod["spec"]["containers"][0]
    patch = {
        "status": {
            "phase": phase,
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container["image"],
                    "imageID": "",
                    "ready": phase == "Running" and "running" in main_state,
                    "restartCount": 0,
                    "started": "running" in main_state,
                    "state": main_state,
                }
            ],
        }
    }
    cluster.kubectl(
        "patch",
        "pod",
        pod["metadata"]["name"],
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(patch),
    )


def terminated(code: int, message: str = "") -> dict:
    return {
        "terminated": {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "message": message,
            "startedAt": "2026-01-01T00:00:00Z",
            "finishedAt": "2026-01-01T00:10:00Z",
        }
    }


def finish(cluster, namespace, pod: dict, code: int, message: str = "") -> None:
    phase = "Succeeded" if code == 0 else "Failed"
    kubelet_reports(cluster, namespace, pod, phase, terminated(code, message))


def test_job_runs_the_bundle_on_the_a100_node_with_its_configuration_as_one_file(
    cluster, operator, namespace
):
    with kubelet_paused(cluster):
        _runs_the_bundle(cluster, namespace)


def _runs_the_bundle(cluster, namespace):
    apply(cluster, namespace, a100_template(), ftj("tune", outputModelName="llm-a100-tuned"))
    job = wait_for(
        lambda: get_json(cluster, "jobs", "-n", namespace)["items"], what="the fine-tuning Job"
    )[0]
    assert job["metadata"]["name"] == "tune"
    [owner] = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("FineTuningJob", "tune", True)
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 7 * 24 * 3600
    pod_spec = spec["template"]["spec"]
    [main] = pod_spec["containers"]
    assert main["image"] == "ghcr.io/modelops/llm-trainer:v1.4.2"
    assert main["command"] == ["llm-trainer", "--config", MOUNT]
    assert {"name": "WANDB_MODE", "value": "disabled"} in main["env"]
    assert main["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert main["resources"]["limits"]["memory"] == "64Gi"
    assert pod_spec["nodeSelector"] == {"k8s.amazonaws.com/accelerator": "nvidia-ampere-a100"}
    assert pod_spec["priorityClassName"] == "modeltemplate-default-priority"

    # The configuration is one file at mount_location: a subPath mount of one ConfigMap key.
    # Nothing is mounted on its directory, so the files the image keeps beside it (e.g. a
    # default config next to it) stay visible; kwok runs no container to list them, so the
    # mount table is what is checked.
    [config_mount] = [m for m in main["volumeMounts"] if m["mountPath"] == MOUNT]
    assert config_mount["subPath"] == "config.json" and config_mount["readOnly"] is True
    parent = posixpath.dirname(MOUNT)
    for mount in main["volumeMounts"]:
        assert not (parent + "/").startswith(mount["mountPath"].rstrip("/") + "/"), mount
    [volume] = [v for v in pod_spec["volumes"] if v["name"] == config_mount["name"]]
    assert volume["configMap"] == {
        "name": "tune",
        "items": [{"key": "config.json", "path": "config.json"}],
        "defaultMode": 420,
    }
    config_map = get_json(cluster, "configmap", "tune", "-n", namespace)
    config = json.loads(config_map["data"]["config.json"])
    template_uid = get_json(cluster, "modeltemplate", "llm-a100", "-n", namespace)["metadata"][
        "uid"
    ]
    assert config["base_model"] == {
        "model_template": "llm-a100",
        "model_template_id": template_uid,
        "model_type": "COMPLETION",
    }
    assert config["training_dataset"] == {
        "schema_type": "GENERATION",
        "path": "/var/run/modeltemplate/datasets/training.jsonl",
        "format": "jsonl",
    }
    assert config["validation_dataset"] is None
    assert config["hyperparameters"] == {"epochs": 2, "learning_rate": 0.0001, "lora": {"r": 8}}
    assert config["output"] == f"s3://modeltemplate-fine-tuning/{namespace}/tune"
    rows = [json.loads(line) for line in config_map["data"]["training.jsonl"].splitlines()]
    assert rows == ROWS

    # Bound to the A100 node: Pending until its container runs.
    pod = bound_pod(cluster, namespace, "tune")
    assert pod["spec"]["nodeName"] == A100_NODE
    pending = wait_phase(cluster, namespace, "tune", "Pending")
    assert pending["jobName"] == "tune" and "startTime" not in pending
    kubelet_reports(cluster, namespace, pod, "Running", RUNNING)
    running = wait_phase(cluster, namespace, "tune", "Running")
    assert running["template"] == "llm-a100" and running["jobName"] == "tune"
    assert running["startTime"] and "completionTime" not in running
    table = cluster.kubectl("get", "ftj", "tune", "-n", namespace).stdout
    assert table.split()[:4] == ["NAME", "PHASE", "TEMPLATE", "AGE"]
    assert table.splitlines()[1].split()[:3] == ["tune", "Running", "llm-a100"]

    # Succeeded: the output Model made from the template with the weights location.
    finish(cluster, namespace, pod, 0)
    done = wait_phase(cluster, namespace, "tune", "Succeeded")
    assert done["completionTime"]
    ready = {c["type"]: c for c in done["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "Succeeded")
    assert done["outputModel"] == "llm-a100-tuned"
    model = get_json(cluster, "model", "llm-a100-tuned", "-n", namespace)
    assert done["fineTunedModelId"] == model["metadata"]["uid"]
    assert model["spec"] == {
        "templateRef": {"name": "llm-a100"},
        "creationParameters": {"model_weights_uri": config["output"]},
    }


def test_pending_then_failed_with_the_exit_named(cluster, operator, namespace):
    with kubelet_paused(cluster):
        _fails(cluster, namespace)


def _fails(cluster, namespace):
    apply(cluster, namespace, a100_template(), ftj("fails"))
    pod = bound_pod(cluster, namespace, "fails")
    # The image cannot be pulled: Pending, named exactly as for endpoints.
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}
    kubelet_reports(cluster, namespace, pod, "Pending", waiting)
    st = wait_for(
        lambda: (
            (s := status(cluster, namespace, "fails")).get("phase") == "Pending"
            and {c["type"]: c for c in s.get("conditions", [])}.get("Ready", {}).get("reason")
            == "ImagePullBackOff"
            and s
        ),
        what="Pending with ImagePullBackOff",
    )
    assert "Back-off pulling image" in st["message"]
    stalled = {c["type"]: c for c in st["conditions"]}["Stalled"]
    assert (stalled["status"], stalled["reason"]) == ("True", "ImagePullBackOff")
    # Pulled after all, then the trainer exits 3.
    kubelet_reports(
        cluster, namespace, pod, "Running", {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    )
    wait_phase(cluster, namespace, "fails", "Running")
    kubelet_reports(cluster, namespace, pod, "Failed", terminated(3, "CUDA out of memory"))
    failed = wait_phase(cluster, namespace, "fails", "Failed")
    assert failed["completionTime"]
    assert "exit code 3" in failed["message"] and "CUDA out of memory" in failed["message"]
    ready = {c["type"]: c for c in failed["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "JobFailed")
    events = get_json(cluster, "events", "-n", namespace)["items"]
    assert any(
        e["involvedObject"].get("name") == "fails" and e["reason"] == "JobFailed" for e in events
    )


def test_cancel_deletes_the_job(cluster, operator, namespace):
    with kubelet_paused(cluster):
        apply(cluster, namespace, a100_template(), ftj("stop"))
        pod = bound_pod(cluster, namespace, "stop")
        kubelet_reports(cluster, namespace, pod, "Running", RUNNING)
        wait_phase(cluster, namespace, "stop", "Running")
        cancel(cluster, namespace, "stop", True)
        cancelled = wait_phase(cluster, namespace, "stop", "Cancelled")
    assert cancelled["completionTime"] and cancelled["startTime"]
    assert "cancelled" in cancelled["message"]
    wait_for(
        lambda: (
            not get_json(cluster, "jobs", "-n", namespace)["items"]
            and not get_json(
                cluster, "configmaps", "-n", namespace, "-l", "app.kubernetes.io/instance=stop"
            )["items"]
        ),
        what="the Job and the ConfigMap deleted",
    )
    # Un-cancelling a cancelled job does not start it again: once a later job has been run
    # (the operator has seen the change by then), there is still no Job of "stop".
    cancel(cluster, namespace, "stop", False)
    apply(cluster, namespace, ftj("later"))
    wait_phase(cluster, namespace, "later", "Succeeded")
    jobs = get_json(cluster, "jobs", "-n", namespace)["items"]
    assert [j["metadata"]["name"] for j in jobs] == ["later"]
    assert status(cluster, namespace, "stop")["phase"] == "Cancelled"


def cancel(cluster, namespace, name, value: bool) -> None:
    patch = json.dumps({"spec": {"cancelled": value}})
    cluster.kubectl("patch", "ftj", name, "-n", namespace, "--type=merge", "-p", patch)


def test_a_finished_job_is_not_run_again_after_an_operator_restart(cluster, operator, namespace):
    apply(cluster, namespace, a100_template(), ftj("once"))
    wait_phase(cluster, namespace, "once", "Succeeded")  # kwok completes the pod at once
    operator.stop()
    # While the operator is down the finished Job goes away (a TTL, a clean-up by hand): only
    # the job's status remembers that it ran.
    cluster.kubectl("delete", "job", "once", "-n", namespace, "--cascade=foreground", "--wait=true")
    starts = operator.log().count("Activity 'startup' succeeded")
    operator.start()
    operator.wait_for_log(
        lambda text: text.count("Activity 'startup' succeeded") > starts, timeout=60
    )
    # The restarted operator has listed and reconciled everything: a marker job it must run
    # shows that, and the finished one has not been run again meanwhile.
    apply(cluster, namespace, ftj("marker"))
    wait_for(
        lambda: any(
            j["metadata"]["name"] == "marker"
            for j in get_json(cluster, "jobs", "-n", namespace)["items"]
        ),
        what="the marker Job",
    )
    assert [j["metadata"]["name"] for j in get_json(cluster, "jobs", "-n", namespace)["items"]] == [
        "marker"
    ]
    assert status(cluster, namespace, "once")["phase"] == "Succeeded"


def test_an_override_above_the_bundle_is_refused_naming_the_field(cluster, operator, namespace):
    apply(
        cluster,
        namespace,
        a100_template(),
        ftj("big", resources={"memory": "128Gi", "gpus": 1}),
    )
    st = wait_for(
        lambda: (s := status(cluster, namespace, "big")).get("message") and s,
        what="a status for the over-cap job",
    )
    assert st["phase"] == "Pending"
    assert "spec.resources.memory: 128Gi is above the template's " in st["message"]
    assert "fineTuningJobBundleConfig.resources.memory (64Gi)" in st["message"]
    conditions = {c["type"]: c for c in st["conditions"]}
    assert conditions["Valid"]["status"] == "False" and conditions["Stalled"]["status"] == "True"
    assert not get_json(cluster, "jobs", "-n", namespace)["items"]
    # Lowering the GPUs is within the caps: the job runs on one A100.
    cluster.kubectl(
        "patch",
        "ftj",
        "big",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"resources":{"memory":"32Gi"}}}',
    )
    job = wait_for(lambda: get_json(cluster, "jobs", "-n", namespace)["items"], what="the Job")[0]
    limits = job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert (limits["memory"], limits["nvidia.com/gpu"]) == ("32Gi", "1")


def test_bad_dataset_rows_are_reported_by_index_before_any_job(cluster, operator, namespace):
    rows = [ROWS[0], {"input": "no answer"}, ROWS[1], {"prompt": "x", "response": "y"}]
    bad_jsonl = json.dumps(ROWS[0]) + "\n{not json\n" + json.dumps({"input": 1, "output": "x"})
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "val-data"},
        "data": {"val.jsonl": bad_jsonl},
    }
    apply(
        cluster,
        namespace,
        a100_template(),
        config_map,
        ftj(
            "rows",
            trainingDataset={"inline": rows},
            validationDataset={"configMap": {"name": "val-data", "key": "val.jsonl"}},
        ),
    )
    st = wait_for(
        lambda: (s := status(cluster, namespace, "rows")).get("message") and s,
        what="a status for the job with bad rows",
    )
    message = st["message"]
    assert (
        "spec.trainingDataset.inline: 2 of 4 rows do not match the GENERATION schema: "
        "row 1: missing output" in message
    )
    assert "row 3: missing input, output" in message
    assert "spec.validationDataset.configMap (val-data/val.jsonl): 2 of 3 rows" in message
    assert "row 1: not JSON" in message and "row 2: input must be a string" in message
    assert st["phase"] == "Pending"
    assert not get_json(cluster, "jobs", "-n", namespace)["items"]
    assert not job_pods(cluster, namespace, "rows")


def test_the_sample_runs_and_makes_its_model(cluster, operator, namespace):
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        str(SAMPLES / "finetunable-llm-a100.yaml"),
        "-f",
        str(SAMPLES / "fine-tuning"),
    )
    done = wait_phase(cluster, namespace, "mistral-7b-support-ft", "Succeeded")
    assert done["outputModel"] == "mistral-7b-support"
    model = get_json(cluster, "model", "mistral-7b-support", "-n", namespace)
    assert model["spec"]["creationParameters"] == {
        "model_weights_uri": "s3://modelops-weights/mistral-7b-support"
    }
    job = get_json(cluster, "job", "mistral-7b-support-ft", "-n", namespace)
    limits = job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert (limits["nvidia.com/gpu"], limits["memory"]) == ("1", "48Gi")


def test_a_model_is_fine_tuned_from_its_template_with_its_parameters(cluster, operator, namespace):
    base = {
        "apiVersion": "launch.modelops.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "base"},
        "spec": {
            "templateRef": {"name": "llm-a100"},
            "creationParameters": {"model_weights_uri": "s3://w/base", "max_model_len": 8192},
        },
    }
    job = ftj("from-model", outputModelName="base-tuned", output="s3://w/base-tuned")
    del job["spec"]["templateRef"]
    job["spec"]["modelRef"] = {"name": "base"}
    apply(cluster, namespace, a100_template(), base, job)
    done = wait_phase(cluster, namespace, "from-model", "Succeeded")
    assert done["template"] == "llm-a100" and done["outputModel"] == "base-tuned"
    config = json.loads(
        get_json(cluster, "configmap", "from-model", "-n", namespace)["data"]["config.json"]
    )
    model_uid = get_json(cluster, "model", "base", "-n", namespace)["metadata"]["uid"]
    assert config["base_model"]["model"] == "base"
    assert config["base_model"]["model_id"] == model_uid
    assert config["base_model"]["creation_parameters"] == base["spec"]["creationParameters"]
    tuned = get_json(cluster, "model", "base-tuned", "-n", namespace)
    assert tuned["spec"]["creationParameters"] == {
        "model_weights_uri": "s3://w/base-tuned",
        "max_model_len": 8192,
    }


def restart(operator) -> None:
    """Stop the operator and start it again, once it has listed and reconciled everything."""
    operator.stop()
    starts = operator.log().count("Activity 'startup' succeeded")
    operator.start()
    operator.wait_for_log(
        lambda text: text.count("Activity 'startup' succeeded") > starts, timeout=60
    )


def no_job_appears(cluster, namespace, name, seconds: float = 8.0) -> None:
    """No Job named ``name`` exists, and none appears within ``seconds`` — checked after a job
    of the restarted operator ran (a marker), so the operator has seen everything by then."""
    apply(cluster, namespace, ftj(f"marker-{name}"))
    wait_phase(cluster, namespace, f"marker-{name}", "Succeeded")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        names = [j["metadata"]["name"] for j in get_json(cluster, "jobs", "-n", namespace)["items"]]
        assert name not in names, f"the Job {name} was created again"
        time.sleep(0.5)


def test_a_running_job_whose_job_is_deleted_fails_and_never_runs_again(
    cluster, operator, namespace
):
    with kubelet_paused(cluster):
        apply(cluster, namespace, a100_template(), ftj("lost"))
        pod = bound_pod(cluster, namespace, "lost")
        kubelet_reports(cluster, namespace, pod, "Running", RUNNING)
        running = wait_phase(cluster, namespace, "lost", "Running")
        job_uid = get_json(cluster, "job", "lost", "-n", namespace)["metadata"]["uid"]
        cluster.kubectl("delete", "job", "lost", "-n", namespace, "--wait=false")
        failed = wait_phase(cluster, namespace, "lost", "Failed")
    ready = {c["type"]: c for c in failed["conditions"]}["Ready"]
    stalled = {c["type"]: c for c in failed["conditions"]}["Stalled"]
    assert (ready["status"], ready["reason"]) == ("False", "JobLost")
    assert stalled["reason"] == "JobLost"
    assert "the Job lost of this run" in failed["message"]
    assert "not restarted by itself" in failed["message"]
    assert failed["startTime"] == running["startTime"] and failed["completionTime"]
    assert failed["jobName"] == "lost"
    wait_for(
        lambda: any(
            e["involvedObject"].get("name") == "lost" and e["reason"] == "JobLost"
            for e in get_json(cluster, "events", "-n", namespace)["items"]
        ),
        what="a JobLost Warning Event",
    )
    restart(operator)
    no_job_appears(cluster, namespace, "lost")
    assert status(cluster, namespace, "lost")["phase"] == "Failed"
    jobs = get_json(cluster, "jobs", "-n", namespace)["items"]
    assert job_uid not in {j["metadata"]["uid"] for j in jobs}


def test_a_job_marked_created_but_missing_after_a_crash_fails_and_is_not_created(
    cluster, operator, namespace
):
    """The operator writes ``status.jobName`` before it creates the Job: one that died between
    the two leaves the mark and no Job. A restarted operator fails the run (it may have run:
    the Job could have been created and deleted meanwhile) rather than run it twice."""
    apply(cluster, namespace, a100_template())
    starts = operator.log().count("Activity 'startup' succeeded")
    operator.stop()
    try:
        apply(cluster, namespace, ftj("crashed"))
        mark = json.dumps({"status": {"jobName": "crashed"}})
        cluster.kubectl(
            "patch", "ftj", "crashed", "-n", namespace, "--subresource=status", "--type=merge",
            "-p", mark,
        )  # fmt: skip
    finally:
        operator.start()
    operator.wait_for_log(
        lambda text: text.count("Activity 'startup' succeeded") > starts, timeout=60
    )
    failed = wait_phase(cluster, namespace, "crashed", "Failed")
    ready = {c["type"]: c for c in failed["conditions"]}["Ready"]
    assert ready["reason"] == "JobLost" and "no longer exists" in failed["message"]
    no_job_appears(cluster, namespace, "crashed")
