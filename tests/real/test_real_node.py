"""A real node beside the fake ones (``make test-real``): kubelet, kube-proxy, containerd and
the CNI plugins (hack/real-node.sh) join the local control plane, and one template's pod runs
there for real — the forwarder from the project's image beside a stand-in model image — made
Ready by real probes, and a request goes Service -> forwarder -> model."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from support.operator import OperatorProcess
from test_image import image  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NODE = "real-node-0"
NAMESPACE = "real-node"
STANDIN = "localhost/modeltemplate-standin:dev"


@pytest.fixture(scope="module")
def standin_image(image) -> str:  # noqa: F811 - pytest fixture by name
    """The stand-in model (devtools/standin_model.py) on the project's image."""
    with tempfile.TemporaryDirectory() as context:
        root = Path(context)
        (root / "devtools").mkdir()
        for name in ("__init__.py", "standin_model.py"):
            (root / "devtools" / name).write_text((REPO / "devtools" / name).read_text())
        (root / "Containerfile").write_text(
            f"FROM {image}\nCOPY devtools /opt/standin/devtools\nWORKDIR /opt/standin\n"
            'ENTRYPOINT ["python", "-m", "devtools.standin_model"]\n'
        )
        built = subprocess.run(
            ["podman", "build", "--runtime", "runc", "-t", STANDIN, str(root)],
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert built.returncode == 0, built.stderr[-3000:]
    return STANDIN


@pytest.fixture(scope="module")
def real_node(cluster, image, standin_image, tmp_path_factory):  # noqa: F811
    work = tmp_path_factory.mktemp("real-node")
    script = str(REPO / "hack" / "real-node.sh")
    node = work / "node"
    up = subprocess.run(
        [script, "up", str(cluster.kubeconfig), str(node), image, standin_image],
        capture_output=True,
        text=True,
        timeout=900,
    )
    fake: list[str] = []
    try:
        assert up.returncode == 0, up.stderr[-4000:]
        deadline = time.monotonic() + 180  # the kubelet registers its Node first
        while cluster.kubectl("get", "node", NODE, check=False).returncode != 0:
            assert time.monotonic() < deadline, (node / "kubelet.log").read_text()[-3000:]
            time.sleep(1)
        cluster.kubectl(
            "wait", "--for=condition=Ready", f"node/{NODE}", "--timeout=120s", timeout=130
        )
        # the fake nodes take no new pods while this runs: the template's pod lands here
        fake = [
            n["metadata"]["name"]
            for n in json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
            if n["metadata"]["name"] != NODE
        ]
        cluster.kubectl("cordon", *fake)
        yield node
    finally:  # also when the set-up failed: no node process outlives the test
        if fake:
            cluster.kubectl("uncordon", *fake)
        subprocess.run([script, "down", str(node)], capture_output=True, timeout=120)
        cluster.kubectl("delete", "node", NODE, "--wait=false", check=False)


def _template(standin: str) -> dict:
    registry, _, rest = standin.partition("/")
    name, _, tag = rest.partition(":")
    return {
        "apiVersion": "launch.modelops.dev/v1alpha1",
        "kind": "ModelTemplate",
        "metadata": {"name": "echo"},
        "spec": {
            "endpointType": "SYNC",
            "modelType": "GENERIC",
            "vendorConfiguration": {
                "bundleConfig": {
                    "registry": registry,
                    "image": name,
                    "tag": tag,
                    "command": [
                        "python", "-m", "devtools.standin_model", "--protocol", "SGP",
                        "--host", "0.0.0.0", "--port", "5005",
                    ],
                    "healthcheckRoute": "/health",
                    "predictRoute": "/predict",
                    "readinessInitialDelaySeconds": 1,
                },
                "endpointConfig": {
                    "cpus": "0.2", "memory": "256Mi", "storage": "1Gi",
                    "minWorkers": 1, "maxWorkers": 1,
                },
            },
        },
    }  # fmt: skip


def test_a_template_runs_on_the_real_node_and_answers_through_its_service(
    cluster,
    crd_installed,
    real_node,
    image,  # noqa: F811 - pytest fixture by name
    standin_image,
    tmp_path,  # noqa: F811
):
    for name in ("priorityclasses.yaml", "kopf-peering-crds.yaml"):
        cluster.kubectl("apply", "--server-side", "-f", str(REPO / "deploy" / "base" / name))
    cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    operator = OperatorProcess(
        Path(cluster.kubeconfig),
        tmp_path / "operator.log",
        env={"MODELTEMPLATE_FORWARDER_IMAGE": image},
    ).start()
    try:
        cluster.kubectl(
            "apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(_template(standin_image))
        )
        cluster.kubectl(
            "wait", "-n", NAMESPACE, "--for=condition=Ready", "mt/echo", "--timeout=240s",
            timeout=250,
        )  # fmt: skip
        [pod] = json.loads(cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json").stdout)[
            "items"
        ]
        assert pod["spec"]["nodeName"] == NODE
        images = {c["name"]: c["image"] for c in pod["spec"]["containers"]}
        assert images == {"main": standin_image, "http-forwarder": image}
        statuses = pod["status"]["containerStatuses"]
        assert all(s["ready"] and s["state"].get("running") for s in statuses), statuses
        # Service -> kube-proxy -> the forwarder (5000) -> the model (5005), for real
        service = json.loads(
            cluster.kubectl("get", "service", "echo", "-n", NAMESPACE, "-o", "json").stdout
        )
        url = f"http://{service['spec']['clusterIP']}/predict"
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(
                    url,
                    data=json.dumps({"args": {"hello": "node"}}).encode(),
                    headers={"content-type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=5) as answer:
                    assert json.loads(answer.read()) == {"echo": {"args": {"hello": "node"}}}
                break
            except OSError:
                assert time.monotonic() < deadline, "the Service did not answer"
                time.sleep(1)
    finally:
        operator.stop()
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
