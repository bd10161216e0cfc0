"""The optional Model admission webhook's answers (pure: AdmissionReview in, out)."""

from __future__ import annotations

import pytest
from support.manifests import tiny_template

from modeltemplate_operator.admission import review

pytestmark = pytest.mark.unit


def _template() -> dict:
    doc = tiny_template("vllm")
    doc["metadata"]["namespace"] = "team"
    doc["spec"]["modelCreationParametersSchema"] = {
        "parameters": [
            {"name": "hf_repo", "type": "str", "required": True},
            {"name": "tp", "type": "int"},
        ]
    }
    return doc


def _review(params, template="vllm", **spec) -> dict:
    model = {
        "apiVersion": "launch.modelops.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "m", "namespace": "team"},
        "spec": {"templateRef": {"name": template}, "creationParameters": params, **spec},
    }
    admission = {"request": {"uid": "u-1", "namespace": "team", "object": model}}
    templates = {("team", "vllm"): _template()}
    return review(admission, lambda ns, name: templates.get((ns, name)))["response"]


def test_parameters_that_fit_are_admitted():
    assert _review({"hf_repo": "org/x", "tp": 2}) == {"uid": "u-1", "allowed": True}


def test_each_bad_parameter_is_named_in_the_refusal():
    response = _review({"tp": "two"}, modelType="EMBEDDING")
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert "spec.creationParameters.hf_repo: required parameter is missing" in message
    assert "spec.creationParameters.tp: must be of type int, got str" in message
    assert "spec.modelType: EMBEDDING contradicts the template's modelType GENERIC" in message
    assert response["status"]["code"] == 422


def test_a_missing_template_is_admitted_with_a_warning():
    response = _review({"hf_repo": "x"}, template="later")
    assert response["allowed"] is True
    assert "ModelTemplate 'later' not found in namespace 'team'" in response["warnings"][0]
