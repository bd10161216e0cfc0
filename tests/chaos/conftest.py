"""The chaos suite's own control plane (it kills its components) and its operator processes.

Every experiment records rows of experiment -> invariant -> result (chaoskit.record); the table
is printed at the end of the run and written to test-artifacts/chaos.md. ``CHAOS_TEMPLATES``
sets the burst size (``make test``: 60, ``make chaos``: 200).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.operator import OperatorProcess

from devtools.localcluster import LocalCluster
from devtools.localcluster.cluster import wait_established

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def chaos_cluster(tmp_path_factory):
    """A control plane of the chaos suite alone: its experiments kill etcd and the API server."""
    local = LocalCluster(root=tmp_path_factory.mktemp("chaos-cluster"))
    local.up(timeout=180)
    for path in (
        REPO / "crds" / "launch.modelops.dev_modeltemplates.yaml",
        REPO / "deploy" / "base" / "priorityclasses.yaml",
        REPO / "deploy" / "base" / "kopf-peering-crds.yaml",
    ):
        local.kubectl("apply", "--server-side", "-f", str(path))
    wait_established(local, "modeltemplates.launch.modelops.dev")
    yield local
    local.down()
    shutil.rmtree(local.root, ignore_errors=True)


@pytest.fixture
def start_operator(chaos_cluster, request):
    """Start operator processes (standalone unless given args); all stopped after the test."""
    started: list[OperatorProcess] = []

    def start(*args: str, name: str = "", env: dict | None = None) -> OperatorProcess:
        label = f"{request.node.name}{'-' + name if name else ''}-{len(started)}"
        log = ARTIFACTS / f"chaos-operator-{label}.log"
        log.unlink(missing_ok=True)
        proc = OperatorProcess(Path(chaos_cluster.kubeconfig), log, *args, env=env).start()
        started.append(proc)
        proc.wait_for_log(lambda text: "Activity 'startup' succeeded" in text, timeout=60)
        return proc

    yield start
    for proc in started:
        proc.stop()
