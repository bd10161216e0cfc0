"""The generated Model CRD on a real API server: stored as the models parse it, short name and
printer columns, its rules enforced at apply time."""

from __future__ import annotations

import json

import pytest

from modeltemplate_operator.api.models import Model

pytestmark = pytest.mark.integration


def _model(name: str, **spec) -> dict:
    return {
        "apiVersion": "launch.modelops.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {"templateRef": {"name": "vllm"}, **spec},
    }


def _apply(cluster, namespace: str, doc: dict, check: bool = True):
    return cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc), check=check)


def test_model_is_stored_as_the_models_parse_it(cluster, crd_installed, namespace):
    doc = _model(
        "llama-8b",
        creationParameters={"model_name": "llama", "tensor_parallel_size": 2, "x": [1, {}]},
        minWorkers=1,
        maxWorkers=3,
        highPriority=True,
    )
    _apply(cluster, namespace, doc)
    stored = json.loads(
        cluster.kubectl("get", "mdl", "llama-8b", "-n", namespace, "-o", "json").stdout
    )
    assert stored["spec"] == Model.model_validate(doc).to_manifest()["spec"]
    table = cluster.kubectl("get", "mdl", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "TEMPLATE", "READY", "REASON", "VALID", "AGE"]
    assert table[1].split()[:2] == ["llama-8b", "vllm"]
    # Why it is not Ready, as `kubectl get mt` shows it.
    condition = {
        "type": "Ready",
        "status": "False",
        "reason": "TemplateMissing",
        "message": "template vllm not found",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    cluster.kubectl(
        "patch",
        "mdl",
        "llama-8b",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"conditions": [condition]}}),
    )
    row = cluster.kubectl("get", "mdl", "llama-8b", "-n", namespace, "--no-headers").stdout
    assert row.split()[:4] == ["llama-8b", "vllm", "False", "TemplateMissing"], row


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"minWorkers": 3, "maxWorkers": 2}, "spec.minWorkers must be <= spec.maxWorkers"),
        ({"perWorker": 0}, "spec.perWorker"),
        ({"modelType": "SPEECH"}, "spec.modelType"),
        ({"templateRef": {"name": "Not_A_Name"}}, "spec.templateRef.name"),
    ],
)
def test_bad_model_is_refused_naming_the_field(cluster, crd_installed, namespace, spec, says):
    result = _apply(cluster, namespace, _model("bad", **spec), check=False)
    assert result.returncode != 0
    assert says in result.stderr
    assert cluster.kubectl("get", "mdl", "bad", "-n", namespace, check=False).returncode != 0
