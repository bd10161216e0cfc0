"""GPU classes per preset and MIG strategy, and worker resolution."""

import pytest

from modeltemplate_operator.plan.config import ConfigError, GpuClassOverride, OperatorConfig
from modeltemplate_operator.plan.resolution import (
    GPU_TOLERATION,
    ScalingMode,
    Scheduling,
    resolve_gpu,
    resolve_workers,
)

H100 = "nvidia-hopper-h100"
MIG_1G = "nvidia-hopper-h100-1g20gb"
MIG_3G = "nvidia-hopper-h100-3g40gb"


@pytest.mark.parametrize(
    "preset, strategy, gpu_type, resource, selector",
    [
        (
            "launch",
            "mixed",
            "nvidia-tesla-t4",
            "nvidia.com/gpu",
            {"k8s.amazonaws.com/accelerator": "nvidia-tesla-t4"},
        ),
        ("launch", "mixed", H100, "nvidia.com/gpu", {"k8s.amazonaws.com/accelerator": H100}),
        (
            "launch",
            "mixed",
            MIG_1G,
            "nvidia.com/mig-1g.20gb",
            {"k8s.amazonaws.com/accelerator": H100},
        ),
        (
            "launch",
            "mixed",
            MIG_3G,
            "nvidia.com/mig-3g.40gb",
            {"k8s.amazonaws.com/accelerator": H100},
        ),
        ("launch", "single", MIG_1G, "nvidia.com/gpu", {"k8s.amazonaws.com/accelerator": MIG_1G}),
        (
            "nvidia-gfd",
            "mixed",
            "nvidia-ampere-a100e",
            "nvidia.com/gpu",
            {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
        ),
        (
            "nvidia-gfd",
            "mixed",
            MIG_1G,
            "nvidia.com/mig-1g.20gb",
            {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        ),
        (
            "nvidia-gfd",
            "single",
            MIG_3G,
            "nvidia.com/gpu",
            {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3-MIG-3g.40gb"},
        ),
        (
            "gke",
            "mixed",
            "nvidia-ampere-a100",
            "nvidia.com/gpu",
            {"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"},
        ),
        (
            "gke",
            "single",
            MIG_1G,
            "nvidia.com/gpu",
            {
                "cloud.google.com/gke-accelerator": "nvidia-h100-80gb",
                "cloud.google.com/gke-gpu-partition-size": "1g.20gb",
            },
        ),
    ],
)
def test_gpu_class_per_preset_and_mig_strategy(preset, strategy, gpu_type, resource, selector):
    got = resolve_gpu(gpu_type, 2, OperatorConfig(gpu_preset=preset, mig_strategy=strategy))
    assert got == Scheduling(resource, 2, selector, [GPU_TOLERATION])


@pytest.mark.parametrize("gpu_type, gpus", [(None, 0), (None, 3), ("nvidia-tesla-t4", 0)])
def test_cpu_only_gets_no_gpu_resource_selector_or_toleration(gpu_type, gpus):
    assert resolve_gpu(gpu_type, gpus, OperatorConfig()) == Scheduling()


def test_admin_override_replaces_parts_of_the_class():
    config = OperatorConfig(
        gpu_classes={H100: GpuClassOverride(node_selector={"pool": "h100"}, tolerations=())}
    )
    got = resolve_gpu(H100, 1, config)
    assert got == Scheduling("nvidia.com/gpu", 1, {"pool": "h100"}, [])


@pytest.mark.parametrize(
    "min_, max_, keda, mode, fixed",
    [
        (2, 2, False, ScalingMode.FIXED, 2),
        (0, 0, True, ScalingMode.FIXED, 0),
        (1, 4, False, ScalingMode.HPA, None),
        (1, 4, True, ScalingMode.HPA, None),
        (0, 4, True, ScalingMode.KEDA, None),
        (0, 4, False, ScalingMode.NO_SCALE_TO_ZERO, 1),
    ],
)
def test_worker_resolution(min_, max_, keda, mode, fixed):
    workers = resolve_workers(min_, max_, 10, keda)
    assert workers.mode is mode
    assert workers.fixed_replicas == fixed


def test_config_file_and_environment_precedence():
    data = {
        "gpuPreset": "gke",
        "migStrategy": "single",
        "priorityClasses": {"high": "urgent"},
        "gpuClasses": {"nvidia-tesla-t4": {"resourceName": "example.com/t4"}},
    }
    config = OperatorConfig.from_sources(data, {"MODELTEMPLATE_GPU_PRESET": "nvidia-gfd"})
    assert config.gpu_preset == "nvidia-gfd"  # environment wins over the file
    assert config.mig_strategy == "single"
    assert config.priority_class_high == "urgent"
    assert config.priority_class_default == "modeltemplate-default-priority"
    assert config.gpu_classes["nvidia-tesla-t4"].resource_name == "example.com/t4"
    assert config.peering_lifetime_seconds == 60  # Kopf's default
    assert (
        OperatorConfig.from_sources(
            {"peering": {"lifetimeSeconds": 20}}, {}
        ).peering_lifetime_seconds
        == 20
    )
    env = {"MODELTEMPLATE_PEERING_LIFETIME_SECONDS": "15"}
    assert (
        OperatorConfig.from_sources(
            {"peering": {"lifetimeSeconds": 20}}, env
        ).peering_lifetime_seconds
        == 15
    )


@pytest.mark.parametrize(
    "data, env, message",
    [
        ({"gpuPreset": "aws"}, {}, "gpuPreset (aws) must be one of launch, nvidia-gfd, gke"),
        (
            {},
            {"MODELTEMPLATE_MIG_STRATEGY": "none"},
            "migStrategy (none) must be one of single, mixed",
        ),
        ({"gpuClasses": {"nvidia-rtx": {}}}, {}, "gpuClasses.nvidia-rtx: not a known gpuType"),
        (
            {"gpuClasses": {"nvidia-tesla-t4": {"labels": {}}}},
            {},
            "gpuClasses.nvidia-tesla-t4: unknown keys labels",
        ),
        ({"gpuPresets": "launch"}, {}, "unknown configuration keys: gpuPresets"),
        ({"peering": {"lifetime": 10}}, {}, "peering: unknown keys lifetime"),
        (
            {},
            {"MODELTEMPLATE_PEERING_LIFETIME_SECONDS": "2"},
            "peering.lifetimeSeconds (2) must be an integer >= 5",
        ),
    ],
)
def test_bad_configuration_names_the_setting(data, env, message):
    with pytest.raises(ConfigError) as err:
        OperatorConfig.from_sources(data, env)
    assert str(err.value) == message
