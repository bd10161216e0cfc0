"""Resolution: spec + operator configuration -> scheduling and scaling decisions (pure).

GPU classes
    Each SGP ``gpuType`` maps to a device-plugin resource, node-selector labels and
    tolerations. The labels depend on how the cluster labels its GPU nodes (the preset):

    ``launch``      ``k8s.amazonaws.com/accelerator: <gpuType>`` (what Launch itself does)
    ``nvidia-gfd``  ``nvidia.com/gpu.product: <product>`` (NVIDIA GPU Feature Discovery)
    ``gke``         ``cloud.google.com/gke-accelerator: <accelerator>``

    Products, accelerators and MIG profiles come from the GPU table (``models/gpus.py``).

    MIG types (``nvidia-hopper-h100-1g20gb``, ``-3g40gb``) follow the MIG strategy of the
    cluster: ``mixed`` requests ``nvidia.com/mig-<profile>`` on nodes of the parent GPU;
    ``single`` requests ``nvidia.com/gpu`` on nodes labelled with the MIG profile.

Models
    :func:`plan_for_model` is the template's plan with a Model's overrides (minWorkers,
    maxWorkers, perWorker, highPriority) and creation parameters applied, named after and owned
    by the model; the one renderer renders it.

Workers
    min == max -> fixed replicas; min >= 1 -> HPA on ``request-concurrency-average``;
    min == 0 -> KEDA ScaledObject when KEDA is installed, else 1 worker and a condition.
    ASYNC (queue) endpoints: min == max -> fixed; else a KEDA ScaledObject on the queue's length
    when KEDA is installed, else max(min, 1) fixed workers and a condition.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from ..api.kinds import MODEL, MODEL_TEMPLATE, Kind
from ..api.models import GPU_BY_TYPE, EndpointType, Model, ModelTemplate, ModelTemplateSpec
from .config import OperatorConfig
from .instantiate import apply_overrides, is_pure_template

GPU_RESOURCE = "nvidia.com/gpu"
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
LAUNCH_LABEL = "k8s.amazonaws.com/accelerator"
GFD_LABEL = "nvidia.com/gpu.product"
GKE_LABEL = "cloud.google.com/gke-accelerator"
GKE_PARTITION_LABEL = "cloud.google.com/gke-gpu-partition-size"


@dataclass(frozen=True)
class Scheduling:
    """Where a worker runs and which accelerator resource it requests."""

    resource: str | None = None
    count: int = 0
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)


def _preset_selector(gpu_type: str, preset: str, mig_strategy: str) -> dict[str, str]:
    model = GPU_BY_TYPE[gpu_type]
    # Mixed strategy: the slice is its own resource, the node is labelled as its parent GPU.
    labelled_as = model.parent if (model.parent and mig_strategy == "mixed") else gpu_type
    labelled = GPU_BY_TYPE[labelled_as]
    if preset == "launch":
        return {LAUNCH_LABEL: labelled_as}
    if preset == "nvidia-gfd":
        return {GFD_LABEL: labelled.gfd_product}
    selector = {GKE_LABEL: labelled.gke_accelerator}
    if model.mig_profile and mig_strategy == "single":
        selector[GKE_PARTITION_LABEL] = model.mig_profile
    return selector


def resolve_gpu(gpu_type: str | None, gpus: int, config: OperatorConfig) -> Scheduling:
    """Scheduling of one worker; CPU-only workers get no GPU resource, selector or toleration."""
    if not gpu_type or gpus <= 0:
        return Scheduling()
    model = GPU_BY_TYPE[gpu_type]
    resource = GPU_RESOURCE
    if model.mig_profile and config.mig_strategy == "mixed":
        resource = f"nvidia.com/mig-{model.mig_profile}"
    selector = _preset_selector(gpu_type, config.gpu_preset, config.mig_strategy)
    tolerations = [dict(GPU_TOLERATION)]
    override = config.gpu_classes.get(gpu_type)
    if override:
        resource = override.resource_name or resource
        if override.node_selector is not None:
            selector = dict(override.node_selector)
        if override.tolerations is not None:
            tolerations = [dict(t) for t in override.tolerations]
    return Scheduling(resource, gpus, selector, tolerations)


class ScalingMode(StrEnum):
    FIXED = "Fixed"
    HPA = "HPA"
    KEDA = "KEDA"
    #: min == 0 requested but KEDA is missing: one worker, reported in a condition.
    NO_SCALE_TO_ZERO = "NoScaleToZero"
    #: ASYNC endpoint without KEDA: nothing scales on the queue; max(min, 1) fixed workers.
    NO_QUEUE_SCALING = "NoQueueScaling"


@dataclass(frozen=True)
class Workers:
    mode: ScalingMode
    min: int
    max: int
    per_worker: int

    @property
    def fixed_replicas(self) -> int | None:
        """Replicas the operator owns; None when an autoscaler owns them."""
        if self.mode is ScalingMode.FIXED:
            return self.min
        if self.mode is ScalingMode.NO_SCALE_TO_ZERO:
            return 1
        if self.mode is ScalingMode.NO_QUEUE_SCALING:
            return max(self.min, 1)
        return None


def resolve_workers(
    min_workers: int,
    max_workers: int,
    per_worker: int,
    keda_installed: bool,
    queue: bool = False,
) -> Workers:
    """``queue``: an ASYNC endpoint, scaled on its task queue (only KEDA can)."""
    if min_workers == max_workers:
        mode = ScalingMode.FIXED
    elif queue:
        mode = ScalingMode.KEDA if keda_installed else ScalingMode.NO_QUEUE_SCALING
    elif min_workers >= 1:
        mode = ScalingMode.HPA
    elif keda_installed:
        mode = ScalingMode.KEDA
    else:
        mode = ScalingMode.NO_SCALE_TO_ZERO
    return Workers(mode, min_workers, max_workers, per_worker)


class RolloutMode(StrEnum):
    """How the Deployment rolls (see :mod:`.gpu_rollout`)."""

    #: maxSurge 1, maxUnavailable 0: a new worker starts before an old one stops.
    SURGE = "Surge"
    #: maxSurge 0, maxUnavailable 1: no spare accelerator for a surge worker, so workers are
    #: replaced one at a time in place (the workload has more than one worker).
    IN_PLACE = "InPlace"
    #: No spare accelerator and a single worker: replacing it in place would stop the
    #: endpoint, so the rollout waits and Ready says ``RolloutBlocked``.
    BLOCKED = "Blocked"


@dataclass(frozen=True)
class Rollout:
    mode: RolloutMode = RolloutMode.SURGE
    #: Why (empty for SURGE): the pod that cannot schedule and the resource it lacks.
    message: str = ""


@dataclass(frozen=True)
class Plan:
    """Everything render needs: the template's identity, its spec and the resolved decisions."""

    name: str
    namespace: str
    uid: str
    spec: ModelTemplateSpec
    scheduling: Scheduling
    workers: Workers
    config: OperatorConfig
    #: The resource the children belong to (a template, or a model made from one).
    owner: Kind = MODEL_TEMPLATE
    #: A model's creation parameters, injected into ``main``; None for a template.
    parameters: dict[str, Any] | None = None
    #: A template with required creation parameters: only Models made from it run, it renders
    #: nothing itself.
    pure: bool = False
    #: How the Deployment rolls, decided from what is observed (:func:`.gpu_rollout.decide`).
    rollout: Rollout = field(default_factory=Rollout)


