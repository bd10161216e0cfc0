"""Flux for real: its kustomize-controller (hack/build-tools.sh builds the pinned one) applies
deploy/samples from a local source and judges their health with its own kstatus.

The source is an ExternalArtifact (Flux's kind for artifacts that other tools produce) whose
tarball a local HTTP server serves. The Kustomization's health checks are those of
deploy/gitops/flux/modeltemplate-operator.yaml. With no operator running, the templates are
applied and the Kustomization is not Ready; once the operator runs and every checked template is
Ready, the Kustomization is, and not before.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import signal
import subprocess
import tarfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml
from support.k8s import get_json, wait_for
from support.operator import OperatorProcess
from support.tools import tool

from devtools.localcluster.cluster import wait_established
from devtools.ports import free_port

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "deploy" / "samples").glob("*.yaml"))
FLUX_EXAMPLE = REPO / "deploy" / "gitops" / "flux" / "modeltemplate-operator.yaml"
ARTIFACTS = REPO / "test-artifacts"
RUN = uuid.uuid4().hex[:6]
FLUX_NS = f"flux-{RUN}"
TARGET_NS = f"flux-samples-{RUN}"
STALLED_NS = f"flux-stalled-{RUN}"
ASYNC_SAMPLE = "whisper-large-v3-async"


def _tarball() -> bytes:
    """deploy/samples as a source artifact: the manifests at the root of a .tar.gz."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in SAMPLES:
            data = path.read_bytes()
            info = tarfile.TarInfo(path.name)
            info.size, info.mode, info.mtime = len(data), 0o600, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def artifact_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("artifacts")
    data = _tarball()
    (root / "samples.tar.gz").write_bytes(data)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):  # quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/samples.tar.gz", data
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def kustomize_controller(cluster, cluster_prereqs):
    binary = tool("kustomize-controller")
    crds = sorted((binary.parent / "crds").glob("*.yaml"))
    cluster.kubectl("apply", "--server-side", *[f"-f={c}" for c in crds])
    names = [yaml.safe_load(c.read_text())["metadata"]["name"] for c in crds]
    wait_established(cluster, *names)
    for namespace in (FLUX_NS, TARGET_NS, STALLED_NS):
        cluster.kubectl("create", "namespace", namespace)
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "flux-kustomize-controller.log", "wb")  # noqa: SIM115 - the child's
    proc = subprocess.Popen(
        [
            str(binary),
            "--metrics-addr=0",
            f"--health-addr=127.0.0.1:{free_port()}",
            "--feature-gates=ExternalArtifact=true",
            "--no-remote-bases=true",
            "--concurrent=2",
        ],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "RUNTIME_NAMESPACE": FLUX_NS},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    try:
        yield proc
    finally:
        # Kustomizations carry the controller's finalizer: delete them (pruning what they
        # applied) while it still runs.
        cluster.kubectl(
            "delete", "kustomizations", "--all", "-n", FLUX_NS, "--timeout=60s", check=False
        )
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for namespace in (FLUX_NS, TARGET_NS, STALLED_NS):
            cluster.kubectl("delete", "namespace", namespace, "--timeout=90s", check=False)


def _health_checks() -> list[dict]:
    """The samples Kustomization's health checks of the Flux example, in this run's namespace."""
    docs = [d for d in yaml.safe_load_all(FLUX_EXAMPLE.read_text()) if d]
    (samples,) = [
        d for d in docs if d["kind"] == "Kustomization" and d["spec"]["path"] == "./deploy/samples"
    ]
    return [{**check, "namespace": TARGET_NS} for check in samples["spec"]["healthChecks"]]


