"""Spec models of the ModelTemplate resource (camelCase aliases of the SGP snake_case fields).

The classes and their field descriptions; the field types and the rules they attach are in
``fields.py``, the enums in ``enums.py`` and ``gpus.py``.

Relation of the two endpoint types: ``spec.endpointType`` is required and decides how the
template is served. ``spec.vendorConfiguration.endpointConfig.endpointType`` exists in the SGP
schema too; it is optional here and, when set, must equal ``spec.endpointType`` — a template
where they differ is rejected (never guessed).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool

from .constants import MAX_ENV_VARS, MAX_GPUS, MAX_PARAMETERS, MAX_WORKERS_LIMIT
from .enums import (
    EndpointProtocol,
    EndpointType,
    ModelType,
    ParameterType,
    TrainingDatasetSchemaType,
    Vendor,
)
from .fields import (
    CONTAINER_RULES,
    ENDPOINT_TYPE_CONSISTENT,
    LIST_MAP,
    RESERVED_HELP,
    RESOURCE_RULES,
    WORKERS_ORDERED,
    Command,
    Cpus,
    EnvMap,
    EnvName,
    FilePath,
    Identifier,
    ImageName,
    ImageTag,
    Memory,
    Registry,
    Route,
    SecretKey,
    SecretName,
    Storage,
    bounded_int,
    unique_names_rule,
)
from .gpus import CPU_ONLY_CAPS, GPUS, GpuType
from .rules import K8sModel

__all__ = [
    "SecretKeySelector",
    "SecretEnvVar",
    "LocalObjectReference",
    "ContainerConfig",
    "WorkerResources",
    "BundleConfig",
    "EndpointConfig",
    "FineTuningResources",
    "FineTuningJobBundleConfig",
    "VendorConfiguration",
    "ModelParameter",
    "ParametersSchema",
    "ModelTemplateSpec",
]

# --------------------------------------------------------------------------------------------
# Descriptions shared by several fields
# --------------------------------------------------------------------------------------------

_CPUS_DESCRIPTION = (
    "CPUs of one worker's main container (requests = limits): an integer or a Kubernetes "
    f"quantity such as 500m. Capped per gpuType (CPU-only workers: {CPU_ONLY_CAPS.cpus})."
)
_MEMORY_DESCRIPTION = (
    "Memory of one worker's main container (requests = limits), a Kubernetes quantity such as "
    f"8Gi. Capped per gpuType (CPU-only workers: {CPU_ONLY_CAPS.memory})."
)
_STORAGE_DESCRIPTION = (
    "Ephemeral storage of one worker's main container (requests = limits), a Kubernetes "
    f"quantity such as 16Gi. Capped at {CPU_ONLY_CAPS.storage} ("
    + ", ".join(
        f"{gpu.caps.storage} for {gpu.type}"
        for gpu in GPUS
        if gpu.caps.storage != CPU_ONLY_CAPS.storage
    )
    + ")."
)
_GPUS_DESCRIPTION = "Number of GPUs (or MIG slices) per worker. gpus > 0 requires gpuType."
_GPU_TYPE_DESCRIPTION = (
    "The type of GPU of a worker: "
    + ", ".join(gpu.type for gpu in GPUS)
    + ". Required when gpus > 0, forbidden when gpus is 0."
)


_SECRET_ENV_DESCRIPTION = (
    "Environment variables whose values come from Secrets (Kubernetes extension, not in SGP): "
    "[{name: HF_TOKEN, secretKeyRef: {name: hf, key: token}}]. Names are unique, valid, not "
    "reserved, and not also set in env."
)
_IMAGE_PULL_SECRETS_DESCRIPTION = (
    "Secrets with credentials for a private registry (Kubernetes extension, not in SGP), "
    "passed to the pod as imagePullSecrets."
)
_ENV_DESCRIPTION = (
    "Environment variables of the container, name to plain string value. Names match "
    "[A-Za-z_][A-Za-z0-9_]*; " + RESERVED_HELP + ". Put secret values in secretEnv instead."
)


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------


class SecretKeySelector(K8sModel):
    """Selects a key of a Secret in the namespace of the ModelTemplate."""

    name: SecretName = Field(
        description="Name of the Secret, in the namespace of the ModelTemplate."
    )
    key: SecretKey = Field(
        description="Key of the Secret whose value becomes the variable's value."
    )
    optional: StrictBool | None = Field(
        None, description="Start the container even when the Secret or the key does not exist."
    )


class SecretEnvVar(K8sModel):
    """An environment variable whose value is read from a Secret when the pod starts; the value
    never appears in the template (e.g. a model hub token)."""

    name: EnvName = Field(description="Name of the environment variable.")
    secret_key_ref: SecretKeySelector = Field(description="The Secret key holding the value.")


class LocalObjectReference(K8sModel):
    """A reference to an object (here: an image pull Secret) in the same namespace."""

    name: SecretName = Field(
        description="Name of the Secret of type kubernetes.io/dockerconfigjson."
    )


# --------------------------------------------------------------------------------------------
# Bundle, endpoint and fine-tuning configuration
# --------------------------------------------------------------------------------------------


class ContainerConfig(K8sModel):
    """A container of the template: image (registry/image:tag), command and environment.
    Base of the model server's and the fine-tuning job's bundle configuration."""

    __x_rules__ = CONTAINER_RULES

    registry: Registry = Field(
        description="Container registry of the image, e.g. nvcr.io, ghcr.io/my-org or "
        "123456789012.dkr.ecr.us-west-2.amazonaws.com."
    )
    image: ImageName = Field(description="Image repository in the registry, e.g. vllm/vllm-openai.")
    tag: ImageTag = Field(description="Image tag, e.g. v0.6.3.")
    command: Command | None = Field(
        None,
        description="Command of the container (exec form); defaults to the image's entrypoint.",
    )
    env: EnvMap | None = Field(None, description=_ENV_DESCRIPTION)
    secret_env: Annotated[list[SecretEnvVar], Field(max_length=MAX_ENV_VARS)] | None = Field(
        None, description=_SECRET_ENV_DESCRIPTION, json_schema_extra=LIST_MAP
    )
    image_pull_secrets: Annotated[list[LocalObjectReference], Field(max_length=16)] | None = Field(
        None, description=_IMAGE_PULL_SECRETS_DESCRIPTION, json_schema_extra=LIST_MAP
    )


class WorkerResources(K8sModel):
    """Resources of one worker's main container, capped per GPU type. Base of the endpoint's
    and the fine-tuning job's resources."""

    __x_rules__ = RESOURCE_RULES

    cpus: Cpus = Field(3, description=_CPUS_DESCRIPTION)
    memory: Memory = Field("8Gi", description=_MEMORY_DESCRIPTION)
    storage: Storage = Field("16Gi", description=_STORAGE_DESCRIPTION)
    gpus: bounded_int(0, MAX_GPUS) = Field(0, description=_GPUS_DESCRIPTION)
    gpu_type: GpuType | None = Field(None, description=_GPU_TYPE_DESCRIPTION)


