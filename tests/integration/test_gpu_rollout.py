"""GPU-aware rollout on the local control plane: the H100 node is filled so that a surge worker
cannot be scheduled, the template changes, and the operator either replaces workers in place
(two workers) or reports Ready=False RolloutBlocked (one worker) — watched, not assumed."""

from __future__ import annotations

import json
import threading

import pytest
from kubernetes import client, config, watch
from support.k8s import get_json, wait_for
from support.manifests import tiny_template

pytestmark = pytest.mark.integration

H100_NODE = "gpu-h100-p5-48xlarge-0"
GPU = "nvidia.com/gpu"
GPUS_PER_WORKER = 2


def gpu_template(name: str, workers: int, revision: str) -> dict:
    t = tiny_template(
        name,
        gpuType="nvidia-hopper-h100",
        gpus=GPUS_PER_WORKER,
        cpus="1",
        memory="1Gi",
        minWorkers=workers,
        maxWorkers=workers,
    )
    t["spec"]["vendorConfiguration"]["bundleConfig"]["env"] = {"REVISION": revision}
    return t


def apply(cluster, namespace: str, doc: dict) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc))


def ready(cluster, namespace: str, name: str) -> dict:
    mt = get_json(cluster, "modeltemplate", name, "-n", namespace)
    conditions = {c["type"]: c for c in (mt.get("status") or {}).get("conditions") or []}
    return conditions.get("Ready") or {}


def free_gpus(cluster) -> int:
    """GPUs of the H100 node that no pod staying there holds. Pods being deleted, or in a
    namespace being deleted (an earlier test's), give theirs back soon: counted as free, so a
    filler sized by this waits for them rather than leaving room behind it."""
    node = get_json(cluster, "node", H100_NODE)
    total = int(node["status"]["allocatable"][GPU])
    pods = get_json(cluster, "pods", "-A", f"--field-selector=spec.nodeName={H100_NODE}")
    going = {
        ns["metadata"]["name"]
        for ns in get_json(cluster, "namespaces")["items"]
        if ns["metadata"].get("deletionTimestamp")
    }
    used = 0
    for pod in pods["items"]:
        if pod["status"].get("phase") in ("Succeeded", "Failed"):
            continue
        if pod["metadata"].get("deletionTimestamp") or pod["metadata"]["namespace"] in going:
            continue
        for container in pod["spec"]["containers"]:
            used += int(((container.get("resources") or {}).get("requests") or {}).get(GPU, 0))
    return total - used


def fill_h100(cluster, namespace: str) -> None:
    """A pod taking every GPU of the H100 node that is still free (scheduled as any pod)."""
    free = free_gpus(cluster)
    assert free > 0, "nothing to fill: the H100 node is already full"
    filler = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "h100-filler", "namespace": namespace},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": H100_NODE},
            "tolerations": [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [
                {
                    "name": "hold",
                    "image": "modelops/filler:1",
                    "resources": {"limits": {GPU: str(free)}, "requests": {GPU: str(free)}},
                }
            ],
        },
    }
    apply(cluster, namespace, filler)
    wait_for(
        lambda: get_json(cluster, "pod", "h100-filler", "-n", namespace)["spec"].get("nodeName"),
        timeout=120,
        what="the filler pod scheduled (once pods going away have gone)",
    )
    assert free_gpus(cluster) == 0


