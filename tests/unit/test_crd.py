"""The generated CRD: drift, structure, defaults, descriptions, rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeltemplate_operator import GROUP, KIND, PLURAL, VERSION
from modeltemplate_operator.api.crdgen import crd_dict, crd_filename, crd_yaml, main
from modeltemplate_operator.api.kinds import MODEL_TEMPLATE, OWNERS
from modeltemplate_operator.api.models import (
    BundleConfig,
    EndpointConfig,
    FineTuningResources,
    ModelTemplate,
)
from modeltemplate_operator.api.models.rules import XRule

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "crds" / crd_filename(MODEL_TEMPLATE)


def schema() -> dict[str, Any]:
    return crd_dict()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def at(path: str) -> dict[str, Any]:
    node = schema()
    for part in path.split("."):
        node = node["properties"][part]
    return node


def walk(node: dict[str, Any], path: str = ""):
    yield path, node
    for k, v in node.get("properties", {}).items():
        yield from walk(v, f"{path}.{k}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_committed_crd_matches_the_models():
    """Drift test: run `make crds` after changing the models."""
    assert COMMITTED.exists(), "crds/ is empty: run `make crds`"
    assert yaml.safe_load(COMMITTED.read_text()) == crd_dict()
    assert COMMITTED.read_text() == crd_yaml()


def test_generation_is_deterministic(tmp_path):
    assert crd_yaml() == crd_yaml()
    assert main([str(tmp_path)]) == 0
    assert (tmp_path / crd_filename(MODEL_TEMPLATE)).read_text() == crd_yaml()


def test_names_scope_and_subresources():
    crd = crd_dict()
    assert crd["metadata"]["name"] == f"{PLURAL}.{GROUP}"
    spec = crd["spec"]
    assert spec["group"] == GROUP and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == KIND and spec["names"]["plural"] == PLURAL
    assert spec["names"]["shortNames"] == ["mt"]
    assert "modelops" in spec["names"]["categories"]
    (version,) = spec["versions"]
    assert version["name"] == VERSION and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}


def test_printer_columns():
    cols = {c["name"]: c for c in crd_dict()["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert cols["Endpoint"]["jsonPath"] == ".spec.endpointType"
    assert cols["Model"]["jsonPath"] == ".spec.modelType"
    assert cols["GPU"]["jsonPath"].endswith("endpointConfig.gpuType")
    assert cols["GPUs"]["jsonPath"].endswith("endpointConfig.gpus")
    assert cols["Min"]["jsonPath"].endswith("minWorkers")
    assert cols["Max"]["jsonPath"].endswith("maxWorkers")
    assert cols["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert cols["Reason"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].reason'
    names = list(cols)
    assert names.index("Reason") == names.index("Ready") + 1
    assert cols["Age"]["type"] == "date"


@pytest.mark.parametrize(
    "owner", [o for o in OWNERS if o.kind != "FineTuningJob"], ids=lambda o: o.kind
)
def test_every_kind_with_a_ready_column_shows_its_reason_beside_it(owner):
    """`kubectl get mt|mdl|mdep`: why a resource is not Ready, without -o yaml (a
    FineTuningJob shows its phase instead)."""
    columns = crd_dict(owner)["spec"]["versions"][0]["additionalPrinterColumns"]
    names = [c["name"] for c in columns]
    reason = columns[names.index("Ready") + 1]
    assert reason["name"] == "Reason"
    assert reason["jsonPath"] == '.status.conditions[?(@.type=="Ready")].reason'
    assert "priority" not in reason  # in the default output, not only -o wide


def test_endpoint_and_model_type_are_selectable():
    version = crd_dict()["spec"]["versions"][0]
    assert version["selectableFields"] == [
        {"jsonPath": ".spec.endpointType"},
        {"jsonPath": ".spec.modelType"},
    ]


def test_descriptions_carry_what_kubectl_explain_does_not_show():
    """kubectl explain prints no defaults, and integer-or-string fields as <Object>."""
    for path, node in walk(schema()):
        if "default" in node:
            default = node["default"]
            shown = default if isinstance(default, str) else json.dumps(default)
            assert node["description"].endswith(f"Defaults to {shown}."), path
        if node.get("x-kubernetes-int-or-string"):
            assert "Type: integer or string." in node["description"], path
    cpus = at("spec.vendorConfiguration.endpointConfig.cpus")["description"]
    assert cpus.endswith("Type: integer or string. Defaults to 3.")


def test_schema_is_structural():
    forbidden = {"$ref", "anyOf", "allOf", "oneOf", "title", "const", "$defs", "nullable"}
    for path, node in walk(schema()):
        if node.get("x-kubernetes-int-or-string"):  # the one anyOf a structural schema allows
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            node = {k: v for k, v in node.items() if k != "anyOf"}
        assert not forbidden & node.keys(), (path, forbidden & node.keys())
        if path in ("", ".metadata"):
            continue
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        if node.get("type") == "object" and "properties" in node:
            assert "additionalProperties" not in node, path
        if (
            path
            and not path.startswith(".metadata")
            and not path.endswith("[]")
            and "{}" not in path
        ):
            assert node.get("description"), f"{path} has no description"


def test_required_fields_and_root():
    root = schema()
    assert root["required"] == ["spec"]
    assert root["properties"]["metadata"] == {"type": "object"}
    assert set(at("spec")["required"]) == {"endpointType", "modelType", "vendorConfiguration"}
    assert at("spec.vendorConfiguration")["required"] == ["bundleConfig"]
    assert at("spec.vendorConfiguration.bundleConfig")["required"] == ["registry", "image", "tag"]
    assert at("status")["x-kubernetes-preserve-unknown-fields"] is True
    # Read before the operator's first status write: kstatus sees a generation not yet observed.
    assert at("status")["default"] == {"observedGeneration": 0}


def test_defaults_equal_the_model_defaults():
    ec = at("spec.vendorConfiguration.endpointConfig")
    assert ec["default"] == {}
    dumped = EndpointConfig().model_dump(by_alias=True, exclude_none=True, mode="json")
    assert {k: v["default"] for k, v in ec["properties"].items() if "default" in v} == dumped
    bc = at("spec.vendorConfiguration.bundleConfig")["properties"]
    for name, field in BundleConfig.model_fields.items():
        alias = field.alias or name
        if field.default is not None and not field.is_required():
            assert bc[alias]["default"] == field.default, alias
    res = at("spec.vendorConfiguration.fineTuningJobBundleConfig.resources")
    assert {k: v["default"] for k, v in res["properties"].items() if "default" in v} == (
        FineTuningResources().model_dump(by_alias=True, exclude_none=True, mode="json")
    )
    ft = at("spec.vendorConfiguration.fineTuningJobBundleConfig")["properties"]
    assert ft["mountLocation"]["default"] == "/workspace/launch_specific/config.json"
    assert ft["trainingDatasetSchemaType"]["default"] == "GENERATION"
    assert at("spec.endpointProtocol")["default"] == "SGP"
    assert at("spec.vendorConfiguration.vendor")["default"] == "LAUNCH"


def test_quantities_are_int_or_string_and_enums_are_listed():
    for q in ("cpus", "memory", "storage"):
        node = at(f"spec.vendorConfiguration.endpointConfig.{q}")
        assert node["x-kubernetes-int-or-string"] is True and "type" not in node
    assert at("spec.endpointType")["enum"] == ["SYNC", "ASYNC", "STREAMING", "BATCH"]
    assert len(at("spec.vendorConfiguration.endpointConfig.gpuType")["enum"]) == 7
    params = at("spec.modelCreationParametersSchema.parameters")
    assert params["x-kubernetes-list-type"] == "map"
    assert params["items"]["properties"]["type"]["enum"] == [
        "str",
        "int",
        "float",
        "bool",
        "list",
        "dict",
    ]


def test_seed_descriptions():
    ec = at("spec.vendorConfiguration.endpointConfig")["properties"]
    assert ec["perWorker"]["description"].startswith(
        "The maximum number of concurrent requests that an individual worker can service."
    )
    assert (
        "An enum representing the different types of model endpoint types supported."
        in (at("spec.endpointType")["description"])
    )
    assert (
        "Launch service which is an internal and self-hosted service"
        in (at("spec.vendorConfiguration")["description"])
    )
    ft = at("spec.vendorConfiguration.fineTuningJobBundleConfig")["properties"]
    assert "fine tuning job's configuration will be available" in ft["mountLocation"]["description"]
    status = at("status")["properties"]
    assert status["id"]["description"] == "The unique identifier of the entity."
    assert (
        status["createdAt"]["description"]
        == "The date and time when the entity was created in ISO format."
    )


def _all_rules(cls, seen=None) -> list[XRule]:
    from modeltemplate_operator.api.crdgen import _model_classes

    out: list[XRule] = []
    for c in _model_classes(cls).values():
        out += [r for r in getattr(c, "__x_rules__", ()) if r.rule]
    return out


def test_every_object_rule_is_in_the_crd_with_a_message():
    cel = [r for _, node in walk(schema()) for r in node.get("x-kubernetes-validations", [])]
    cel += schema().get("x-kubernetes-validations", [])
    rules = {r["rule"] for r in cel}
    for rule in _all_rules(ModelTemplate):
        assert rule.rule in rules
    for r in cel:
        assert r.get("message") or r.get("messageExpression"), r
        assert list(r)[0] == "rule"


def test_lists_and_maps_of_the_spec_are_bounded():
    """CEL cost estimation needs bounds (the API server rejects unbounded rules)."""
    for path, node in walk(schema()):
        if node.get("type") == "array" and not path.startswith(".status") and "[]" not in path[-2:]:
            if not path.endswith("conditions"):
                assert "maxItems" in node, path
        if (
            node.get("type") == "object"
            and "additionalProperties" in node
            and not path.startswith(".status")
        ):
            assert "maxProperties" in node, path