class BundleConfig(ContainerConfig):
    """The bundle configuration of the model template: the container image of the model
    server, how to start it and the routes it serves. The image is registry/image:tag."""

    streaming_command: Command | None = Field(
        None,
        description="Command of the model container for STREAMING endpoints (exec form); "
        "when unset, command is used.",
    )
    readiness_initial_delay_seconds: bounded_int(0, 86400) = Field(
        120,
        description="Seconds after the container starts before the readiness probe on "
        "healthcheckRoute begins.",
    )
    healthcheck_route: Route = Field(
        "/readyz", description="HTTP route of the model container's readiness check."
    )
    predict_route: Route = Field("/predict", description="HTTP route of synchronous predictions.")
    streaming_predict_route: Route = Field(
        "/generate_streaming", description="HTTP route of streaming predictions."
    )


class EndpointConfig(WorkerResources):
    """The endpoint configuration of the model template: resources of one worker and how
    the number of workers scales."""

    __x_rules__ = (WORKERS_ORDERED, *RESOURCE_RULES)

    min_workers: bounded_int(0, MAX_WORKERS_LIMIT) = Field(
        0,
        description="The minimum number of workers. 0 lets the endpoint scale to zero when idle.",
    )
    max_workers: bounded_int(0, MAX_WORKERS_LIMIT) = Field(
        1, description="The maximum number of workers (at most 250; must be >= minWorkers)."
    )
    per_worker: bounded_int(1, 100000) = Field(
        10,
        description=(
            "The maximum number of concurrent requests that an individual worker can service. "
            "Launch automatically scales the number of workers for the endpoint so that each "
            "worker is processing perWorker requests, subject to the limits defined by "
            "minWorkers and maxWorkers. - If the average number of concurrent requests per "
            "worker is lower than perWorker, then the number of workers will be reduced. - "
            "Otherwise, if the average number of concurrent requests per worker is higher than "
            "perWorker, then the number of workers will be increased to meet the elevated "
            "traffic. Here is our recommendation for computing perWorker: 1. Compute minWorkers "
            "and maxWorkers per your minimum and maximum throughput requirements. 2. Determine a "
            "value for the maximum number of concurrent requests in the workload. Divide this "
            'number by maxWorkers. Doing this ensures that the number of workers will "climb" '
            "to maxWorkers."
        ),
    )
    endpoint_type: EndpointType | None = Field(
        None,
        description=(
            "An enum representing the different types of model endpoint types supported. "
            "Attributes: SYNC: Denotes that the model endpoint type is sync. ASYNC: Denotes "
            "that the model endpoint type is async. STREAMING: Denotes that the model endpoint "
            "type is streaming. BATCH: Denotes that the model endpoint type is batch. Optional "
            "here; when set it must equal spec.endpointType."
        ),
    )
    high_priority: StrictBool = Field(
        False,
        description="Schedule the workers with the high PriorityClass (may preempt other workloads).",
    )


class FineTuningResources(WorkerResources):
    """Resources of the fine-tuning job's container."""


