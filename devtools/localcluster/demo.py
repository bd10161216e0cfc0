"""``make demo``: the local control plane, the CRD, the operator and every sample, then a table.

The operator runs as a background process of the local cluster (``make cluster-down`` stops it
with the rest); its log is ``.local-cluster/logs/operator.log``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import yaml

from .cluster import REPO_ROOT, ClusterError, LocalCluster, pid_alive

NAMESPACE = "modeltemplate-demo"
SAMPLES = REPO_ROOT / "deploy" / "samples"
CLUSTER_FILES = [
    REPO_ROOT / "deploy" / "base" / "priorityclasses.yaml",
    REPO_ROOT / "deploy" / "base" / "kopf-peering-crds.yaml",
]


def install_crds(cluster: LocalCluster) -> None:
    crds = sorted(f for f in (REPO_ROOT / "crds").glob("*.yaml") if f.name != "kustomization.yaml")
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", *[f"-f={f}" for f in crds + CLUSTER_FILES]
    )
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")


def start_operator(cluster: LocalCluster) -> int:
    """The operator against the local cluster, once; returns its pid."""
    pid_file = cluster.operator_pid_file
    if pid_file.exists() and pid_alive(int(pid_file.read_text())):
        return int(pid_file.read_text())
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "MODELTEMPLATE_LOG_FORMAT": "json"}
    with open(cluster.logs / "operator.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modeltemplate_operator"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    pid_file.write_text(str(proc.pid))
    return proc.pid


def _samples() -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted(SAMPLES.glob("*.yaml"))]


def wait_for_samples(cluster: LocalCluster, timeout: float = 180) -> None:
    names = [s["metadata"]["name"] for s in _samples() if s["spec"]["endpointType"] != "ASYNC"]
    deadline = time.monotonic() + timeout
    for name in names:
        left = max(1, int(deadline - time.monotonic()))
        cluster.kubectl(
            "wait",
            "-n",
            NAMESPACE,
            "--for=condition=Ready",
            f"--timeout={left}s",
            f"modeltemplate/{name}",
            timeout=left + 10,
        )


def table(cluster: LocalCluster) -> str:
    templates = json.loads(
        cluster.kubectl("get", "modeltemplates", "-n", NAMESPACE, "-o", "json").stdout
    )["items"]
    pods = json.loads(cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json").stdout)["items"]
    rows = [("TEMPLATE", "TYPE", "GPU", "READY", "REASON", "WORKERS ON NODES")]
    for mt in templates:
        name = mt["metadata"]["name"]
        ec = mt["spec"]["vendorConfiguration"].get("endpointConfig") or {}
        gpu = f"{ec.get('gpuType')} x{ec.get('gpus')}" if ec.get("gpus") else "cpu only"
        ready = {c["type"]: c for c in (mt.get("status") or {}).get("conditions") or []}.get(
            "Ready"
        ) or {}
        nodes = sorted(
            p["spec"].get("nodeName") or "(pending)"
            for p in pods
            if p["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == name
        )
        rows.append(
            (
                name,
                mt["spec"]["endpointType"],
                gpu,
                ready.get("status", "?"),
                ready.get("reason", ""),
                ", ".join(nodes) or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def run(cluster: LocalCluster) -> int:
    cluster.up()
    print(f"local control plane: {cluster.server}")
    install_crds(cluster)
    pid = start_operator(cluster)
    print(f"operator running (pid {pid}, log {cluster.logs / 'operator.log'})")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(namespace))
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", str(SAMPLES))
    print(
        f"applied {len(_samples())} sample ModelTemplates to namespace {NAMESPACE}; waiting for Ready ..."
    )
    try:
        wait_for_samples(cluster)
    except ClusterError as err:
        print(f"not every sample became Ready: {err}", file=sys.stderr)
        print(table(cluster))
        return 1
    print()
    print(table(cluster))
    print(f"""
Explore:
  export KUBECONFIG={cluster.kubeconfig}
  kubectl get modeltemplates -n {NAMESPACE}
  kubectl describe modeltemplate -n {NAMESPACE} llama-3-1-8b-instruct-vllm
  kubectl get deploy,svc,hpa,pdb,job,pods -n {NAMESPACE} -o wide
Clean up:
  kubectl delete namespace {NAMESPACE}   # templates and every child they own
  make cluster-down{" " * (len(NAMESPACE) + 11)}# the operator and the control plane""")
    return 0
