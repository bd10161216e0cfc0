"""Rendered manifests, byte for byte: every sample in ``deploy/samples/`` and a few plan
variants, rendered and compared with the JSON stored under ``tests/data/rendered/``.

A deliberate change of what is rendered: regenerate with ``UPDATE_GOLDEN=1`` and review the
diff of the stored files."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeltemplate_operator.api.models import FineTuningJob, Model
from modeltemplate_operator.api.validation import parse_manifest
from modeltemplate_operator.plan import finetuning as ft
from modeltemplate_operator.plan.config import GpuClassOverride, OperatorConfig
from modeltemplate_operator.plan.resolution import plan_for, plan_for_model
from modeltemplate_operator.render import render, render_fine_tuning

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "deploy" / "samples"
GOLDEN = ROOT / "tests" / "data" / "rendered"
NAMESPACE = "samples"
BROKER = "redis://redis.modelops.svc:6380/2"


def _docs(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    for i, doc in enumerate(docs):
        doc["metadata"].update(namespace=NAMESPACE, uid=f"uid-{path.stem}-{i}")
    return docs


def _templates() -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d
        for path in sorted(SAMPLES.glob("*.yaml"))
        for d in _docs(path)
        if d["kind"] == "ModelTemplate"
    }


def _template(name: str, edit: Callable[[dict[str, Any]], None] | None = None):
    doc = copy.deepcopy(_templates()[name])
    if edit is not None:
        edit(doc)
    return parse_manifest(doc)


def _endpoint(name, config=None, keda=True, edit=None):
    return lambda: render(plan_for(_template(name, edit), config or _config(), keda))


def _config(**kw) -> OperatorConfig:
    return OperatorConfig(**{"broker_url": BROKER, **kw})


def _model_cases() -> dict[str, Callable[[], list[dict[str, Any]]]]:
    cases = {}
    for path in sorted((SAMPLES / "models").glob("*.yaml")):
        for doc in _docs(path):
            model = Model.model_validate(doc)
            name = doc["metadata"]["name"]
            template = doc["spec"]["templateRef"]["name"]

            def case(model=model, template=template):
                plan = plan_for_model(model, _template(template), _config(), keda_installed=True)
                return render(plan)

            cases[f"model-{name}"] = case
    return cases


def _fine_tuning(edit=None, template_edit=None, config=None):
    def case():
        [doc] = _docs(SAMPLES / "fine-tuning" / "mistral-7b-support-ft.yaml")
        if edit is not None:
            edit(doc)
        job = FineTuningJob.model_validate(doc)
        template = _template(doc["spec"]["templateRef"]["name"], template_edit)
        return render_fine_tuning(ft.plan_fine_tuning(job, template, config or _config()))

    return case


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit setting ``value`` at a dotted ``path`` of a manifest."""

    def edit(doc):
        *parents, last = path.split(".")
        node = doc
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return edit


EC = "spec.vendorConfiguration.endpointConfig"
BC = "spec.vendorConfiguration.bundleConfig"
FT = "spec.vendorConfiguration.fineTuningJobBundleConfig"

