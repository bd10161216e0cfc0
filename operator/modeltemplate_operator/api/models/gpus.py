"""The one table of GPU types: every fact about a ``gpuType`` is written here once.

Each :class:`Gpu` row holds a Launch GPU type name, the per-worker resource caps Launch
enforces for it, how the nodes carrying it are labelled (NVIDIA GPU Feature Discovery product,
GKE accelerator) and, for MIG slices, the parent GPU and the MIG profile. The :class:`GpuType`
enum, :data:`GPU_TYPE_CAPS`, the ``gpuType`` field description and the scheduling lookups of
``resolution`` all derive from :data:`GPUS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ResourceCaps",
    "Gpu",
    "GPUS",
    "GPU_BY_TYPE",
    "GpuType",
    "GPU_TYPE_CAPS",
    "CPU_ONLY_CAPS",
    "caps_for",
]


@dataclass(frozen=True)
class ResourceCaps:
    """Upper bounds (Kubernetes quantities) for one worker of a GPU type."""

    cpus: str
    memory: str
    storage: str


@dataclass(frozen=True)
class Gpu:
    """One GPU type (the value of ``gpuType``)."""

    type: str
    #: Per-worker caps Launch enforces (``cpus``/``memory``/``storage``).
    caps: ResourceCaps
    #: ``nvidia.com/gpu.product`` label of its nodes (NVIDIA GPU Feature Discovery).
    gfd_product: str
    #: ``cloud.google.com/gke-accelerator`` label of its nodes.
    gke_accelerator: str
    #: The full GPU type a MIG slice is cut from (None for full GPUs).
    parent: str | None = None
    #: The MIG profile of a slice, e.g. ``1g.20gb`` (None for full GPUs).
    mig_profile: str | None = None

    @property
    def member_name(self) -> str:
        """The :class:`GpuType` member name: ``nvidia-tesla-t4`` -> ``NVIDIA_TESLA_T4``."""
        return self.type.upper().replace("-", "_")


#: Every GPU type, in the order the API documents them.
GPUS: tuple[Gpu, ...] = (
    Gpu("nvidia-tesla-t4", ResourceCaps("63", "250Gi", "640Gi"), "Tesla-T4", "nvidia-tesla-t4"),
    Gpu("nvidia-ampere-a10", ResourceCaps("63", "250Gi", "640Gi"), "NVIDIA-A10G", "nvidia-a10g"),
    Gpu(
        "nvidia-ampere-a100",
        ResourceCaps("95", "1000Gi", "640Gi"),
        "NVIDIA-A100-SXM4-40GB",
        "nvidia-tesla-a100",
    ),
    Gpu(
        "nvidia-ampere-a100e",
        ResourceCaps("95", "1000Gi", "640Gi"),
        "NVIDIA-A100-SXM4-80GB",
        "nvidia-a100-80gb",
    ),
    Gpu(
        "nvidia-hopper-h100",
        ResourceCaps("191", "2000Gi", "1300Gi"),
        "NVIDIA-H100-80GB-HBM3",
        "nvidia-h100-80gb",
    ),
    Gpu(
        "nvidia-hopper-h100-1g20gb",
        ResourceCaps("47", "500Gi", "640Gi"),
        "NVIDIA-H100-80GB-HBM3-MIG-1g.20gb",
        "nvidia-h100-80gb",
        parent="nvidia-hopper-h100",
        mig_profile="1g.20gb",
    ),
    Gpu(
        "nvidia-hopper-h100-3g40gb",
        ResourceCaps("95", "1000Gi", "640Gi"),
        "NVIDIA-H100-80GB-HBM3-MIG-3g.40gb",
        "nvidia-h100-80gb",
        parent="nvidia-hopper-h100",
        mig_profile="3g.40gb",
    ),
)

GPU_BY_TYPE: dict[str, Gpu] = {gpu.type: gpu for gpu in GPUS}

GpuType = StrEnum("GpuType", [(gpu.member_name, gpu.type) for gpu in GPUS], module=__name__)
GpuType.__doc__ = """The type of GPU of a worker (Launch GPU type names; the -1g20gb/-3g40gb types
are MIG slices of an H100)."""

#: Per-GPU-type caps Launch enforces for one worker (``cpus``/``memory``/``storage``).
GPU_TYPE_CAPS: dict[str, ResourceCaps] = {gpu.type: gpu.caps for gpu in GPUS}
#: Caps of a worker without GPUs (no ``gpuType``).
CPU_ONLY_CAPS = ResourceCaps("7", "30Gi", "640Gi")


def caps_for(gpu_type: str | None) -> ResourceCaps:
    """The per-worker caps for a GPU type (CPU-only caps when ``gpu_type`` is None)."""
    if gpu_type is not None and str(gpu_type) in GPU_TYPE_CAPS:
        return GPU_TYPE_CAPS[str(gpu_type)]
    return CPU_ONLY_CAPS