class Recorder:
    """Every version of the namespace's Deployments and pods, from a watch (nothing missed)."""

    def __init__(self, cluster, namespace: str):
        api = config.new_client_from_config(str(cluster.kubeconfig))
        self.namespace = namespace
        self.deployments: list[dict] = []
        self.pods: list[dict] = []
        self._threads = [
            threading.Thread(
                target=self._run,
                args=(client.AppsV1Api(api).list_namespaced_deployment, self.deployments),
                daemon=True,
            ),
            threading.Thread(
                target=self._run,
                args=(client.CoreV1Api(api).list_namespaced_pod, self.pods),
                daemon=True,
            ),
        ]
        self._watches: list[watch.Watch] = []
        self._stopped = False
        self.errors: list[Exception] = []
        for t in self._threads:
            t.start()

    def _run(self, lister, into: list[dict]) -> None:
        w = watch.Watch()
        self._watches.append(w)
        try:
            for event in w.stream(lister, self.namespace, timeout_seconds=240):
                into.append(event["raw_object"])
        except Exception as exc:  # noqa: BLE001 - the stream ends when the cluster goes
            if not self._stopped:
                self.errors.append(exc)

    def stop(self) -> None:
        self._stopped = True
        for w in self._watches:
            w.stop()

    def surges(self, name: str) -> list[int]:
        """maxSurge of each version of Deployment ``name``, in order (repeats collapsed)."""
        out: list[int] = []
        for dep in self.deployments:
            if dep["metadata"]["name"] != name:
                continue
            surge = dep["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
            if not out or out[-1] != surge:
                out.append(surge)
        return out

    def unschedulable_pods(self) -> set[str]:
        return {
            p["metadata"]["name"]
            for p in self.pods
            if any(
                c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        }


def live_pods(cluster, namespace: str, name: str) -> list[dict]:
    items = get_json(cluster, "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={name}")[
        "items"
    ]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def test_two_workers_fall_back_to_replacing_in_place(cluster, operator, namespace):
    apply(cluster, namespace, gpu_template("two", 2, "1"))
    wait_for(lambda: ready(cluster, namespace, "two").get("status") == "True", timeout=90)
    first = {
        p["metadata"]["labels"]["pod-template-hash"] for p in live_pods(cluster, namespace, "two")
    }
    fill_h100(cluster, namespace)
    recorder = Recorder(cluster, namespace)
    try:
        apply(cluster, namespace, gpu_template("two", 2, "2"))

        def rolled():
            dep = get_json(cluster, "deployment", "two", "-n", namespace)
            pods = live_pods(cluster, namespace, "two")
            hashes = {p["metadata"]["labels"]["pod-template-hash"] for p in pods}
            return (
                len(pods) == 2
                and not hashes & first
                and dep["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 1
                and ready(cluster, namespace, "two").get("status") == "True"
            )

        wait_for(rolled, timeout=120, what="the rollout done, surging again, Ready")
    finally:
        recorder.stop()
    assert not recorder.errors, f"the watch broke off: {recorder.errors}"
    # Observed: the surge worker could not be scheduled, the Deployment replaced in place
    # (maxSurge 0), then went back to surging once every worker ran the new spec.
    assert recorder.unschedulable_pods(), "no worker was ever Unschedulable: the node was not full"
    assert recorder.surges("two") == [1, 0, 1]
    assert free_gpus(cluster) == 0  # the new workers took the old ones' GPUs


def test_one_worker_reports_rollout_blocked_then_recovers(cluster, operator, namespace):
    apply(cluster, namespace, gpu_template("one", 1, "1"))
    wait_for(lambda: ready(cluster, namespace, "one").get("status") == "True", timeout=90)
    [old] = live_pods(cluster, namespace, "one")
    fill_h100(cluster, namespace)
    apply(cluster, namespace, gpu_template("one", 1, "2"))
    cond = wait_for(
        lambda: (c := ready(cluster, namespace, "one")).get("reason") == "RolloutBlocked" and c,
        timeout=90,
        what="Ready=False RolloutBlocked",
    )
    assert cond["status"] == "False"
    assert f"{GPUS_PER_WORKER} free {GPU}" in cond["message"]
    assert "k8s.amazonaws.com/accelerator=nvidia-hopper-h100" in cond["message"]
    mt = get_json(cluster, "modeltemplate", "one", "-n", namespace)
    stalled = {c["type"]: c for c in mt["status"]["conditions"]}["Stalled"]
    assert (stalled["status"], stalled["reason"]) == ("True", "RolloutBlocked")
    # The old worker keeps serving; the Deployment still surges (no in-place downtime).
    dep = get_json(cluster, "deployment", "one", "-n", namespace)
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    names = {p["metadata"]["name"]: p for p in live_pods(cluster, namespace, "one")}
    assert names[old["metadata"]["name"]]["status"]["phase"] == "Running"
    # A GPU frees up: the waiting worker starts and the rollout completes.
    cluster.kubectl("delete", "pod", "h100-filler", "-n", namespace, "--wait=true")
    wait_for(
        lambda: (
            ready(cluster, namespace, "one").get("status") == "True"
            and old["metadata"]["name"]
            not in {p["metadata"]["name"] for p in live_pods(cluster, namespace, "one")}
        ),
        timeout=120,
        what="Ready again on the new spec",
    )


def test_a_model_of_a_gpu_template_reports_rollout_blocked(cluster, operator, namespace):
    """The same for a Model: its template's change reaches it, its surge worker cannot be
    scheduled, and the model says RolloutBlocked until a GPU frees."""
    template = gpu_template("gpu-pure", 1, "1")
    template["spec"]["modelCreationParametersSchema"] = {
        "parameters": [{"name": "hf_repo", "type": "str", "required": True}]
    }
    apply(cluster, namespace, template)
    apply(
        cluster,
        namespace,
        {
            "apiVersion": "launch.modelops.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "solo"},
            "spec": {
                "templateRef": {"name": "gpu-pure"},
                "creationParameters": {"hf_repo": "meta/llama-3-8b"},
            },
        },
    )

    def model_ready():
        mdl = get_json(cluster, "model", "solo", "-n", namespace)
        conditions = {c["type"]: c for c in (mdl.get("status") or {}).get("conditions") or []}
        return conditions.get("Ready") or {}

    wait_for(lambda: model_ready().get("status") == "True", timeout=90, what="model Ready")
    fill_h100(cluster, namespace)
    template["spec"]["vendorConfiguration"]["bundleConfig"]["env"] = {"REVISION": "2"}
    apply(cluster, namespace, template)
    cond = wait_for(
        lambda: (c := model_ready()).get("reason") == "RolloutBlocked" and c,
        timeout=90,
        what="the model Ready=False RolloutBlocked",
    )
    assert f"{GPUS_PER_WORKER} free {GPU}" in cond["message"]
    # The template counts it as on the new generation and not ready (a one-model wave).
    wait_for(
        lambda: (
            (
                get_json(cluster, "modeltemplate", "gpu-pure", "-n", namespace).get("status") or {}
            ).get("models")
            == {"total": 1, "updated": 1, "ready": 0}
        ),
        timeout=30,
        what="the template counting its model updated, not ready",
    )
    cluster.kubectl("delete", "pod", "h100-filler", "-n", namespace, "--wait=true")
    wait_for(lambda: model_ready().get("status") == "True", timeout=120, what="model Ready again")
