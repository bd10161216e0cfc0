"""The image, run for real (``make test-real``): the operator and the gateway as containers
(podman, runc, host network) against the local control plane, each with only its deploy/
ServiceAccount's token, bring the samples to Ready and serve them — what
tests/integration/test_deploy.py proves of the same code run as processes.

The image is built by ``hack/build-image.sh`` (a Debian base made here with debootstrap; no
registry is reachable), so this suite needs root, podman and runc (the script installs them).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from integration._helpers_deploy import service_account_kubeconfig

from devtools.localcluster.cluster import wait_established
from devtools.ports import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SAMPLES = sorted((DEPLOY / "samples").glob("*.yaml"))
NAMESPACE = "modeltemplate-system"
SAMPLE_NS = "image-samples"
ASYNC_SAMPLE = "whisper-large-v3-async"


def _limits() -> list[str]:
    """The container's rlimits: the host's own (runc refuses to raise them), nproc at most
    4096 as hack/build-image.sh sets it."""
    nofile = subprocess.run(["bash", "-c", "ulimit -n"], capture_output=True, text=True).stdout
    nproc = subprocess.run(["bash", "-c", "ulimit -u"], capture_output=True, text=True).stdout
    n, p = nofile.strip(), nproc.strip()
    p = "4096" if p == "unlimited" or int(p) > 4096 else p
    return ["--ulimit", f"nofile={n}:{n}", "--ulimit", f"nproc={p}:{p}"]


@pytest.fixture(scope="module")
def image() -> str:
    built = subprocess.run(
        [str(REPO / "hack" / "build-image.sh")], capture_output=True, text=True, timeout=1800
    )
    assert built.returncode == 0, built.stderr[-4000:]
    return built.stdout.strip().splitlines()[-1]


def _names() -> set[str]:
    """The sample templates' names."""
    return {
        doc["metadata"]["name"]
        for sample in SAMPLES
        for doc in yaml.safe_load_all(sample.read_text())
        if doc and doc.get("kind") == "ModelTemplate"
    }


class Container:
    """``podman run -d`` of the image: runc, host network, read-only root, the host's rlimits,
    files mounted read-only."""

    def __init__(self, name: str, image: str, entrypoint: str, mounts: dict, env: dict, *args):
        self.name = name
        subprocess.run(["podman", "rm", "-f", name], capture_output=True)
        command = ["podman", "run", "-d", "--name", name, "--runtime", "runc", "--network", "host"]
        command += ["--read-only", *_limits(), "--entrypoint", entrypoint]
        for source, target in mounts.items():
            command += ["-v", f"{source}:{target}:ro"]
        for key, value in env.items():
            command += ["-e", f"{key}={value}"]
        started = subprocess.run(
            [*command, image, *args], capture_output=True, text=True, timeout=120
        )
        assert started.returncode == 0, started.stderr

    def logs(self) -> str:
        out = subprocess.run(["podman", "logs", self.name], capture_output=True, text=True)
        return out.stdout + out.stderr

    def running(self) -> bool:
        state = subprocess.run(
            ["podman", "inspect", "--format", "{{.State.Running}}", self.name],
            capture_output=True,
            text=True,
        )
        return state.stdout.strip() == "true"

    def remove(self) -> None:
        subprocess.run(["podman", "rm", "-f", "-t", "5", self.name], capture_output=True)


def _readable(path: Path) -> Path:
    path.chmod(0o644)  # read by the image's unprivileged user
    return path


