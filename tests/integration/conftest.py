"""Fixtures for tests that run the operator against the cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.operator import OperatorProcess

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def cluster_prereqs(cluster, crd_installed):
    """What deploy/ installs besides the operator: PriorityClasses and the peering CRDs."""
    for name in ("priorityclasses.yaml", "kopf-peering-crds.yaml"):
        cluster.kubectl("apply", "--server-side", "-f", str(REPO_ROOT / "deploy" / "base" / name))
    return True


@pytest.fixture(scope="module")
def operator(cluster, cluster_prereqs, request):
    """The operator as a real process (standalone), for the tests of one module."""
    log = ARTIFACTS / f"operator-{request.module.__name__.rsplit('.', 1)[-1]}.log"
    log.unlink(missing_ok=True)
    proc = OperatorProcess(Path(cluster.kubeconfig), log).start()
    proc.wait_for_log(lambda text: "Activity 'startup' succeeded" in text, timeout=60)
    yield proc
    proc.stop()