class FineTuningJobBundleConfig(ContainerConfig):
    """The bundle configuration of the fine-tuning job of models created from this template."""

    mount_location: FilePath = Field(
        "/workspace/launch_specific/config.json",
        description="The filesystem location where the fine tuning job's configuration will be "
        "available when it is started.",
    )
    training_dataset_schema_type: TrainingDatasetSchemaType = Field(
        TrainingDatasetSchemaType.GENERATION,
        description="Optionally set required training and validation dataset schema.",
    )
    resources: FineTuningResources = Field(
        default_factory=FineTuningResources,
        description="Resources of the fine-tuning job's container.",
        json_schema_extra={"default": {}},
    )


class VendorConfiguration(K8sModel):
    """Configuration for launching a model using the Launch service which is an internal and
    self-hosted service developed by Scale that deploys models on Kubernetes.

    Attributes: vendor: The vendor of the model template bundleConfig: The bundle
    configuration of the model template endpointConfig: The endpoint configuration of the
    model template
    """

    vendor: Vendor = Field(Vendor.LAUNCH, description="The vendor of the model template.")
    bundle_config: BundleConfig = Field(
        description="The bundle configuration of the model template."
    )
    endpoint_config: EndpointConfig = Field(
        default_factory=EndpointConfig,
        description="The endpoint configuration of the model template.",
        json_schema_extra={"default": {}},
    )
    fine_tuning_job_bundle_config: FineTuningJobBundleConfig | None = Field(
        None,
        description="The bundle configuration of the fine-tuning job of models created from "
        "this template.",
    )


# --------------------------------------------------------------------------------------------
# Parameter schemas
# --------------------------------------------------------------------------------------------


class ModelParameter(K8sModel):
    """One parameter field of a parameters schema."""

    name: Identifier = Field(
        description="Name of the parameter, an identifier ([A-Za-z_][A-Za-z0-9_]*), unique "
        "within the schema."
    )
    type: ParameterType = Field(
        description="Type of the parameter: str, int, float, bool, list or dict."
    )
    description: Annotated[str, Field(strict=True, max_length=4096)] | None = Field(
        None, description="Human-readable description of the parameter."
    )
    required: StrictBool = Field(
        False, description="Whether the parameter must be given (default false: optional)."
    )


class ParametersSchema(K8sModel):
    """The field names and types of available parameter fields."""

    __x_rules__ = (unique_names_rule("parameters"),)

    parameters: Annotated[list[ModelParameter], Field(max_length=MAX_PARAMETERS)] = Field(
        description="The parameter fields (names unique).", json_schema_extra=LIST_MAP
    )


# --------------------------------------------------------------------------------------------
# Spec
# --------------------------------------------------------------------------------------------


class ModelTemplateSpec(K8sModel):
    """A model template (SGP): common scaffolding that is static across multiple models, and
    the variables that can be injected at model creation and request time. Field names are the
    SGP snake_case names in camelCase; the SGP name is metadata.name."""

    __x_rules__ = (ENDPOINT_TYPE_CONSISTENT,)

    endpoint_type: EndpointType = Field(
        description=(
            "An enum representing the different types of model endpoint types supported. "
            "Attributes: SYNC: Denotes that the model endpoint type is sync. ASYNC: Denotes "
            "that the model endpoint type is async. STREAMING: Denotes that the model endpoint "
            "type is streaming. BATCH: Denotes that the model endpoint type is batch."
        )
    )
    model_type: ModelType = Field(
        description=(
            "An enum representing the different types of models supported. Attributes: "
            "COMPLETION: Denotes that the model type is completion. CHAT_COMPLETION: Denotes "
            "that the model type is chat completion. AGENT: Denotes that the model type is "
            "agent. EMBEDDING: Denotes that the model type is embedding. RERANKING: Denotes "
            "that the model type is reranking. GENERIC: Denotes that the model type is generic. "
            "BUNDLE: Not to be used directly - type to surface a model bundle in the UI."
        )
    )
    endpoint_protocol: EndpointProtocol = Field(
        EndpointProtocol.SGP,
        description="The name of the calling convention expected by the Launch model endpoint.",
    )
    vendor_configuration: VendorConfiguration = Field(
        description=(
            "Configuration for launching a model using the Launch service which is an internal "
            "and self-hosted service developed by Scale that deploys models on Kubernetes. "
            "Attributes: vendor: The vendor of the model template bundleConfig: The bundle "
            "configuration of the model template endpointConfig: The endpoint configuration of "
            "the model template"
        )
    )
    model_creation_parameters_schema: ParametersSchema | None = Field(
        None,
        description="The field names and types of available parameter fields which may be "
        "specified during model creation.",
    )
    model_request_parameters_schema: ParametersSchema | None = Field(
        None,
        description="The field names and types of available parameter fields which may be "
        "specified in a model execution API's model_request_parameters field.",
    )

    # Shortcuts for consumers (renderer, resolution).
    @property
    def bundle_config(self) -> BundleConfig:
        return self.vendor_configuration.bundle_config

    @property
    def endpoint_config(self) -> EndpointConfig:
        return self.vendor_configuration.endpoint_config
