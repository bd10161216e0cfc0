"""The SGP model <-> Model mapping (convert.py) and the pure parts of the gateway's
``/v4/models`` routes: body checks, the response shape the official client requires."""

from __future__ import annotations

import pytest
from scale_gp.types import ModelInstance, ModelInstanceWithViews

from modeltemplate_operator.api.convert import (
    model_manifest_from_sgp,
    model_manifest_to_sgp,
    sgp_model_path,
)
from modeltemplate_operator.api.validation import parse_model_manifest
from modeltemplate_operator.gateway.routers.models import model_create_problems, model_to_sgp

pytestmark = pytest.mark.unit

BODY = {
    "account_id": "team-a",
    "name": "llama-8b",
    "model_type": "COMPLETION",
    "model_template_id": "uid-template",
    "model_creation_parameters": {"model_name": "llama", "tensor_parallel_size": 2},
    "display_name": "Llama 8B",
    "description": "the small one",
    "model_vendor": "LAUNCH",
}
TEMPLATE = {
    "metadata": {"name": "vllm", "namespace": "team-a", "uid": "uid-template"},
    "spec": {"modelType": "COMPLETION"},
}


def stored(manifest: dict, **status) -> dict:
    """The manifest as the API server returns it."""
    out = {**manifest, "metadata": dict(manifest["metadata"])}
    out["metadata"] |= {
        "uid": "uid-model",
        "namespace": "team-a",
        "creationTimestamp": "2026-02-01T00:00:00Z",
    }
    if status:
        out["status"] = status
    return out


def test_body_to_manifest_to_sgp_round_trip():
    manifest = model_manifest_from_sgp(BODY, template_name="vllm", namespace="team-a")
    assert manifest["spec"] == {
        "templateRef": {"name": "vllm"},
        "creationParameters": {"model_name": "llama", "tensor_parallel_size": 2},
        "modelType": "COMPLETION",
    }
    assert manifest["metadata"]["annotations"] == {
        "launch.modelops.dev/display-name": "Llama 8B",
        "launch.modelops.dev/description": "the small one",
    }
    parse_model_manifest(manifest)  # a valid Model
    back = model_manifest_to_sgp(stored(manifest), template_id="uid-template")
    for key in ("name", "model_type", "model_template_id", "model_creation_parameters"):
        assert back[key] == BODY[key]
    assert (back["id"], back["account_id"]) == ("uid-model", "team-a")
    assert back["display_name"] == "Llama 8B" and back["model_vendor"] == "LAUNCH"


def test_response_is_what_the_official_client_requires():
    manifest = model_manifest_from_sgp(BODY, template_name="vllm", namespace="team-a")
    sgp = model_to_sgp(stored(manifest), TEMPLATE)
    ModelInstance.model_validate(sgp)
    ModelInstanceWithViews.model_validate(sgp)
    assert sgp["deployment_count"] == 0  # not serving yet
    ready = stored(manifest, conditions=[{"type": "Ready", "status": "True"}])
    assert model_to_sgp(ready, TEMPLATE)["deployment_count"] == 1


def test_model_type_falls_back_to_the_template_and_a_missing_template_gives_no_id():
    manifest = model_manifest_from_sgp(
        {k: v for k, v in BODY.items() if k != "model_type"}, template_name="vllm"
    )
    assert model_to_sgp(stored(manifest), TEMPLATE)["model_type"] == "COMPLETION"
    orphan = model_to_sgp(stored(manifest), None)
    assert orphan["model_template_id"] is None
    ModelInstance.model_validate(orphan)


def test_good_body_has_no_problems():
    assert model_create_problems(BODY) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": None}, "name"),
        ({"model_template_id": ""}, "model_template_id"),
        ({"model_type": "SPEECH"}, "model_type"),
        ({"model_vendor": "OPENAI"}, "model_vendor"),
        ({"model_creation_parameters": [1]}, "model_creation_parameters"),
        ({"model_card": "x"}, "model_card"),
        ({"base_model_id": "x"}, "base_model_id"),
        ({"surprise": 1}, "surprise"),
        ({"display_name": 3}, "display_name"),
    ],
)
def test_each_bad_field_is_named(change, field):
    problems = model_create_problems(BODY | change)
    assert [path for path, _ in problems] == [field]
    assert field in problems[0][1]


def test_not_an_object():
    assert model_create_problems([BODY]) == [("", "the body must be a JSON object")]


@pytest.mark.parametrize(
    ("path", "sgp"),
    [
        (
            "spec.creationParameters.tensor_parallel_size",
            "model_creation_parameters.tensor_parallel_size",
        ),
        ("spec.creationParameters", "model_creation_parameters"),
        ("spec.modelType", "model_type"),
        ("spec.templateRef.name", "model_template_id"),
        ("metadata.name", "name"),
        ("spec.minWorkers", "spec.minWorkers"),
    ],
)
def test_error_paths_in_sgp_terms(path, sgp):
    assert sgp_model_path(path) == sgp
