"""What the GitOps tools' own code says about live ModelTemplates.

Each case brings a template into a state on the local control plane, reads it from the API
server, and runs kstatus (``hack/kstatus``: ``status.Compute`` of sigs.k8s.io/cli-utils, what Flux
and kpt use) and the Argo CD Lua health check on it. The expected verdicts are the table in
docs/gitops.md, so the documentation is what the real code says.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from pathlib import Path

import pytest
from support.argocd import health_check
from support.k8s import apply_quota, get_json, wait_for
from support.manifests import tiny_template
from support.tools import run

from modeltemplate_operator.controller.cluster import KubeCluster
from modeltemplate_operator.controller.reconciler import Reconciler, Related
from modeltemplate_operator.plan.config import OperatorConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "gitops.md"
TABLE_HEADER = "| case | Ready | kstatus | Argo CD |"


def _table() -> dict[str, tuple[str, str, str]]:
    """case -> (Ready, kstatus, Argo CD) from the table in docs/gitops.md."""
    lines = DOC.read_text().splitlines()
    start = lines.index(TABLE_HEADER) + 2
    rows = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        case, ready, kstatus, argo = (c.strip() for c in line.strip("|").split("|"))
        rows[case] = (ready, kstatus, argo)
    return rows


TABLE = _table()
#: The cases, in the table's words.
CREATED = "created, before the operator's first status"
SERVING = "serving"
CHANGED = "spec changed, not yet observed by the operator"
ROLLING = "rolling out the change"
UNSCHEDULABLE = "unschedulable (no node has the GPUs)"
FAILED_CREATE = "pods refused (a ResourceQuota): FailedCreate"
ASYNC = "ASYNC endpoint"
INVALID = "stored spec the operator rejects"


def test_the_table_lists_every_case():
    cases = [CREATED, SERVING, CHANGED, ROLLING, UNSCHEDULABLE, FAILED_CREATE, ASYNC, INVALID]
    assert list(TABLE) == cases


USED_NAMESPACES: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _namespaces_gone(cluster):
    """Namespaces of this module are gone when it ends: operators of later modules watch every
    namespace, and writes into one being deleted are refused."""
    yield
    for namespace in USED_NAMESPACES:
        cluster.kubectl("delete", "namespace", namespace, "--timeout=120s", check=False)


@pytest.fixture
def namespace(namespace):
    USED_NAMESPACES.append(namespace)
    return namespace


@pytest.fixture(scope="module")
def argo():
    return health_check()


def kstatus(obj: dict) -> dict:
    (line,) = run("kstatus", input=json.dumps(obj)).stdout.splitlines()
    return json.loads(line)


def _ready(obj: dict) -> str:
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c["type"] == "Ready"), None)
    return f"{ready['status']}/{ready['reason']}" if ready else "none"


def assert_case(case: str, obj: dict, argo) -> None:
    ks, (health, message) = kstatus(obj), argo(obj)
    got = (_ready(obj), ks["status"], health)
    assert got == TABLE[case], f"{case}: {got}, kstatus: {ks['message']!r}, Argo CD: {message!r}"
    if ks["status"] == "Failed":  # Flux shows this message: it names the cause
        stalled = next(c for c in obj["status"]["conditions"] if c["type"] == "Stalled")
        assert ks["message"] == stalled["message"] and stalled["message"]


def template(cluster, namespace, name):
    return get_json(cluster, "modeltemplate", name, "-n", namespace)


def apply(cluster, namespace, body) -> dict:
    out = cluster.kubectl(
        "create", "-n", namespace, "-o", "json", "-f", "-", input=json.dumps(body)
    )
    return json.loads(out.stdout)


def settled(cluster, namespace, name, ready: str) -> dict:
    """The template once its status is for its generation and Ready is ``ready``."""

    def check():
        obj = template(cluster, namespace, name)
        current = (obj.get("status") or {}).get("observedGeneration") == obj["metadata"][
            "generation"
        ]
        return obj if current and _ready(obj) == ready else None

    return wait_for(check, timeout=60, what=f"{namespace}/{name} {ready}")


# -- without an operator: the invalid stored spec (the reconciler is driven directly) -------------
def test_invalid_stored_spec(cluster, cluster_prereqs, api_client, namespace, argo):
    apply(cluster, namespace, tiny_template("legacy"))
    reconciler = Reconciler(KubeCluster(api_client), OperatorConfig())
    body = template(cluster, namespace, "legacy")
    # As if stored under an older, looser CRD: a spec the models refuse.
    stale = copy.deepcopy(body)
    stale["spec"]["vendorConfiguration"]["endpointConfig"]["minWorkers"] = 5
    assert reconciler.reconcile(stale, Related()).status_written
    assert_case(INVALID, template(cluster, namespace, "legacy"), argo)


# -- with the operator -----------------------------------------------------------------------------
def _patch_env(cluster, namespace: str, name: str, value: str) -> dict:
    """A spec change; the template as the patch stored it, before any reconcile."""
    patch = {"spec": {"vendorConfiguration": {"bundleConfig": {"env": {"MODEL_REVISION": value}}}}}
    out = cluster.kubectl(
        "patch",
        "modeltemplate",
        name,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps(patch),
        "-o",
        "json",
    )
    return json.loads(out.stdout)


def test_created_serving_changed(cluster, operator, namespace, argo):
    created = apply(cluster, namespace, tiny_template("fresh"))
    # What the API server answered the create with: the CRD's status default, nothing observed.
    assert created["status"] == {"observedGeneration": 0}
    assert_case(CREATED, created, argo)
    assert_case(SERVING, settled(cluster, namespace, "fresh", "True/WorkersReady"), argo)
    changed = _patch_env(cluster, namespace, "fresh", "2")
    assert changed["status"]["observedGeneration"] < changed["metadata"]["generation"]
    assert_case(CHANGED, changed, argo)
    assert_case(SERVING, settled(cluster, namespace, "fresh", "True/WorkersReady"), argo)


def test_rollout(cluster, operator, namespace, argo):
    apply(cluster, namespace, tiny_template("moving"))
    settled(cluster, namespace, "moving", "True/WorkersReady")
    # The rollout is held (a paused Deployment keeps its old pods), so it can be looked at.
    cluster.kubectl("rollout", "pause", "deployment/moving", "-n", namespace)
    _patch_env(cluster, namespace, "moving", "2")
    assert_case(ROLLING, settled(cluster, namespace, "moving", "False/RollingOut"), argo)
    cluster.kubectl("rollout", "resume", "deployment/moving", "-n", namespace)
    assert_case(SERVING, settled(cluster, namespace, "moving", "True/WorkersReady"), argo)


def test_unschedulable(cluster, operator, namespace, argo):
    body = tiny_template("huge", gpus=9, gpuType="nvidia-hopper-h100")
    apply(cluster, namespace, body)
    assert_case(UNSCHEDULABLE, settled(cluster, namespace, "huge", "False/Unschedulable"), argo)


def test_pods_refused_by_a_quota(cluster, operator, argo):
    namespace = f"quota-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    USED_NAMESPACES.append(namespace)
    try:
        apply_quota(cluster, namespace, "no-pods", {"pods": "0"})
        apply(cluster, namespace, tiny_template("refused"))
        obj = settled(cluster, namespace, "refused", "False/FailedCreate")
        ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
        assert re.search(r"exceeded quota: no-pods", ready["message"]), ready
        assert_case(FAILED_CREATE, obj, argo)
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_async(cluster, operator, namespace, argo):
    apply(cluster, namespace, tiny_template("queue", endpoint_type="ASYNC"))
    assert_case(ASYNC, settled(cluster, namespace, "queue", "False/BrokerNotConfigured"), argo)