@pytest.fixture(scope="module")
def deployed(cluster, image, tmp_path_factory):
    """deploy/ applied (its in-cluster replicas scaled to 0: kwok runs no containers), then the
    operator and the gateway as containers of the image, each with its ServiceAccount's token."""
    cluster.kubectl("apply", "--server-side", "-k", str(DEPLOY))
    wait_established(cluster, "modeltemplates.launch.modelops.dev", "clusterkopfpeerings.kopf.dev")
    cluster.kubectl(
        "scale",
        "deployment/modeltemplate-operator",
        "deployment/modeltemplate-gateway",
        "-n",
        NAMESPACE,
        "--replicas=0",
    )
    cluster.kubectl("delete", "clusterkopfpeering", "modeltemplate-operator", "--ignore-not-found")
    work = tmp_path_factory.mktemp("image")
    work.chmod(0o755)
    maps = json.loads(cluster.kubectl("get", "configmap", "-n", NAMESPACE, "-o", "json").stdout)
    (work / "config.yaml").write_text(
        next(m["data"]["config.yaml"] for m in maps["items"] if "config.yaml" in m.get("data", {}))
    )
    config = _readable(work / "config.yaml")
    operator_kc = _readable(service_account_kubeconfig(cluster, work / "operator.kubeconfig"))
    gateway_kc = _readable(
        service_account_kubeconfig(
            cluster, work / "gateway.kubeconfig", "modeltemplate-gateway", NAMESPACE
        )
    )
    operator = Container(
        "mt-operator",
        image,
        "modeltemplate-operator",
        {operator_kc: "/etc/mt/kubeconfig", config: "/etc/mt/config.yaml"},
        {"KUBECONFIG": "/etc/mt/kubeconfig", "MODELTEMPLATE_CONFIG_FILE": "/etc/mt/config.yaml"},
        f"--liveness=http://127.0.0.1:{free_port()}/healthz",
    )
    port = free_port()
    gateway = Container(
        "mt-gateway",
        image,
        "modeltemplate-gateway",
        {gateway_kc: "/etc/mt/kubeconfig"},
        {"KUBECONFIG": "/etc/mt/kubeconfig"},
        "--host=127.0.0.1",
        f"--port={port}",
    )
    cluster.kubectl("create", "namespace", SAMPLE_NS, check=False)
    for sample in SAMPLES:
        cluster.kubectl("apply", "-n", SAMPLE_NS, "-f", str(sample))
    try:
        yield operator, gateway, port
    finally:
        for container in (operator, gateway):
            log = REPO / "test-artifacts" / f"image-{container.name}.log"
            log.parent.mkdir(exist_ok=True)
            log.write_text(container.logs())
            container.remove()
        cluster.kubectl("delete", "namespace", SAMPLE_NS, "--wait=false", check=False)


def test_the_operator_container_brings_every_sample_to_ready(cluster, deployed):
    operator, _, _ = deployed
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert operator.running(), operator.logs()[-4000:]
        items = json.loads(
            cluster.kubectl("get", "modeltemplates", "-n", SAMPLE_NS, "-o", "json").stdout
        )["items"]
        ready = {
            t["metadata"]["name"]: next(
                (
                    c["status"]
                    for c in (t.get("status") or {}).get("conditions", [])
                    if c["type"] == "Ready"
                ),
                None,
            )
            for t in items
        }
        if set(ready) >= _names() and all(
            status == "True" for name, status in ready.items() if name != ASYNC_SAMPLE
        ):
            break
        time.sleep(2)
    else:
        raise AssertionError(f"not Ready: {ready}\n{operator.logs()[-4000:]}")
    logs = operator.logs()
    assert "Forbidden" not in logs and '"code":403' not in logs, logs[-4000:]


def test_the_gateway_container_serves_the_templates(cluster, deployed):
    _, gateway, port = deployed
    cluster.kubectl("create", "serviceaccount", "reader", "-n", SAMPLE_NS, check=False)
    cluster.kubectl(
        "create", "rolebinding", "reader", "-n", SAMPLE_NS, "--clusterrole=modeltemplate-viewer",
        f"--serviceaccount={SAMPLE_NS}:reader", check=False,
    )  # fmt: skip
    key = cluster.kubectl("create", "token", "reader", "-n", SAMPLE_NS).stdout.strip()
    deadline = time.monotonic() + 60
    while True:
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v4/model-templates?limit=100",
                headers={"x-api-key": key, "x-selected-account-id": SAMPLE_NS},
            )
            with urllib.request.urlopen(request, timeout=5) as answer:
                page = json.loads(answer.read())
            if {t["name"] for t in page["items"]} >= _names():
                break
        except OSError:
            pass
        assert time.monotonic() < deadline and gateway.running(), gateway.logs()[-4000:]
        time.sleep(1)
    assert gateway.running()
