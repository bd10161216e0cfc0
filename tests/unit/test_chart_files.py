"""The Helm chart's static parts: the copies it takes from crds/ and deploy/ are current, and
values.schema.json names what the operator accepts. (Rendering with the real helm, and
installing, are in tests/integration/test_chart.py.)"""

from __future__ import annotations

import importlib.util
import json
import tomllib
from pathlib import Path

import yaml

from modeltemplate_operator.api.models import GpuType
from modeltemplate_operator.plan.config import GPU_PRESETS, MIG_STRATEGIES

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "modeltemplate-operator"


def _chart_files_module():
    spec = importlib.util.spec_from_file_location("chart_files", REPO / "hack" / "chart_files.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chart_copies_of_crds_and_deploy_are_current():
    stale = _chart_files_module().stale()
    assert not stale, f"stale chart files (run `make crds`): {[str(p) for p in stale]}"


def test_chart_crds_are_the_generated_crds_with_the_part_of_label():
    for source in [
        *sorted((REPO / "crds").glob("*.yaml")),
        REPO / "deploy/base/kopf-peering-crds.yaml",
    ]:
        want = [d for d in yaml.safe_load_all(source.read_text()) if d]
        got = [d for d in yaml.safe_load_all((CHART / "crds" / source.name).read_text()) if d]
        assert [d["spec"] for d in got] == [d["spec"] for d in want]
        for doc in got:
            assert (
                doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "modeltemplate-operator"
            )


def test_values_schema_enums_are_the_operators():
    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["config"]["properties"]
    assert config["gpuPreset"]["enum"] == list(GPU_PRESETS)
    assert sorted(config["migStrategy"]["enum"]) == sorted(MIG_STRATEGIES)
    assert config["gpuClasses"]["propertyNames"]["enum"] == [t.value for t in GpuType]
    override = config["gpuClasses"]["additionalProperties"]["properties"]
    assert set(override) == {"resourceName", "nodeSelector", "tolerations"}


def test_chart_version_follows_the_package_and_deploy():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    package = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    kustomization = yaml.safe_load((REPO / "deploy" / "kustomization.yaml").read_text())
    assert chart["appVersion"] == package == kustomization["images"][0]["newTag"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["repository"] == kustomization["images"][0]["name"]


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_values_schema_describes_every_value_and_refuses_others():
    """Complete: every key of values.yaml has its schema (maps of free-form Kubernetes fields
    aside: resources, affinity, security contexts). Strict: every described object refuses
    keys it does not describe."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value, node, path):
        node = _resolve(schema, node)
        if "properties" in node:
            assert node.get("additionalProperties") is False, path
        if not isinstance(value, dict) or "properties" not in node:
            return
        for key, child in value.items():
            assert key in node["properties"], f"{path}.{key} has no schema"
            walk(child, node["properties"][key], f"{path}.{key}")

    walk(values, schema, "")
    assert set(schema["properties"]) == set(values)  # nothing described that values.yaml lacks
