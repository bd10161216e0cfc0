"""The CRD on a real API server: samples apply with the seed defaults filled in, printer
columns, short name and category, status subresource, kubectl explain shows the seeds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from modeltemplate_operator.api.models import ModelTemplate

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "deploy" / "samples").glob("*.yaml"))


def _stored(cluster, namespace: str, name: str) -> dict:
    out = cluster.kubectl("get", "modeltemplate", name, "-n", namespace, "-o", "json").stdout
    return json.loads(out)


def test_every_sample_applies_and_is_stored_with_the_seed_defaults(
    cluster, crd_installed, namespace
):
    cluster.kubectl("apply", "-n", namespace, "-f", str(REPO / "deploy" / "samples"))
    for path in SAMPLES:
        manifest = yaml.safe_load(path.read_text())
        stored = _stored(cluster, namespace, manifest["metadata"]["name"])
        # The API server's defaulting (from the CRD) equals the models' defaulting.
        expected = ModelTemplate.model_validate(manifest).to_manifest()["spec"]
        assert stored["spec"] == expected, path.name


def test_minimal_template_shows_every_default(cluster, crd_installed, namespace):
    minimal = {
        "apiVersion": "launch.modelops.dev/v1alpha1",
        "kind": "ModelTemplate",
        "metadata": {"name": "minimal"},
        "spec": {
            "endpointType": "SYNC",
            "modelType": "GENERIC",
            "vendorConfiguration": {
                "bundleConfig": {"registry": "nvcr.io", "image": "org/model", "tag": "v1"},
                "fineTuningJobBundleConfig": {
                    "registry": "nvcr.io",
                    "image": "org/trainer",
                    "tag": "v1",
                },
            },
        },
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(minimal))
    spec = _stored(cluster, namespace, "minimal")["spec"]
    assert spec["endpointProtocol"] == "SGP"
    vc = spec["vendorConfiguration"]
    assert vc["vendor"] == "LAUNCH"
    assert vc["bundleConfig"] == {
        "registry": "nvcr.io",
        "image": "org/model",
        "tag": "v1",
        "readinessInitialDelaySeconds": 120,
        "healthcheckRoute": "/readyz",
        "predictRoute": "/predict",
        "streamingPredictRoute": "/generate_streaming",
    }
    assert vc["endpointConfig"] == {
        "cpus": 3,
        "memory": "8Gi",
        "storage": "16Gi",
        "gpus": 0,
        "minWorkers": 0,
        "maxWorkers": 1,
        "perWorker": 10,
        "highPriority": False,
    }
    ft = vc["fineTuningJobBundleConfig"]
    assert ft["mountLocation"] == "/workspace/launch_specific/config.json"
    assert ft["trainingDatasetSchemaType"] == "GENERATION"
    assert ft["resources"] == {"cpus": 3, "memory": "8Gi", "storage": "16Gi", "gpus": 0}


def test_printer_columns_short_name_category_and_status(cluster, crd_installed, namespace):
    path = REPO / "deploy" / "samples" / "llm-vllm-h100-streaming.yaml"
    name = yaml.safe_load(path.read_text())["metadata"]["name"]
    cluster.kubectl("apply", "-n", namespace, "-f", str(path))
    table = cluster.kubectl("get", "mt", "-n", namespace).stdout.splitlines()
    assert table[0].split() == [
        "NAME",
        "ENDPOINT",
        "MODEL",
        "GPU",
        "GPUS",
        "MIN",
        "MAX",
        "READY",
        "REASON",
        "AGE",
    ]
    assert table[1].split()[:7] == [
        name,
        "STREAMING",
        "CHAT_COMPLETION",
        "nvidia-hopper-h100",
        "1",
        "1",
        "4",
    ]
    assert name in cluster.kubectl("get", "modelops", "-n", namespace).stdout
    status = {
        "status": {
            "observedGeneration": 1,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "WorkersReady",
                    "message": "1/1 workers ready",
                    "lastTransitionTime": "2024-01-01T00:00:00Z",
                    "observedGeneration": 1,
                }
            ],
            "id": "mt-123",
            "createdAt": "2024-01-01T00:00:00Z",
            "accountId": namespace,
            "createdByUserId": "alice",
            "createdByIdentityType": "user",
            "workers": {"desired": 1, "ready": 1},
            "endpoints": {"predict": f"http://{name}.{namespace}.svc/v1/chat/completions"},
            "scheduling": {
                "resource": "nvidia.com/gpu",
                "nodeSelector": {"x": "y"},
                "extra": "kept",
            },
        }
    }
    cluster.kubectl(
        "patch",
        "mt",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    stored = _stored(cluster, namespace, name)
    assert stored["status"]["scheduling"]["extra"] == "kept"
    assert ModelTemplate.model_validate(stored).status.workers.ready == 1
    row = cluster.kubectl("get", "mt", name, "-n", namespace, "--no-headers").stdout.split()
    assert row[7:9] == ["True", "WorkersReady"]
    # a status in the spec request is ignored (status subresource)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(
        yaml.safe_load(path.read_text()) | {"status": {"id": "forged"}}
    ))  # fmt: skip
    assert _stored(cluster, namespace, name)["status"]["id"] == "mt-123"


def _explain(cluster, field: str) -> str:
    deadline = time.monotonic() + 30
    while True:  # the OpenAPI of a new CRD is published shortly after it is Established
        proc = cluster.kubectl("explain", field, check=False)
        if proc.returncode == 0 or time.monotonic() > deadline:
            assert proc.returncode == 0, proc.stderr
            return " ".join(proc.stdout.split())
        time.sleep(1)


def test_kubectl_explain_reads_like_the_seeds(cluster, crd_installed):
    text = _explain(cluster, "modeltemplate.spec.vendorConfiguration.endpointConfig")
    assert "The endpoint configuration of the model template." in text
    assert (
        "The maximum number of concurrent requests that an individual worker can service. Launch "
        "automatically scales the number of workers for the endpoint so that each worker is "
        "processing perWorker requests, subject to the limits defined by minWorkers and maxWorkers."
    ) in text
    assert "An enum representing the different types of model endpoint types supported." in text
    for field in (
        "cpus",
        "memory",
        "storage",
        "gpus",
        "gpuType",
        "minWorkers",
        "maxWorkers",
        "highPriority",
    ):
        assert field in text
    text = _explain(cluster, "mt.spec.vendorConfiguration")
    assert "Configuration for launching a model using the Launch service" in text
    text = _explain(cluster, "mt.spec.vendorConfiguration.fineTuningJobBundleConfig.mountLocation")
    assert (
        "The filesystem location where the fine tuning job's configuration will be available"
        in text
    )
    text = _explain(cluster, "mt.spec.modelType")
    assert "CHAT_COMPLETION: Denotes that the model type is chat completion." in text


def test_samples_can_be_selected_by_label_and_endpoint_type(cluster, crd_installed, namespace):
    """`kubectl wait --for=condition=Ready` on every sample that can be Ready: the samples share
    a part-of label, and spec.endpointType is a selectable field (ASYNC ones stay Ready=False)."""
    cluster.kubectl("apply", "-n", namespace, "-f", str(REPO / "deploy" / "samples"))
    samples = [
        yaml.safe_load(p.read_text()) for p in sorted((REPO / "deploy" / "samples").glob("*.yaml"))
    ]

    def names(*args):
        out = cluster.kubectl("get", "mt", "-n", namespace, "-o", "name", *args).stdout
        return sorted(n.split("/", 1)[1] for n in out.split())

    assert names("-l", "app.kubernetes.io/part-of=modelops-samples") == sorted(
        s["metadata"]["name"] for s in samples
    )
    assert names("--field-selector", "spec.endpointType!=ASYNC") == sorted(
        s["metadata"]["name"] for s in samples if s["spec"]["endpointType"] != "ASYNC"
    )
    assert names("--field-selector", "spec.endpointType=ASYNC,spec.modelType=GENERIC") == [
        "whisper-large-v3-async"
    ]