def _ready(obj: dict) -> dict:
    return next(
        (c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {}
    )


@pytest.fixture(scope="module")
def source(cluster, kustomize_controller, artifact_url) -> str:
    """The ExternalArtifact "samples" with the tarball as its artifact; its revision."""
    url, data = artifact_url
    source = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "ExternalArtifact",
        "metadata": {"name": "samples", "namespace": FLUX_NS},
        "spec": {},
    }
    cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(source))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = {
        "status": {
            "artifact": {
                "path": url,
                "url": url,
                "revision": "samples@sha256:" + hashlib.sha256(data).hexdigest(),
                "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
                "lastUpdateTime": now,
            },
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Succeeded",
                    "message": "served by the test",
                    "lastTransitionTime": now,
                }
            ],
        }
    }
    cluster.kubectl(
        "patch",
        "externalartifact",
        "samples",
        "-n",
        FLUX_NS,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    return status["status"]["artifact"]["revision"]


def _kustomization(cluster, name: str, target: str, checks: list[dict]) -> None:
    kustomization = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": FLUX_NS},
        "spec": {
            "interval": "10m",
            "sourceRef": {"kind": "ExternalArtifact", "name": "samples"},
            "path": "./",
            "prune": True,
            "targetNamespace": target,
            "timeout": "5m",
            "healthChecks": checks,
        },
    }
    cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(kustomization))


def _flux(cluster, controller, name: str) -> dict:
    log = ARTIFACTS / "flux-kustomize-controller.log"
    assert controller.poll() is None, log.read_text()[-3000:]
    return get_json(cluster, "kustomization", name, "-n", FLUX_NS)


def test_flux_waits_for_every_template_to_be_ready(cluster, kustomize_controller, source):
    checks = _health_checks()
    _kustomization(cluster, "samples", TARGET_NS, checks)

    def flux():
        return _flux(cluster, kustomize_controller, "samples")

    # No operator yet: Flux applies every sample and waits on the health checks.
    wait_for(
        lambda: len(get_json(cluster, "modeltemplates", "-n", TARGET_NS)["items"]) == len(SAMPLES),
        timeout=90,
        what="Flux to apply every sample",
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        ready = _ready(flux())
        assert ready.get("status") != "True", ready
        time.sleep(1)
    assert "health" in ready.get("message", "").lower() or ready.get("reason") == "Progressing", (
        ready
    )

    # The operator runs: the templates become Ready, then the Kustomization.
    operator = OperatorProcess(Path(cluster.kubeconfig), ARTIFACTS / "flux-operator.log")
    operator.log_path.unlink(missing_ok=True)
    operator.start()
    try:
        # Ready and the applied revision may reach the status in separate writes of the
        # kustomize-controller (once seen: Ready=True without lastAppliedRevision yet).
        done = wait_for(
            lambda: (
                k
                if _ready(k := flux()).get("status") == "True"
                and k["status"].get("lastAppliedRevision")
                else None
            ),
            timeout=180,
            what="the Kustomization to be Ready with its revision applied",
        )
        became_ready = _ready(done)["lastTransitionTime"]
        templates = {
            t["metadata"]["name"]: t
            for t in get_json(cluster, "modeltemplates", "-n", TARGET_NS)["items"]
        }
        for check in checks:
            ready = _ready(templates[check["name"]])
            assert ready["status"] == "True", (check["name"], ready)
            # Every checked template was Ready before the Kustomization was.
            assert ready["lastTransitionTime"] <= became_ready, (
                check["name"],
                ready,
                done["status"],
            )
        assert done["status"]["lastAppliedRevision"] == source
    finally:
        operator.stop()


def test_flux_fails_at_once_on_a_stalled_template(cluster, kustomize_controller, source):
    """Stalled=True is kstatus' Failed: Flux stops waiting at once (its fail-fast health check)
    and says why, instead of waiting out the Kustomization's 5 minute timeout."""
    operator = OperatorProcess(Path(cluster.kubeconfig), ARTIFACTS / "flux-operator-stalled.log")
    operator.log_path.unlink(missing_ok=True)
    operator.start()
    try:
        started = time.monotonic()
        checks = [{**_health_checks()[0], "name": ASYNC_SAMPLE, "namespace": STALLED_NS}]
        _kustomization(cluster, "stalled", STALLED_NS, checks)
        failed = wait_for(
            lambda: (
                k
                if _ready(k := _flux(cluster, kustomize_controller, "stalled")).get("status")
                == "False"
                else None
            ),
            timeout=120,
            what="the Kustomization to fail its health check",
        )
        elapsed = time.monotonic() - started
    finally:
        operator.stop()
    ready = _ready(failed)
    assert ready["reason"] == "HealthCheckFailed", ready
    assert ASYNC_SAMPLE in ready["message"], ready
    assert elapsed < 120  # far from the 5 minute timeout
    print(
        f"\nFlux failed the stalled template's health check after {elapsed:.0f} s: {ready['message']}"
    )