def plan_for_model(
    model: Model, template: ModelTemplate, config: OperatorConfig, keda_installed: bool
) -> Plan:
    """A model's plan: its template's plan with the model's overrides and parameters applied,
    named after and owned by the model. Check the pair with :func:`.instantiate.check_model`
    first."""
    effective = template.model_copy(
        update={"metadata": model.metadata, "spec": apply_overrides(template.spec, model.spec)}
    )
    return replace(
        plan_for(effective, config, keda_installed),
        owner=MODEL,
        parameters=dict(model.spec.creation_parameters or {}),
        pure=False,
    )


def plan_for(template: ModelTemplate, config: OperatorConfig, keda_installed: bool) -> Plan:
    ec = template.spec.endpoint_config
    gpu_type = ec.gpu_type.value if ec.gpu_type else None
    return Plan(
        name=template.metadata.name or "",
        namespace=template.metadata.namespace or "",
        uid=template.metadata.uid or "",
        spec=template.spec,
        scheduling=resolve_gpu(gpu_type, ec.gpus, config),
        workers=resolve_workers(
            ec.min_workers,
            ec.max_workers,
            ec.per_worker,
            keda_installed,
            queue=template.spec.endpoint_type is EndpointType.ASYNC,
        ),
        config=config,
        pure=is_pure_template(template),
    )
