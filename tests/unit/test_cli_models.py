"""``modeltemplate validate`` with a template and a Model together: the Model's own rules and
its creation parameters against the template's schema, each problem naming the field."""

from __future__ import annotations

import copy

import pytest
import yaml
from support.templates import manifest

from modeltemplate_operator.cli import main

pytestmark = pytest.mark.unit

PARAMETERS = [
    {"name": "model_name", "type": "str", "required": True},
    {"name": "hf_repo", "type": "str", "required": True},
    {"name": "tensor_parallel_size", "type": "int", "required": True},
    {"name": "trust_remote_code", "type": "bool"},
]
GOOD = {"model_name": "llama", "hf_repo": "meta/llama-3-8b", "tensor_parallel_size": 2}


def template() -> dict:
    t = manifest(modelCreationParametersSchema={"parameters": PARAMETERS})
    t["metadata"] = {"name": "vllm"}
    return t


def model(name="llama-8b", params=None, **spec) -> dict:
    return {
        "apiVersion": "launch.modelops.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {
            "templateRef": {"name": "vllm"},
            "creationParameters": copy.deepcopy(GOOD if params is None else params),
            **spec,
        },
    }


def write(tmp_path, name: str, *docs: dict) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(list(docs), sort_keys=False))
    return str(path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["validate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_good_model_with_its_template_is_valid(tmp_path, capsys):
    code, out, _ = run(
        capsys, write(tmp_path, "t.yaml", template()), write(tmp_path, "m.yaml", model())
    )
    assert code == 0, out
    assert "m.yaml: document 1 (llama-8b): valid\n" in out


@pytest.mark.parametrize(
    ("params", "says"),
    [
        (
            {k: v for k, v in GOOD.items() if k != "hf_repo"},
            "spec.creationParameters.hf_repo: required parameter is missing",
        ),
        (
            GOOD | {"tensor_parallel_size": "2"},
            "spec.creationParameters.tensor_parallel_size: must be of type int, got str",
        ),
        (
            GOOD | {"trust_remote_code": 1},
            "spec.creationParameters.trust_remote_code: must be of type bool, got int",
        ),
    ],
)
def test_parameter_problems_name_the_parameter(tmp_path, capsys, params, says):
    files = (write(tmp_path, "t.yaml", template()), write(tmp_path, "m.yaml", model(params=params)))
    code, out, err = run(capsys, *files)
    assert code == 1
    assert f"m.yaml: document 1 (llama-8b): {says}\n" in out
    assert "2 document(s) checked, 1 with errors" in err


def test_every_problem_is_reported_in_one_run(tmp_path, capsys):
    bad = model(params={"tensor_parallel_size": 2.5}, modelType="EMBEDDING")
    code, out, _ = run(capsys, write(tmp_path, "both.yaml", template(), bad))
    assert code == 1
    lines = [line.split(": ", 2)[2] for line in out.splitlines() if "llama-8b" in line]
    assert lines == [
        "spec.modelType: EMBEDDING contradicts the template's modelType COMPLETION",
        "spec.creationParameters.model_name: required parameter is missing",
        "spec.creationParameters.hf_repo: required parameter is missing",
        "spec.creationParameters.tensor_parallel_size: must be of type int, got float",
    ]


def test_model_schema_errors_come_first_and_name_the_field(tmp_path, capsys):
    bad = model(name="Not_A_Name", minWorkers=3, maxWorkers=2)
    code, out, _ = run(
        capsys, write(tmp_path, "t.yaml", template()), write(tmp_path, "m.yaml", bad)
    )
    assert code == 1
    assert "metadata.name (Not_A_Name)" in out
    assert "spec.minWorkers (3) must be <= spec.maxWorkers (2)" in out


def test_without_its_template_only_the_model_rules_are_checked(tmp_path, capsys):
    code, out, _ = run(capsys, write(tmp_path, "m.yaml", model(params={})))
    assert code == 0
    assert "valid (template 'vllm' not among the files: parameters not checked)" in out


def test_a_model_of_an_invalid_template_says_so(tmp_path, capsys):
    broken = template()
    broken["spec"]["modelType"] = "SPEECH"
    code, out, _ = run(
        capsys, write(tmp_path, "t.yaml", broken), write(tmp_path, "m.yaml", model())
    )
    assert code == 1
    assert "t.yaml: document 1 (vllm): spec.modelType" in out
    assert (
        "m.yaml: document 1 (llama-8b): spec.templateRef.name: template 'vllm' is not valid" in out
    )


def test_skip_other_kinds_still_checks_models(tmp_path, capsys):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    code, out, _ = run(
        capsys,
        "--skip-other-kinds",
        write(tmp_path, "all.yaml", template(), cm, model(params={"model_name": 1})),
    )
    assert code == 1
    assert "document 2" not in out  # the ConfigMap is skipped
    assert "spec.creationParameters.model_name: must be of type str, got int" in out
