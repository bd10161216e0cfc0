"""Turn the readable fleet description in ``fake-gpu-nodes.yaml`` into Node manifests."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

FLEET_FILE = Path(str(resources.files(__package__).joinpath("fake-gpu-nodes.yaml")))

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
LAUNCH_GPU_LABEL = "k8s.amazonaws.com/accelerator"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def _node(entry: dict[str, Any]) -> dict[str, Any]:
    name = entry["name"]
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": entry["instanceType"],
        "type": "kwok",
    }
    capacity = {
        "cpu": str(entry["cpu"]),
        "memory": entry["memory"],
        "ephemeral-storage": entry["ephemeralStorage"],
        "pods": str(entry.get("pods", 110)),
    }
    taints: list[dict[str, str]] = []
    gpu = entry.get("gpu")
    if gpu:
        labels |= {
            LAUNCH_GPU_LABEL: gpu["type"],
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": gpu["product"],
            "nvidia.com/gpu.memory": str(gpu["memoryMiB"]),
        }
        capacity["nvidia.com/gpu"] = str(gpu["count"])
        taints.append(dict(GPU_TAINT))
    mig = entry.get("mig")
    if mig:
        labels["nvidia.com/mig.capable"] = "true"
        labels["nvidia.com/mig.strategy"] = mig["strategy"]
        for profile, count in mig["slices"].items():
            capacity[f"nvidia.com/mig-{profile}"] = str(count)
            labels[f"nvidia.com/mig-{profile}.count"] = str(count)
            labels[f"nvidia.com/mig-{profile}.product"] = f"{gpu['product']}-MIG-{profile}"
    if gpu:
        gpu_count = sum(int(v) for k, v in capacity.items() if k.startswith("nvidia.com/"))
        labels["nvidia.com/gpu.count"] = str(gpu["count"] or gpu_count)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"taints": taints} if taints else {},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
        },
    }


def load_node_manifests(path: Path = FLEET_FILE) -> list[dict[str, Any]]:
    """Node manifests for every entry of the fleet file, in file order."""
    fleet = yaml.safe_load(path.read_text())
    return [_node(entry) for entry in fleet["nodes"]]
