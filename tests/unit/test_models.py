"""The pydantic models: seed defaults, enums, rules and their messages, quantities."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from modeltemplate_operator.api.models import (
    CPU_ONLY_CAPS,
    GPU_BY_TYPE,
    GPU_TYPE_CAPS,
    GPUS,
    RESERVED_ENV_NAMES,
    BundleConfig,
    EndpointConfig,
    EndpointProtocol,
    EndpointType,
    FineTuningJobBundleConfig,
    GpuType,
    IdentityType,
    ModelTemplate,
    ModelType,
    ParameterType,
    TrainingDatasetSchemaType,
    caps_for,
    is_quantity,
    is_reserved_env_name,
    parse_quantity,
)
from modeltemplate_operator.api.validation import validate_manifest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "deploy" / "samples").glob("*.yaml"))


def minimal() -> dict:
    return {
        "apiVersion": "launch.modelops.dev/v1alpha1",
        "kind": "ModelTemplate",
        "metadata": {"name": "minimal"},
        "spec": {
            "endpointType": "SYNC",
            "modelType": "COMPLETION",
            "vendorConfiguration": {
                "bundleConfig": {"registry": "nvcr.io", "image": "org/model", "tag": "v1"}
            },
        },
    }


def errors_of(manifest: dict) -> list[str]:
    return validate_manifest(manifest)


# --- defaults and enums (seed) ------------------------------------------------------------


def test_minimal_manifest_gets_every_seed_default():
    mt = ModelTemplate.model_validate(minimal())
    spec = mt.spec
    assert spec.endpoint_protocol is EndpointProtocol.SGP
    assert spec.vendor_configuration.vendor == "LAUNCH"
    b = spec.bundle_config
    assert (b.readiness_initial_delay_seconds, b.healthcheck_route) == (120, "/readyz")
    assert (b.predict_route, b.streaming_predict_route) == ("/predict", "/generate_streaming")
    e = spec.endpoint_config
    assert (e.cpus, e.memory, e.storage, e.gpus, e.gpu_type) == (3, "8Gi", "16Gi", 0, None)
    assert (e.min_workers, e.max_workers, e.per_worker) == (0, 1, 10)
    assert e.high_priority is False and e.endpoint_type is None


def test_fine_tuning_defaults():
    ft = FineTuningJobBundleConfig.model_validate({"registry": "r.io", "image": "t", "tag": "1"})
    assert ft.mount_location == "/workspace/launch_specific/config.json"
    assert ft.training_dataset_schema_type is TrainingDatasetSchemaType.GENERATION
    r = ft.resources
    assert (r.cpus, r.memory, r.storage, r.gpus, r.gpu_type) == (3, "8Gi", "16Gi", 0, None)


def test_enums_hold_every_seed_value():
    assert [e.value for e in EndpointType] == ["SYNC", "ASYNC", "STREAMING", "BATCH"]
    assert [m.value for m in ModelType] == [
        "COMPLETION", "CHAT_COMPLETION", "AGENT", "EMBEDDING", "RERANKING", "GENERIC", "BUNDLE",
    ]  # fmt: skip
    assert [p.value for p in EndpointProtocol] == ["SGP", "COHERE", "VLLM"]
    assert [g.value for g in GpuType] == [
        "nvidia-tesla-t4", "nvidia-ampere-a10", "nvidia-ampere-a100", "nvidia-ampere-a100e",
        "nvidia-hopper-h100", "nvidia-hopper-h100-1g20gb", "nvidia-hopper-h100-3g40gb",
    ]  # fmt: skip
    assert [t.value for t in TrainingDatasetSchemaType] == ["GENERATION", "RERANKING_QUESTIONS"]
    assert [p.value for p in ParameterType] == ["str", "int", "float", "bool", "list", "dict"]
    assert [i.value for i in IdentityType] == ["user", "service_account"]


def test_every_gpu_type_has_caps():
    assert set(GPU_TYPE_CAPS) == {g.value for g in GpuType}
    assert caps_for(None) == CPU_ONLY_CAPS == caps_for("unknown")
    assert caps_for(GpuType.NVIDIA_HOPPER_H100).storage == "1300Gi"


def test_gpu_table_mig_slices_name_a_full_gpu_parent():
    for gpu in GPUS:
        assert (gpu.parent is None) == (gpu.mig_profile is None), gpu.type
        if gpu.parent is not None:
            assert GPU_BY_TYPE[gpu.parent].parent is None, gpu.type


def test_python_attributes_are_snake_case_and_manifest_keys_camel_case():
    m = minimal()
    m["spec"]["vendorConfiguration"]["endpointConfig"] = {"gpus": 2, "gpuType": "nvidia-ampere-a10"}
    mt = ModelTemplate.model_validate(m)
    assert mt.spec.vendor_configuration.endpoint_config.gpus == 2
    assert mt.spec.endpoint_config.gpu_type is GpuType.NVIDIA_AMPERE_A10
    out = mt.to_manifest()
    assert out["spec"]["vendorConfiguration"]["endpointConfig"]["gpuType"] == "nvidia-ampere-a10"
    assert "endpoint_config" not in str(out)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_samples_are_valid_and_round_trip(path):
    manifest = yaml.safe_load(path.read_text())
    assert validate_manifest(manifest) == []
    mt = ModelTemplate.model_validate(manifest)
    again = ModelTemplate.model_validate(mt.to_manifest())
    assert again == mt
    assert again.to_manifest() == mt.to_manifest()


def test_sample_set_covers_the_issue():
    specs = [yaml.safe_load(p.read_text())["spec"] for p in SAMPLES]
    ecs = [s["vendorConfiguration"].get("endpointConfig", {}) for s in specs]
    assert {s["endpointType"] for s in specs} == {"SYNC", "ASYNC", "STREAMING", "BATCH"}
    gpu_types = {e.get("gpuType") for e in ecs}
    assert {"nvidia-hopper-h100", "nvidia-tesla-t4", "nvidia-hopper-h100-1g20gb", None} <= gpu_types
    assert any("fineTuningJobBundleConfig" in s["vendorConfiguration"] for s in specs)
    assert any(
        "modelCreationParametersSchema" in s and "modelRequestParametersSchema" in s for s in specs
    )
    for ec in ecs:  # small enough for the fake nodes
        assert parse_quantity(ec.get("cpus", 3)) <= 8
        assert parse_quantity(ec.get("memory", "8Gi")) <= parse_quantity("64Gi")
        if not ec.get("gpus"):
            assert parse_quantity(ec.get("cpus", 3)) <= 4
            assert parse_quantity(ec.get("memory", "8Gi")) <= parse_quantity("16Gi")


# --- rules and messages --------------------------------------------------------------------


def with_endpoint(**ec) -> dict:
    m = minimal()
    m["spec"]["vendorConfiguration"]["endpointConfig"] = ec
    return m


@pytest.mark.parametrize(
    ("endpoint_config", "message"),
    [
        ({"minWorkers": 3, "maxWorkers": 1},
         "spec.vendorConfiguration.endpointConfig.minWorkers (3) must be <= maxWorkers (1)"),
        ({"gpus": 2},
         "spec.vendorConfiguration.endpointConfig.gpuType must be set when gpus (2) > 0"),
        ({"gpuType": "nvidia-tesla-t4"},
         "spec.vendorConfiguration.endpointConfig.gpus (0) must be > 0 when gpuType (nvidia-tesla-t4) is set"),
        ({"cpus": 8},
         "spec.vendorConfiguration.endpointConfig.cpus (8) must be <= 7 for a worker without GPUs"),
        ({"cpus": "64", "gpus": 1, "gpuType": "nvidia-tesla-t4"},
         "spec.vendorConfiguration.endpointConfig.cpus (64) must be <= 63 for gpuType nvidia-tesla-t4"),
        ({"memory": "2001Gi", "gpus": 1, "gpuType": "nvidia-hopper-h100"},
         "spec.vendorConfiguration.endpointConfig.memory (2001Gi) must be <= 2000Gi for gpuType nvidia-hopper-h100"),
        ({"storage": "641Gi"},
         "spec.vendorConfiguration.endpointConfig.storage (641Gi) must be <= 640Gi for a worker without GPUs"),
        ({"cpus": "0"},
         "spec.vendorConfiguration.endpointConfig.cpus (0) must be a positive Kubernetes quantity (e.g. 3, 500m, 8Gi)"),
        ({"memory": "8GB"},
         "spec.vendorConfiguration.endpointConfig.memory (8GB) must be a positive Kubernetes quantity (e.g. 3, 500m, 8Gi)"),
        ({"maxWorkers": 251}, "spec.vendorConfiguration.endpointConfig.maxWorkers (251) must be <= 250"),
        ({"perWorker": 0}, "spec.vendorConfiguration.endpointConfig.perWorker (0) must be >= 1"),
        ({"endpointType": "ASYNC"},
         "spec.vendorConfiguration.endpointConfig.endpointType (ASYNC) must equal endpointType (SYNC) when set"),
        ({"cpus": 2.5},
         "spec.vendorConfiguration.endpointConfig.cpus must be an integer or a quantity string (got number 2.5)"),
        ({"gpus": "1"},
         "spec.vendorConfiguration.endpointConfig.gpus must be an integer (got string \"1\")"),
    ],
)  # fmt: skip
def test_endpoint_rule_messages(endpoint_config, message):
    assert errors_of(with_endpoint(**endpoint_config)) == [message]


@pytest.mark.parametrize(
    ("ec", "ok"),
    [
        ({"cpus": 7, "memory": "30Gi", "storage": "640Gi"}, True),
        ({"cpus": "7000m"}, True),
        ({"cpus": "7001m"}, False),
        ({"memory": "30720Mi"}, True),
        ({"memory": "30721Mi"}, False),
        ({"gpus": 8, "gpuType": "nvidia-hopper-h100", "cpus": 191, "memory": "2000Gi", "storage": "1300Gi"}, True),
        ({"gpus": 1, "gpuType": "nvidia-hopper-h100-1g20gb", "cpus": 47, "memory": "500Gi"}, True),
        ({"gpus": 1, "gpuType": "nvidia-hopper-h100-1g20gb", "cpus": 48}, False),
        ({"gpus": 1, "gpuType": "nvidia-hopper-h100-3g40gb", "cpus": 95, "memory": "1000Gi"}, True),
        ({"gpus": 1, "gpuType": "nvidia-ampere-a100e", "memory": "1001Gi"}, False),
        ({"minWorkers": 250, "maxWorkers": 250}, True),
        ({"minWorkers": 0, "maxWorkers": 0}, True),
        ({"endpointType": "SYNC"}, True),
        ({"cpus": "1e3"}, False),
        ({"cpus": "1e-3"}, True),
        ({"memory": 1073741824}, True),
    ],
)  # fmt: skip
def test_caps_and_edges(ec, ok):
    assert (errors_of(with_endpoint(**ec)) == []) is ok


def test_env_and_secret_rules():
    m = minimal()
    b = m["spec"]["vendorConfiguration"]["bundleConfig"]
    b["env"] = {"PORT": "1", "1X": "y", "OK": "z"}
    errs = errors_of(m)
    assert 'spec.vendorConfiguration.bundleConfig.env has invalid variable names ["1X"]' in errs[0]
    assert len(errs) == 1  # field rules stop at the first failure per field
    b["env"] = {"PORT": "1", "MODELTEMPLATE_X": "2"}
    (err,) = errors_of(m)
    assert err.startswith(
        'spec.vendorConfiguration.bundleConfig.env sets reserved variable names ["PORT", "MODELTEMPLATE_X"]'
    )
    b["env"] = {"HF_TOKEN": "x"}
    b["secretEnv"] = [{"name": "HF_TOKEN", "secretKeyRef": {"name": "hf", "key": "token"}}]
    assert errors_of(m) == [
        'spec.vendorConfiguration.bundleConfig.secretEnv names are also set in env ["HF_TOKEN"]'
    ]
    b["env"] = {}
    b["secretEnv"].append(dict(b["secretEnv"][0]))
    assert errors_of(m) == [
        "spec.vendorConfiguration.bundleConfig.secretEnv has duplicate names (HF_TOKEN)"
    ]


def test_values_that_could_never_reach_exec_are_refused():
    m = minimal()
    b = m["spec"]["vendorConfiguration"]["bundleConfig"]
    b["env"] = {"CONFIG": "x" * 32_000}
    b["command"] = ["serve", "y" * 32_000]
    assert errors_of(m) == []
    b["env"] = {"CONFIG": "x" * 32_001}  # Linux refuses an env string over 128 KiB at exec
    (err,) = errors_of(m)
    assert err.startswith("spec.vendorConfiguration.bundleConfig.env.CONFIG") and "32000" in err
    b["env"] = {"CONFIG": "a\x00b"}
    (err,) = errors_of(m)
    assert "env.CONFIG" in err and "without NUL characters" in err


@pytest.mark.parametrize(
    "name_length, max_workers, ok",
    [
        (61, 1, True),
        (62, 1, False),
        (61, 10, True),
        (60, 11, True),
        (61, 11, False),
        (59, 250, True),
        (60, 250, False),
    ],
)
def test_batch_names_leave_room_for_the_pod_index(name_length, max_workers, ok):
    m = minimal()
    m["metadata"]["name"] = "b" * name_length
    m["spec"]["endpointType"] = "BATCH"
    m["spec"]["vendorConfiguration"]["endpointConfig"] = {"maxWorkers": max_workers}
    errors = errors_of(m)
    assert (errors == []) is ok, errors
    # The Job's pods are <name>-<index>, the highest index maxWorkers - 1: a DNS label.
    assert (name_length + 1 + len(str(max_workers - 1)) <= 63) is ok
    m["spec"]["endpointType"] = "SYNC"
    assert errors_of(m) == []  # only BATCH templates make Job pods


def test_reserved_env_names_are_one_constant():
    assert "PORT" in RESERVED_ENV_NAMES
    assert is_reserved_env_name("MODELTEMPLATE_ANYTHING") and is_reserved_env_name("KUBERNETES_X")
    assert not is_reserved_env_name("HF_TOKEN")


def test_parameter_rules():
    m = minimal()
    m["spec"]["modelRequestParametersSchema"] = {
        "parameters": [{"name": "t", "type": "float"}, {"name": "t", "type": "int"}]
    }
    assert errors_of(m) == ["spec.modelRequestParametersSchema.parameters has duplicate names (t)"]
    m["spec"]["modelRequestParametersSchema"] = {"parameters": [{"name": "top-p", "type": "str"}]}
    (err,) = errors_of(m)
    assert err.startswith(
        "spec.modelRequestParametersSchema.parameters[0].name (top-p) must be an identifier"
    )
    mt = ModelTemplate.model_validate(
        minimal()
        | {
            "spec": minimal()["spec"]
            | {"modelCreationParametersSchema": {"parameters": [{"name": "x", "type": "str"}]}}
        }
    )
    assert mt.spec.model_creation_parameters_schema.parameters[0].required is False


def test_metadata_name_checked_even_with_spec_errors():
    m = with_endpoint(minWorkers=5)
    m["metadata"]["name"] = "Bad.Name"
    errs = errors_of(m)
    assert errs[0].startswith("metadata.name (Bad.Name) must be a DNS-1035 label")
    assert (
        "spec.vendorConfiguration.endpointConfig.minWorkers (5) must be <= maxWorkers (1)" in errs
    )


def test_missing_unknown_and_kind():
    m = minimal()
    del m["spec"]["vendorConfiguration"]["bundleConfig"]["tag"]
    m["spec"]["vendorConfiguration"]["bundleConfig"]["tags"] = "v1"
    assert sorted(errors_of(m)) == [
        "spec.vendorConfiguration.bundleConfig.tag: required field is missing",
        "spec.vendorConfiguration.bundleConfig.tags: unknown field",
    ]
    assert errors_of(minimal() | {"kind": "Deployment"}) == [
        "kind (Deployment) must be ModelTemplate"
    ]
    assert errors_of(["not", "a", "dict"]) == ["manifest must be an object (got list)"]


def test_model_validate_raises_for_cross_field_errors():
    with pytest.raises(ValidationError):
        EndpointConfig.model_validate({"minWorkers": 2})
    with pytest.raises(ValidationError):
        BundleConfig.model_validate(
            {"registry": "r.io", "image": "i", "tag": "t", "env": {"PORT": "1"}}
        )


def test_status_is_permissive():
    m = minimal()
    m["status"] = {
        "observedGeneration": 2,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Serving",
                "lastTransitionTime": "2024-01-01T00:00:00Z",
            }
        ],
        "id": "abc",
        "createdAt": "2023-11-07T05:31:56Z",
        "createdByIdentityType": "service_account",
        "workers": {"desired": 2, "ready": 1},
        "endpoints": {"predict": "http://x/predict"},
        "scheduling": {"resource": "nvidia.com/gpu", "nodeSelector": {"a": "b"}, "future": 1},
        "somethingNew": True,
    }
    mt = ModelTemplate.model_validate(m)
    assert mt.status.workers.ready == 1
    assert mt.status.conditions[0].type == "Ready"
    assert mt.status.created_by_identity_type is IdentityType.SERVICE_ACCOUNT


def test_manifest_is_not_mutated():
    m = with_endpoint(gpus=1, gpuType="nvidia-tesla-t4")
    before = copy.deepcopy(m)
    ModelTemplate.model_validate(m)
    assert m == before


# --- quantities -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", Decimal(3)),
        (3, Decimal(3)),
        ("500m", Decimal("0.5")),
        ("1.5", Decimal("1.5")),
        ("8Gi", Decimal(8 * 1024**3)),
        ("1Ki", Decimal(1024)),
        ("2Ei", Decimal(2 * 1024**6)),
        ("1k", Decimal(1000)),
        ("1M", Decimal(10**6)),
        ("1E", Decimal(10**18)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("1e-3", Decimal("0.001")),
        ("+1", Decimal(1)),
        ("-1Gi", Decimal(-(1024**3))),
        (".5", Decimal("0.5")),
        ("1.", Decimal(1)),
        ("100n", Decimal("0.0000001")),
        ("3u", Decimal("0.000003")),
    ],
)
def test_parse_quantity(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        " 1",
        "1 ",
        "8GB",
        "8gi",
        "1e",
        "1e+",
        "abc",
        "1..5",
        "Gi",
        "1Gi1",
        "0x10",
        True,
        None,
        1.5,
        "1e99999999999",
    ],
)
def test_not_quantities(text):
    assert not is_quantity(text)


def test_messages_say_null_and_count_once():
    m = minimal()
    m["spec"]["vendorConfiguration"]["endpointConfig"] = {"cpus": None, "minWorkers": None}
    m["spec"]["vendorConfiguration"]["bundleConfig"]["env"] = {f"V{i}": "x" for i in range(130)}
    errors = errors_of(m)
    assert (
        "spec.vendorConfiguration.endpointConfig.cpus must be an integer or a quantity string (got null)"
        in errors
    )
    assert (
        "spec.vendorConfiguration.endpointConfig.minWorkers must be an integer (got null)" in errors
    )
    assert (
        "spec.vendorConfiguration.bundleConfig.env must have at most 128 items (has 130)" in errors
    )