CASES: dict[str, Callable[[], list[dict[str, Any]]]] = {
    # Every template sample, as the operator renders it with a broker and KEDA.
    **{f"template-{name}": _endpoint(name) for name in sorted(_templates())},
    # Every model sample.
    **_model_cases(),
    # A model of the fine-tunable template, as a successful fine-tuning run makes it.
    "model-of-mistral-7b-finetunable": lambda: render(
        plan_for_model(
            Model.model_validate(
                {
                    "metadata": {"name": "mistral-7b-support", "namespace": NAMESPACE, "uid": "m"},
                    "spec": {
                        "templateRef": {"name": "mistral-7b-finetunable"},
                        "creationParameters": {"model_weights_uri": "s3://w/tuned"},
                        "perWorker": 3,
                    },
                }
            ),
            _template("mistral-7b-finetunable"),
            _config(),
            keda_installed=False,
        )
    ),
    # The fine-tuning sample.
    "fine-tuning-mistral-7b-support-ft": _fine_tuning(),
    # -- variants --
    "mig-mixed-gke": _endpoint("qwen2-5-1-5b-mig-1g20gb", _config(gpu_preset="gke")),
    "mig-single-gke": _endpoint(
        "qwen2-5-1-5b-mig-1g20gb", _config(gpu_preset="gke", mig_strategy="single")
    ),
    "mig-single-gfd": _endpoint(
        "qwen2-5-1-5b-mig-1g20gb", _config(gpu_preset="nvidia-gfd", mig_strategy="single")
    ),
    "gpu-class-override": _endpoint(
        "bge-base-embeddings-t4",
        _config(
            gpu_classes={
                "nvidia-tesla-t4": GpuClassOverride(
                    resource_name="example.com/t4",
                    node_selector={"pool": "t4"},
                    tolerations=({"key": "pool", "operator": "Equal", "value": "t4"},),
                )
            }
        ),
    ),
    "cpu-only-no-keda": _endpoint("minilm-reranker-cpu", keda=False),
    "cpu-only-fixed-high-priority": _endpoint(
        "minilm-reranker-cpu",
        edit=lambda d: [
            _set(f"{EC}.minWorkers", 2)(d),
            _set(f"{EC}.maxWorkers", 2)(d),
            _set(f"{EC}.highPriority", True)(d),
        ],
    ),
    "scale-to-zero-keda": _endpoint("bge-base-embeddings-t4", edit=_set(f"{EC}.minWorkers", 0)),
    "scale-to-zero-no-keda": _endpoint(
        "bge-base-embeddings-t4", keda=False, edit=_set(f"{EC}.minWorkers", 0)
    ),
    "async-no-keda": _endpoint("whisper-large-v3-async", keda=False),
    "async-tls-password": _endpoint(
        "whisper-large-v3-async",
        _config(
            broker_url="rediss://redis.example.com:6379",
            broker_password_secret=("redis-auth", "pw"),
        ),
    ),
    "async-no-broker": _endpoint("whisper-large-v3-async", OperatorConfig()),
    "async-fixed-high-priority": _endpoint(
        "whisper-large-v3-async",
        edit=lambda d: [
            _set(f"{EC}.minWorkers", 3)(d),
            _set(f"{EC}.maxWorkers", 3)(d),
            _set(f"{EC}.highPriority", True)(d),
        ],
    ),
    "batch-pull-secrets-high-priority": _endpoint(
        "e5-large-batch-embeddings",
        _config(gpu_preset="nvidia-gfd"),
        edit=lambda d: [
            _set(f"{BC}.imagePullSecrets", [{"name": "regcred"}])(d),
            _set(f"{EC}.highPriority", True)(d),
            _set(f"{EC}.maxWorkers", 0)(d),
            _set(f"{EC}.minWorkers", 0)(d),
        ],
    ),
    "batch-cpu-only": _endpoint(
        "e5-large-batch-embeddings",
        edit=lambda d: [
            _set(f"{EC}.gpus", 0)(d),
            _set(f"{EC}.gpuType", None)(d),
            _set(f"{EC}.cpus", 4)(d),
            _set(f"{EC}.memory", "16Gi")(d),
        ],
    ),
    "fine-tuning-resource-overrides": _fine_tuning(
        edit=_set("spec.resources", {"cpus": 2, "memory": "20Gi", "storage": "40Gi", "gpus": 1})
    ),
    "fine-tuning-no-overrides-pvc-configmap": _fine_tuning(
        edit=lambda d: [
            d["spec"].pop("resources"),
            _set(
                "spec.trainingDataset",
                {"persistentVolumeClaim": {"claimName": "data", "path": "sets/t.jsonl"}},
            )(d),
            _set("spec.validationDataset", {"configMap": {"name": "val", "key": "v.jsonl"}})(d),
        ],
        config=_config(gpu_preset="gke", fine_tuning_backoff_limit=2),
    ),
    "fine-tuning-mig-pull-secrets-cpu-gpu0": _fine_tuning(
        edit=_set("spec.resources", {"gpus": 0}),
        template_edit=lambda d: [
            _set(f"{FT}.imagePullSecrets", [{"name": "regcred"}])(d),
            _set(f"{FT}.resources.gpuType", "nvidia-hopper-h100-1g20gb")(d),
        ],
    ),
    "fine-tuning-mig": _fine_tuning(
        edit=_set("spec.resources", {"gpus": 1}),
        template_edit=_set(f"{FT}.resources.gpuType", "nvidia-hopper-h100-1g20gb"),
        config=_config(mig_strategy="single", gpu_preset="gke"),
    ),
}


def _text(objects: list[dict[str, Any]]) -> str:
    return json.dumps(objects, indent=2) + "\n"


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_manifests_are_unchanged(case):
    got = _text(CASES[case]())
    path = GOLDEN / f"{case}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(got)
    assert path.exists(), f"no stored manifests for {case}: run with UPDATE_GOLDEN=1"
    assert got == path.read_text()


def test_every_stored_file_has_a_case():
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == sorted(CASES)
