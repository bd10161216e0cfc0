"""Failure modes found by probing the operator as a user and an attacker would; each test
reproduced its finding before the fix."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from kubernetes import watch
from kubernetes.client import CustomObjectsApi
from support.k8s import apply_list, get_json, wait_for
from support.manifests import tiny_template
from test_operator import _kubelet_reports, apply_template, condition, pods, wait_ready
from urllib3.exceptions import ProtocolError

from devtools.localcluster import LocalCluster
from modeltemplate_operator import GROUP, PLURAL, VERSION


def test_characters_outside_the_bmp_reach_the_children(cluster, operator, namespace):
    manifest = tiny_template("emoji")
    bundle = manifest["spec"]["vendorConfiguration"]["bundleConfig"]
    bundle["env"] = {"GREETING": "ready 🚀 — ok"}
    bundle["command"] = ["python", "-c", "print('🤖')"]
    apply_template(cluster, namespace, manifest)
    wait_ready(cluster, namespace, "emoji")
    main = get_json(cluster, "deployment", "emoji", "-n", namespace)["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert {"name": "GREETING", "value": "ready 🚀 — ok"} in main["env"]
    assert main["command"] == ["python", "-c", "print('🤖')"]


class StatusRecorder:
    """Every version of a template the API server stores while it runs, from a watch."""

    def __init__(self, api_client, namespace: str, name: str):
        self.versions: list[dict] = []
        self._watch = watch.Watch()
        self._api = CustomObjectsApi(api_client)
        self._args = (GROUP, VERSION, namespace, PLURAL)
        self._selector = f"metadata.name={name}"
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for event in self._watch.stream(
                self._api.list_namespaced_custom_object,
                *self._args,
                field_selector=self._selector,
                timeout_seconds=120,
            ):
                self.versions.append(event["object"])
        except ProtocolError:
            pass  # the connection closes under a stopped watch

    def stop(self) -> None:
        self._watch.stop()
        self._reader.join(timeout=10)


def test_a_spec_change_is_never_ready_before_its_children_are(
    cluster, operator, namespace, api_client
):
    apply_template(cluster, namespace, tiny_template("stale"))
    wait_ready(cluster, namespace, "stale")
    recorder = StatusRecorder(api_client, namespace, "stale")
    try:
        # A change that can never become ready: more GPUs than any node has.
        change = tiny_template("stale", gpus=9, gpuType="nvidia-hopper-h100")
        apply_template(cluster, namespace, change)
        wait_for(
            lambda: (
                (c := condition(cluster, namespace, "stale")) and c["reason"] == "Unschedulable"
            ),
            what="Ready=False/Unschedulable",
        )
    finally:
        recorder.stop()
    generation = get_json(cluster, "modeltemplate", "stale", "-n", namespace)["metadata"][
        "generation"
    ]
    claims = [
        c
        for version in recorder.versions
        for c in (version.get("status") or {}).get("conditions") or []
        if c["type"] == "Ready" and c.get("observedGeneration") == generation
    ]
    assert claims, "no status was written for the new generation"
    assert all(c["status"] == "False" for c in claims), claims


def _operator_requests(cluster, offset: int) -> list[dict]:
    with cluster.audit_log.open("rb") as f:
        f.seek(offset)
        lines = f.read().decode().splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    return [e for e in events if e.get("userAgent", "").startswith("modeltemplate-operator/")]


def test_deleting_a_namespace_is_quiet(cluster, operator):
    if not isinstance(cluster, LocalCluster):
        pytest.skip("reads the local control plane's audit log")
    namespace, count = f"t-gone-{uuid.uuid4().hex[:6]}", 40
    cluster.kubectl("create", "namespace", namespace)
    items = [tiny_template(f"g{i:02d}", cpus="0.05", memory="64Mi") for i in range(count)]
    apply_list(cluster, namespace, items)
    cluster.kubectl(
        "wait",
        "-n",
        namespace,
        "--for=condition=Ready",
        "--timeout=120s",
        "modeltemplate",
        "--all",
        timeout=130,
    )
    log_offset = operator.log_path.stat().st_size
    audit_offset = cluster.audit_log.stat().st_size

    cluster.kubectl("delete", "namespace", namespace, "--timeout=120s", timeout=130)

    refused = [
        e
        for e in _operator_requests(cluster, audit_offset)
        if e.get("stage") == "ResponseComplete"
        and e["responseStatus"]["code"] >= 400
        and e["objectRef"].get("namespace") == namespace
    ]
    log = operator.log_path.read_bytes()[log_offset:].decode()
    complaints = [
        line
        for line in log.splitlines()
        if namespace in line and any(w in line for w in ("could not", "failed", "Traceback"))
    ]
    print(f"{count} templates: {len(refused)} refused operator requests while the namespace went")
    # At most one refused write per reconcile worker in flight when the deletion began.
    assert len(refused) <= 16, [e["requestURI"] for e in refused]
    assert complaints == []


def _pod_of(cluster, namespace, name) -> dict:
    [p] = [p for p in pods(cluster, namespace, name) if not p["metadata"].get("deletionTimestamp")]
    return p


def _ready_reason(cluster, namespace, name, reason):
    return wait_for(
        lambda: (c := condition(cluster, namespace, name)) and c["reason"] == reason and c,
        what=f"Ready=False/{reason}",
    )


def test_a_crash_loop_names_the_last_exit(cluster, operator, namespace):
    apply_template(cluster, namespace, tiny_template("oom"))
    wait_ready(cluster, namespace, "oom")
    waiting = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting"}}
    _kubelet_reports(
        cluster,
        namespace,
        "oom",
        waiting,
        main_ready=False,
        main_extra={
            "restartCount": 3,
            "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
        },
    )
    cond = _ready_reason(cluster, namespace, "oom", "CrashLoopBackOff")
    assert "last exit: OOMKilled (exit code 137) after 3 restarts" in cond["message"]


def test_a_missing_secret_key_is_named(cluster, operator, namespace):
    apply_template(cluster, namespace, tiny_template("secretless"))
    wait_ready(cluster, namespace, "secretless")
    message = f"couldn't find key token in Secret {namespace}/hf"
    waiting = {"waiting": {"reason": "CreateContainerConfigError", "message": message}}
    _kubelet_reports(cluster, namespace, "secretless", waiting, main_ready=False)
    cond = _ready_reason(cluster, namespace, "secretless", "CreateContainerConfigError")
    assert message in cond["message"]


def _stalled_on(cluster, namespace, name, reason) -> dict:
    cond = _ready_reason(cluster, namespace, name, reason)
    stalled = condition(cluster, namespace, name, "Stalled")
    assert stalled and stalled["status"] == "True" and stalled["reason"] == reason
    return cond


def test_pods_refused_for_a_missing_priority_class_are_named(cluster, operator, namespace):
    high = get_json(cluster, "priorityclass", "modeltemplate-high-priority")
    cluster.kubectl("delete", "priorityclass", "modeltemplate-high-priority")
    try:
        apply_template(cluster, namespace, tiny_template("vip", highPriority=True))
        cond = _stalled_on(cluster, namespace, "vip", "FailedCreate")
        assert "no PriorityClass with name modeltemplate-high-priority was found" in cond["message"]
    finally:
        for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"):
            high["metadata"].pop(key, None)
        cluster.kubectl("apply", "-f", "-", input=json.dumps(high))


def test_pods_refused_by_pod_security_admission_are_named(cluster, operator, namespace):
    cluster.kubectl(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    apply_template(cluster, namespace, tiny_template("restricted"))
    cond = _stalled_on(cluster, namespace, "restricted", "FailedCreate")
    assert "violates PodSecurity" in cond["message"]


@pytest.mark.parametrize("label", ["app.kubernetes.io/managed-by", "app.kubernetes.io/name"])
def test_a_child_that_loses_a_label_of_ours_is_repaired_at_once(
    cluster, operator, namespace, label
):
    """Leaving the watch's label selector arrives as a deletion of the child: the operator
    applies it again (its labels with it) without waiting for another event."""
    apply_template(cluster, namespace, tiny_template("labelled"))
    wait_ready(cluster, namespace, "labelled")
    cluster.kubectl("label", "service", "labelled", "-n", namespace, f"{label}-")

    def repaired():
        labels = get_json(cluster, "service", "labelled", "-n", namespace)["metadata"]["labels"]
        return label in labels

    wait_for(repaired, timeout=10, interval=0.2, what=f"the {label} label restored")
