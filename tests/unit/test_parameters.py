"""The shared parameter checker, used as a Model's creation parameters would be checked."""

from __future__ import annotations

import json

import pytest
from support.templates import manifest

from modeltemplate_operator.api.parameters import Parameter, ParameterSchema
from modeltemplate_operator.api.validation import parse_manifest

pytestmark = pytest.mark.unit

WHERE = "spec.modelCreationParameters"

CREATION_SCHEMA = {
    "parameters": [
        {"name": "base_model", "type": "str", "required": True, "description": "hub id"},
        {"name": "max_model_len", "type": "int", "required": True},
        {"name": "gpu_memory_utilization", "type": "float"},
        {"name": "trust_remote_code", "type": "bool"},
        {"name": "extra_args", "type": "list"},
        {"name": "overrides", "type": "dict"},
    ]
}


@pytest.fixture(scope="module")
def schema() -> ParameterSchema:
    template = parse_manifest(manifest(modelCreationParametersSchema=CREATION_SCHEMA))
    return ParameterSchema.from_model(template.spec.model_creation_parameters_schema)


def test_from_model_keeps_names_types_and_required(schema):
    assert schema.parameters[0] == Parameter("base_model", "str", True, "hub id")
    assert [(p.name, p.type, p.required) for p in schema.parameters[1:]] == [
        ("max_model_len", "int", True),
        ("gpu_memory_utilization", "float", False),
        ("trust_remote_code", "bool", False),
        ("extra_args", "list", False),
        ("overrides", "dict", False),
    ]
    assert schema and schema.has_required


def test_from_model_equals_the_schema_parsed_from_json(schema):
    assert ParameterSchema.parse(json.loads(json.dumps(CREATION_SCHEMA))) == schema


def test_no_schema_is_empty_and_checks_nothing():
    empty = ParameterSchema.from_model(None)
    assert not empty and not empty.has_required
    assert empty.check_values({"anything": 1}, WHERE) == []


def test_valid_creation_parameters_pass(schema):
    values = {
        "base_model": "meta-llama/Llama-3.1-8B",
        "max_model_len": 8192,
        "gpu_memory_utilization": 1,  # an int is a float
        "trust_remote_code": False,
        "extra_args": ["--enforce-eager"],
        "overrides": {"dtype": "bfloat16"},
        "undeclared": object(),  # not in the schema: not checked
    }
    assert schema.check_values(values, WHERE) == []


def test_every_problem_is_named_with_its_path(schema):
    values = {
        "max_model_len": "8192",
        "gpu_memory_utilization": "high",
        "trust_remote_code": 1,
        "extra_args": "--enforce-eager",
        "overrides": [],
    }
    assert schema.check_values(values, WHERE) == [
        {"field": f"{WHERE}.base_model", "problem": "required parameter is missing"},
        {"field": f"{WHERE}.max_model_len", "problem": "must be of type int, got str"},
        {"field": f"{WHERE}.gpu_memory_utilization", "problem": "must be of type float, got str"},
        {"field": f"{WHERE}.trust_remote_code", "problem": "must be of type bool, got int"},
        {"field": f"{WHERE}.extra_args", "problem": "must be of type list, got str"},
        {"field": f"{WHERE}.overrides", "problem": "must be of type dict, got list"},
    ]


def test_a_bool_is_not_an_int_and_null_counts_as_absent(schema):
    assert schema.check_values({"base_model": "m", "max_model_len": True}, WHERE) == [
        {"field": f"{WHERE}.max_model_len", "problem": "must be of type int, got bool"}
    ]
    assert schema.check_values({"base_model": None, "max_model_len": 1}, WHERE) == [
        {"field": f"{WHERE}.base_model", "problem": "required parameter is missing"}
    ]


def test_values_that_are_not_an_object(schema):
    assert schema.check_values(["base_model"], WHERE) == [
        {"field": WHERE, "problem": "must be an object"}
    ]


def test_parse_accepts_common_type_spellings_and_refuses_bad_schemas():
    parsed = ParameterSchema.parse(
        [{"name": "n", "type": " Integer "}, {"name": "s", "type": "string"}]
    )
    assert [p.type for p in parsed.parameters] == ["int", "str"]
    assert ParameterSchema.parse(None) == ParameterSchema()
    for doc, message in [
        ({"parameters": {}}, 'schema must be an object {"parameters": [...]}'),
        ([{"name": "a", "type": "str"}, {"name": "a", "type": "int"}], "declared twice"),
        ([{"name": "a", "type": "decimal"}], "must be one of str, int, float, bool, list, dict"),
        ([{"name": "a", "type": "str", "required": "yes"}], "must be true or false"),
    ]:
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            ParameterSchema.parse(doc)
