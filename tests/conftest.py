"""Shared fixtures: the Kubernetes cluster the integration tests run against.

By default a local control plane (etcd, kube-apiserver, controller-manager,
scheduler, kwok fake GPU nodes) is started once per session under
``.local-cluster/pytest``. With ``USE_EXISTING_CLUSTER=1`` the cluster of
``$KUBECONFIG`` is used instead (e.g. a kind cluster from ``make kind-up``).
On failures the control-plane logs are kept in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import pytest
from support import tables

from devtools.localcluster import ExistingCluster, LocalCluster
from devtools.localcluster.cluster import pid_alive, wait_established

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "test-artifacts"
#: Each test session runs its own control plane, so sessions can run side by side.
SESSIONS = REPO_ROOT / ".local-cluster"
#: tests/real builds the image and runs it with podman (root, minutes): ``make test-real``
#: only, never part of ``make test``.
collect_ignore = [] if os.environ.get("MODELTEMPLATE_TEST_REAL") == "1" else ["real"]


def pytest_collection_modifyitems(items):
    """Tests under tests/integration are integration tests, those under tests/chaos chaos (and
    integration) tests; everything else is unit."""
    for item in items:
        if "chaos" in item.path.parts:
            item.add_marker(pytest.mark.chaos)
            item.add_marker(pytest.mark.integration)
        elif "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)
        elif not item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.unit)


def pytest_sessionfinish(session):
    """A worker of a parallel run hands its tables' rows to the controlling process."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["tables"] = tables.dump()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    tables.merge(getattr(node, "workeroutput", {}).get("tables", {}))


def pytest_terminal_summary(terminalreporter, config):
    if getattr(config, "workeroutput", None) is None:  # printed once, by the controller
        tables.write_all(ARTIFACTS, terminalreporter.write_line)


@pytest.fixture(scope="session")
def cluster(request):
    if os.environ.get("USE_EXISTING_CLUSTER") == "1":
        kubeconfig = os.environ.get("KUBECONFIG")
        if not kubeconfig:
            pytest.fail("USE_EXISTING_CLUSTER=1 needs KUBECONFIG to point at the cluster")
        yield ExistingCluster(Path(kubeconfig.split(os.pathsep)[0]))
        return
    _clean_stale_sessions()
    local = LocalCluster(root=SESSIONS / f"pytest-{os.getpid()}")
    try:
        local.up(timeout=180)
    except Exception:
        _keep_logs(local)
        raise
    yield local
    if request.session.testsfailed:
        _keep_logs(local)
    local.down()
    shutil.rmtree(local.root, ignore_errors=True)


def _clean_stale_sessions() -> None:
    """Stop control planes of test sessions that died without tearing down (e.g. killed)."""
    for root in SESSIONS.glob("pytest-*"):
        pid = int(root.name.removeprefix("pytest-") or 0)
        if pid and not pid_alive(pid):
            LocalCluster(root=root).down()
            shutil.rmtree(root, ignore_errors=True)


def _keep_logs(local: LocalCluster) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # each worker of a parallel run has its own
    target = ARTIFACTS / ("control-plane-logs" + (f"-{worker}" if worker else ""))
    shutil.rmtree(target, ignore_errors=True)
    if local.logs.exists():
        shutil.copytree(local.logs, target)
        print(f"\ncontrol-plane logs kept in {target}")


@pytest.fixture(scope="session")
def api_client(cluster):
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield client
    client.close()


@pytest.fixture
def namespace(cluster):
    """A fresh namespace (with its default ServiceAccount), deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    deadline = time.monotonic() + 30
    while cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode:
        if time.monotonic() > deadline:
            pytest.fail(f"no default ServiceAccount in {name} after 30s")
        time.sleep(0.2)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def crd_installed(cluster):
    """Everything in crds/ applied server-side and Established."""
    crd_dir = REPO_ROOT / "crds"
    files = sorted(f for f in crd_dir.glob("*.yaml") if f.name != "kustomization.yaml")
    if not files:
        pytest.fail("crds/ is empty: run `make crds`")
    cluster.kubectl("apply", "--server-side", "--force-conflicts", *[f"-f={f}" for f in files])
    names = []
    for f in files:
        out = cluster.kubectl("create", "--dry-run=client", "-o", "json", "-f", str(f)).stdout
        doc = json.loads(out)
        names += [i["metadata"]["name"] for i in doc.get("items", [doc])]
    wait_established(cluster, *names)
    return names
