"""The fleet file turns into the Node objects the GPU resolution relies on."""

from devtools.localcluster import load_node_manifests

SEED_GPU_TYPES = {
    "nvidia-tesla-t4",
    "nvidia-ampere-a10",
    "nvidia-ampere-a100",
    "nvidia-ampere-a100e",
    "nvidia-hopper-h100",
}


def by_name():
    return {n["metadata"]["name"]: n for n in load_node_manifests()}


def test_every_full_gpu_type_of_the_seeds_has_a_node():
    types = {
        n["metadata"]["labels"].get("k8s.amazonaws.com/accelerator")
        for n in load_node_manifests()
        if n["status"]["capacity"].get("nvidia.com/gpu", "0") != "0"
    }
    assert types == SEED_GPU_TYPES


def test_gpu_nodes_are_tainted_and_cpu_nodes_are_not():
    for node in load_node_manifests():
        gpu = any(k.startswith("nvidia.com/") for k in node["status"]["capacity"])
        taints = node["spec"].get("taints", [])
        assert (
            taints == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
        ) == gpu


def test_mig_node_exposes_mixed_strategy_slices_and_no_whole_gpus():
    node = by_name()["gpu-h100-mig-p5-48xlarge-0"]
    cap = node["status"]["capacity"]
    assert cap["nvidia.com/mig-1g.20gb"] == "16"
    assert cap["nvidia.com/mig-3g.40gb"] == "8"
    assert cap["nvidia.com/gpu"] == "0"
    labels = node["metadata"]["labels"]
    assert labels["nvidia.com/mig.strategy"] == "mixed"
    assert labels["nvidia.com/mig-1g.20gb.product"] == "NVIDIA-H100-80GB-HBM3-MIG-1g.20gb"


def test_h100_node_has_eight_gpus_and_gfd_labels():
    node = by_name()["gpu-h100-p5-48xlarge-0"]
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
