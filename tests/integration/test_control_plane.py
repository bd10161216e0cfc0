"""The local control plane behaves like a real cluster with a GPU fleet."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
from kubernetes.utils import parse_quantity
from support.k8s import get_json, wait_for

from devtools.localcluster import LocalCluster, load_node_manifests
from devtools.localcluster.cluster import pid_alive

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def deployment(
    name: str, resources: dict, node_selector: dict | None = None, owner: dict | None = None
):
    pod_spec = {
        "containers": [
            {
                "name": "main",
                "image": "registry.example/model:1",
                "resources": {"requests": resources, "limits": resources},
            }
        ],
        "tolerations": [GPU_TOLERATION],
    }
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    meta = {"name": name, "labels": {"app": name}}
    if owner:
        meta["ownerReferences"] = [owner]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def apply(cluster, namespace, manifest):
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))


def wait_available(cluster, namespace, name):
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Available", "--timeout=60s", f"deployment/{name}"
    )


def pods_of(cluster, namespace, app):
    return get_json(cluster, "pods", "-n", namespace, "-l", f"app={app}")["items"]


def test_fake_gpu_fleet_is_ready(cluster):
    nodes = {n["metadata"]["name"]: n for n in get_json(cluster, "nodes")["items"]}
    expected = load_node_manifests()
    for want in expected:
        node = nodes[want["metadata"]["name"]]
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True", want["metadata"]["name"]
        for key, value in want["metadata"]["labels"].items():
            assert node["metadata"]["labels"][key] == value
        allocatable = node["status"]["allocatable"]
        assert allocatable.keys() == want["status"]["allocatable"].keys()
        for resource, quantity in want["status"]["allocatable"].items():
            assert parse_quantity(allocatable[resource]) == parse_quantity(quantity), resource
    h100 = nodes["gpu-h100-p5-48xlarge-0"]
    assert h100["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in h100["spec"][
        "taints"
    ]
    mig = nodes["gpu-h100-mig-p5-48xlarge-0"]["status"]["allocatable"]
    assert mig["nvidia.com/mig-1g.20gb"] == "16" and mig["nvidia.com/mig-3g.40gb"] == "8"
    assert "taints" not in nodes["cpu-m5-4xlarge-0"]["spec"]


def test_h100_request_lands_on_h100_node_and_becomes_available(cluster, namespace):
    apply(
        cluster,
        namespace,
        deployment(
            "h100",
            {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
            node_selector={"k8s.amazonaws.com/accelerator": "nvidia-hopper-h100"},
        ),
    )
    wait_available(cluster, namespace, "h100")
    [pod] = pods_of(cluster, namespace, "h100")
    assert pod["spec"]["nodeName"] == "gpu-h100-p5-48xlarge-0"
    assert pod["status"]["phase"] == "Running"


def test_mig_slice_request_lands_on_mig_node(cluster, namespace):
    apply(
        cluster,
        namespace,
        deployment("mig", {"cpu": "2", "memory": "8Gi", "nvidia.com/mig-1g.20gb": "1"}),
    )
    wait_available(cluster, namespace, "mig")
    [pod] = pods_of(cluster, namespace, "mig")
    assert pod["spec"]["nodeName"] == "gpu-h100-mig-p5-48xlarge-0"


def test_oversize_gpu_request_stays_pending_with_failed_scheduling(cluster, namespace):
    apply(
        cluster,
        namespace,
        deployment("oversize", {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "9"}),
    )

    def unschedulable():
        pods = pods_of(cluster, namespace, "oversize")
        if not pods:
            return None
        cond = {c["type"]: c for c in pods[0]["status"].get("conditions", [])}.get("PodScheduled")
        return cond if cond and cond.get("reason") == "Unschedulable" else None

    cond = wait_for(unschedulable, what="PodScheduled=False/Unschedulable")
    assert "Insufficient nvidia.com/gpu" in cond["message"]
    [pod] = pods_of(cluster, namespace, "oversize")
    assert pod["status"]["phase"] == "Pending"
    events = wait_for(
        lambda: [
            e
            for e in get_json(cluster, "events", "-n", namespace)["items"]
            if e["reason"] == "FailedScheduling"
            and e["involvedObject"]["name"] == pod["metadata"]["name"]
        ],
        what="FailedScheduling event",
    )
    assert "Insufficient nvidia.com/gpu" in events[0]["message"]


def test_deleting_an_owner_garbage_collects_owned_objects(cluster, namespace):
    cluster.kubectl("create", "configmap", "owner", "-n", namespace)
    owner = get_json(cluster, "configmap", "owner", "-n", namespace)
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    apply(cluster, namespace, deployment("owned", {"cpu": "100m", "memory": "64Mi"}, owner=ref))
    wait_available(cluster, namespace, "owned")
    assert pods_of(cluster, namespace, "owned")

    cluster.kubectl("delete", "configmap", "owner", "-n", namespace)
    wait_for(
        lambda: (
            not get_json(cluster, "deployments,replicasets", "-n", namespace)["items"]
            and not pods_of(cluster, namespace, "owned")
        ),
        what="garbage collection of the Deployment, ReplicaSet and Pods",
    )


def test_service_accounts_and_rbac_behave_as_on_a_real_cluster(cluster, namespace):
    apply(cluster, namespace, deployment("sa", {"cpu": "100m", "memory": "64Mi"}))
    wait_available(cluster, namespace, "sa")
    [pod] = pods_of(cluster, namespace, "sa")
    # ServiceAccount admission filled in the account and its projected token volume.
    assert pod["spec"]["serviceAccountName"] == "default"
    assert any("projected" in v for v in pod["spec"]["volumes"])
    # RBAC is enforced: the default account may not list pods, the admin may.
    who = f"system:serviceaccount:{namespace}:default"
    denied = cluster.kubectl(
        "auth", "can-i", "list", "pods", "-n", namespace, f"--as={who}", check=False
    )
    assert denied.stdout.strip() == "no"
    assert cluster.kubectl("auth", "can-i", "list", "pods", "-n", namespace).stdout.strip() == "yes"


@pytest.mark.skipif(
    os.environ.get("USE_EXISTING_CLUSTER") == "1", reason="checks the locally built binaries"
)
def test_binaries_report_the_pinned_versions(cluster: LocalCluster):
    pins = dict(
        line.split("=", 1)
        for line in (cluster_repo() / "hack" / "versions.env").read_text().splitlines()
        if line and not line.startswith("#")
    )

    def version(name, *args):
        out = subprocess.run([cluster.binary(name), *args], capture_output=True, text=True)
        return out.stdout + out.stderr

    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert pins["KUBE_VERSION"] in version(name, "--version"), name
    assert pins["KUBE_VERSION"] in version("kubectl", "version", "--client")
    assert pins["KWOK_VERSION"] in version("kwok", "--version")
    assert "etcd Version: 3." in version("etcd", "--version")


def cluster_repo():
    from devtools.localcluster.cluster import REPO_ROOT

    return REPO_ROOT


def test_up_restarts_dead_components_and_keeps_the_cluster(tmp_path_factory):
    """`make cluster-up` after a component died restarts it: same CA, ports and objects."""
    own = LocalCluster(root=tmp_path_factory.mktemp("restart-cluster"))
    own.up()
    try:
        own.kubectl("create", "configmap", "survivor", "--from-literal=k=v")
        server, ca = own.server, (own.root / "pki" / "ca.crt").read_bytes()
        killed = ("etcd", "kube-scheduler", "kwok")
        for name in killed:
            os.killpg(own.pids[name], signal.SIGKILL)
        wait_for(lambda: not any(pid_alive(own.pids[n]) for n in killed), what="all three dead")

        again = LocalCluster(root=own.root).up()

        assert again.server == server and (own.root / "pki" / "ca.crt").read_bytes() == ca
        assert all(pid_alive(pid) for pid in again.pids.values()) and again.running()
        assert get_json(again, "configmap", "survivor")["data"] == {"k": "v"}
    finally:
        LocalCluster(root=own.root).down()
