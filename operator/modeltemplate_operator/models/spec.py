"""Spec models of the ModelTemplate resource (camelCase aliases of the SGP snake_case fields).

Relation of the two endpoint types: ``spec.endpointType`` is required and decides how the
template is served. ``spec.vendorConfiguration.endpointConfig.endpointType`` exists in the SGP
schema too; it is optional here and, when set, must equal ``spec.endpointType`` — a template
where they differ is rejected (never guessed).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, StrictBool, StrictInt, StrictStr

from .constants import (
    ENV_NAME_PATTERN,
    IDENTIFIER_PATTERN,
    MAX_ENV_VARS,
    MAX_GPUS,
    MAX_PARAMETERS,
    MAX_WORKERS_LIMIT,
    RESERVED_ENV_NAMES,
    RESERVED_ENV_PREFIXES,
)
from .gpus import CPU_ONLY_CAPS, GPU_TYPE_CAPS, GPUS, GpuType, caps_for
from .quantity import is_quantity, parse_quantity
from .rules import K8sModel, XRule, cel_list, cel_string_list

__all__ = [
    "EndpointType",
    "ModelType",
    "EndpointProtocol",
    "Vendor",
    "TrainingDatasetSchemaType",
    "ParameterType",
    "SecretKeySelector",
    "SecretEnvVar",
    "LocalObjectReference",
    "BundleConfig",
    "EndpointConfig",
    "FineTuningResources",
    "FineTuningJobBundleConfig",
    "VendorConfiguration",
    "ModelParameter",
    "ParametersSchema",
    "ModelTemplateSpec",
    "is_reserved_env_name",
]

# --------------------------------------------------------------------------------------------
# Enums (values and descriptions from the SGP API)
# --------------------------------------------------------------------------------------------


class EndpointType(StrEnum):
    """An enum representing the different types of model endpoint types supported.

    Attributes: SYNC: Denotes that the model endpoint type is sync. ASYNC: Denotes that the model
    endpoint type is async. STREAMING: Denotes that the model endpoint type is streaming. BATCH:
    Denotes that the model endpoint type is batch.
    """

    SYNC = "SYNC"
    ASYNC = "ASYNC"
    STREAMING = "STREAMING"
    BATCH = "BATCH"


class ModelType(StrEnum):
    """An enum representing the different types of models supported.

    Attributes: COMPLETION: Denotes that the model type is completion. CHAT_COMPLETION: Denotes
    that the model type is chat completion. AGENT: Denotes that the model type is agent.
    EMBEDDING: Denotes that the model type is embedding. RERANKING: Denotes that the model type
    is reranking. GENERIC: Denotes that the model type is generic. BUNDLE: Not to be used
    directly - type to surface a model bundle in the UI.
    """

    COMPLETION = "COMPLETION"
    CHAT_COMPLETION = "CHAT_COMPLETION"
    AGENT = "AGENT"
    EMBEDDING = "EMBEDDING"
    RERANKING = "RERANKING"
    GENERIC = "GENERIC"
    BUNDLE = "BUNDLE"


class EndpointProtocol(StrEnum):
    """The name of the calling convention expected by the Launch model endpoint."""

    SGP = "SGP"
    COHERE = "COHERE"
    VLLM = "VLLM"


class Vendor(StrEnum):
    """The vendor of the model template."""

    LAUNCH = "LAUNCH"


class TrainingDatasetSchemaType(StrEnum):
    """Optionally set required training and validation dataset schema."""

    GENERATION = "GENERATION"
    RERANKING_QUESTIONS = "RERANKING_QUESTIONS"


class ParameterType(StrEnum):
    """Type of a template parameter (Python type names as used by SGP: str, int, float, bool,
    list, dict)."""

    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    LIST = "list"
    DICT = "dict"


# --------------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------------

_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REGISTRY_PATTERN = rf"^{_DNS_LABEL}(?:\.{_DNS_LABEL})*(?::[0-9]{{1,5}})?(?:/{_PATH_COMPONENT})*$"
IMAGE_PATTERN = rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$"
TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
ROUTE_PATTERN = r"^/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*$"
FILE_PATH_PATTERN = r"^(?:/[A-Za-z0-9._~%@+=:,-]+)+$"
SECRET_NAME_PATTERN = r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"

#: Human explanations of the patterns, used in the offline validator's messages.
PATTERN_HELP: dict[str, str] = {
    REGISTRY_PATTERN: "a registry host (DNS name, optional :port, optional lowercase path)",
    IMAGE_PATTERN: "a lowercase image repository path such as vllm/vllm-openai",
    TAG_PATTERN: "an image tag: letters, digits, _ . -, at most 128 characters, not starting with . or -",
    ROUTE_PATTERN: "an HTTP path starting with /",
    FILE_PATH_PATTERN: "an absolute file path",
    SECRET_NAME_PATTERN: "a Secret name (DNS-1123 subdomain)",
    SECRET_KEY_PATTERN: "a Secret key (letters, digits, - . _)",
    ENV_NAME_PATTERN: "an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
    IDENTIFIER_PATTERN: "an identifier ([A-Za-z_][A-Za-z0-9_]*)",
}


def is_reserved_env_name(name: str) -> bool:
    """True for names in :data:`RESERVED_ENV_NAMES` or with a reserved prefix."""
    return name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES)


_RESERVED_LIST = cel_string_list(RESERVED_ENV_NAMES)
_RESERVED_PREFIX_CEL = " || ".join(f"{{v}}.startsWith('{p}')" for p in RESERVED_ENV_PREFIXES)


def _reserved_cel(var: str) -> str:
    return f"({var} in {_RESERVED_LIST} || " + _RESERVED_PREFIX_CEL.format(v=var) + ")"


_RESERVED_HELP = (
    "reserved: "
    + ", ".join(RESERVED_ENV_NAMES)
    + " and names starting with "
    + " or ".join(RESERVED_ENV_PREFIXES)
)

_ENV_NAME_RESERVED = XRule(
    rule="!" + _reserved_cel("self"),
    check=lambda v: not is_reserved_env_name(v),
    describe=lambda v: f"name ({v}) is a reserved environment variable name ({_RESERVED_HELP})",
    message_expression=f"'name (%s) is a reserved environment variable name ({_RESERVED_HELP})'.format([self])",
)

_ENV_KEYS_VALID = XRule(
    rule=f"self.all(k, k.matches('{ENV_NAME_PATTERN}'))",
    check=lambda env: all(_match(ENV_NAME_PATTERN, k) for k in env),
    describe=lambda env: (
        "env has invalid variable names "
        + cel_list([k for k in env if not _match(ENV_NAME_PATTERN, k)])
        + ": names must match [A-Za-z_][A-Za-z0-9_]*"
    ),
    message_expression=f"'env has invalid variable names %s: names must match [A-Za-z_][A-Za-z0-9_]*'.format([self.filter(k, !k.matches('{ENV_NAME_PATTERN}'))])",
)

_ENV_KEYS_NOT_RESERVED = XRule(
    rule="!self.exists(k, " + _reserved_cel("k") + ")",
    check=lambda env: not any(is_reserved_env_name(k) for k in env),
    describe=lambda env: (
        "env sets reserved variable names "
        + cel_list([k for k in env if is_reserved_env_name(k)])
        + f" ({_RESERVED_HELP})"
    ),
    message_expression=f"'env sets reserved variable names %s ({_RESERVED_HELP})'.format([self.filter(k, "
    + _reserved_cel("k")
    + ")])",
)


def _match(pattern: str, value: str) -> bool:
    import re

    return re.fullmatch(pattern.removeprefix("^").removesuffix("$"), value) is not None


def _pstr(pattern: str, max_length: int, min_length: int = 1) -> Any:
    return Annotated[
        str, Field(strict=True, pattern=pattern, max_length=max_length, min_length=min_length)
    ]


Registry = _pstr(REGISTRY_PATTERN, 255)
ImageName = _pstr(IMAGE_PATTERN, 255)
ImageTag = _pstr(TAG_PATTERN, 128)
Route = _pstr(ROUTE_PATTERN, 256)
FilePath = _pstr(FILE_PATH_PATTERN, 1024)
SecretName = _pstr(SECRET_NAME_PATTERN, 253)
SecretKey = _pstr(SECRET_KEY_PATTERN, 253)
EnvName = Annotated[
    str,
    Field(strict=True, pattern=ENV_NAME_PATTERN, max_length=128, min_length=1),
    _ENV_NAME_RESERVED,
]
EnvMap = Annotated[
    dict[str, StrictStr],
    Field(max_length=MAX_ENV_VARS),
    _ENV_KEYS_VALID,
    _ENV_KEYS_NOT_RESERVED,
]
Command = Annotated[list[StrictStr], Field(max_length=256)]


def _quantity_type(name: str) -> Any:
    rule = XRule(
        rule="isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('0'))",
        check=lambda v: is_quantity(v) and parse_quantity(v) > 0,
        describe=lambda v: (
            f"{name} ({v}) must be a positive Kubernetes quantity (e.g. 3, 500m, 8Gi)"
        ),
        message_expression=f"'{name} (%s) must be a positive Kubernetes quantity (e.g. 3, 500m, 8Gi)'.format([self])",
    )
    return Annotated[StrictInt | Annotated[StrictStr, Field(max_length=64)], rule]


Cpus = _quantity_type("cpus")
Memory = _quantity_type("memory")
Storage = _quantity_type("storage")


def _int(ge: int | None = None, le: int | None = None) -> Any:
    return Annotated[int, Field(strict=True, ge=ge, le=le)]


# --------------------------------------------------------------------------------------------
# Resource rules shared by endpointConfig and fineTuningJobBundleConfig.resources
# --------------------------------------------------------------------------------------------


def _cel_caps(attr: str) -> str:
    mapping = (
        "{" + ", ".join(f"'{t}': '{getattr(c, attr)}'" for t, c in GPU_TYPE_CAPS.items()) + "}"
    )
    return (
        f"(has(self.gpuType) && self.gpuType in {mapping} ? {mapping}[self.gpuType] : "
        f"'{getattr(CPU_ONLY_CAPS, attr)}')"
    )


def _cap_rule(attr: str) -> XRule:
    cap = _cel_caps(attr)

    def check(obj: Any) -> bool:
        value = getattr(obj, attr)
        if value is None or not is_quantity(value):
            return True
        return parse_quantity(value) <= parse_quantity(getattr(caps_for(obj.gpu_type), attr))

    def describe(obj: Any) -> str:
        where = f"gpuType {obj.gpu_type}" if obj.gpu_type is not None else "a worker without GPUs"
        return f"{attr} ({getattr(obj, attr)}) must be <= {getattr(caps_for(obj.gpu_type), attr)} for {where}"

    return XRule(
        rule=(
            f"!has(self.{attr}) || !isQuantity(string(self.{attr})) || "
            f"quantity(string(self.{attr})).compareTo(quantity({cap})) <= 0"
        ),
        check=check,
        describe=describe,
        message_expression=(
            f"'{attr} (%s) must be <= %s for %s'.format([self.{attr}, {cap}, "
            "has(self.gpuType) ? 'gpuType ' + self.gpuType : 'a worker without GPUs'])"
        ),
        field_path=f".{attr}",
    )


_GPU_TYPE_REQUIRED = XRule(
    rule="!has(self.gpus) || self.gpus == 0 || has(self.gpuType)",
    check=lambda o: o.gpus == 0 or o.gpu_type is not None,
    describe=lambda o: f"gpuType must be set when gpus ({o.gpus}) > 0",
    message_expression="'gpuType must be set when gpus (%d) > 0'.format([self.gpus])",
    field_path=".gpuType",
)
_GPUS_REQUIRED = XRule(
    rule="!has(self.gpuType) || (has(self.gpus) && self.gpus > 0)",
    check=lambda o: o.gpu_type is None or o.gpus > 0,
    describe=lambda o: f"gpus ({o.gpus}) must be > 0 when gpuType ({o.gpu_type}) is set",
    message_expression="'gpus (%d) must be > 0 when gpuType (%s) is set'.format([has(self.gpus) ? self.gpus : 0, self.gpuType])",
    field_path=".gpus",
)
_RESOURCE_RULES = (
    _GPU_TYPE_REQUIRED,
    _GPUS_REQUIRED,
    _cap_rule("cpus"),
    _cap_rule("memory"),
    _cap_rule("storage"),
)

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
    "[A-Za-z_][A-Za-z0-9_]*; " + _RESERVED_HELP + ". Put secret values in secretEnv instead."
)


def _unique_names_rule(field: str) -> XRule:
    """Python side of a uniqueness the CRD enforces with ``x-kubernetes-list-type: map``."""

    def dupes(obj: Any) -> list[str]:
        seen: set[str] = set()
        out: list[str] = []
        for item in getattr(obj, _snake(field)) or ():
            if item.name in seen and item.name not in out:
                out.append(item.name)
            seen.add(item.name)
        return out

    return XRule(
        rule="",  # enforced by the schema: x-kubernetes-list-type map, key name
        check=lambda o: not dupes(o),
        describe=lambda o: f"{field} has duplicate names ({', '.join(dupes(o))})",
    )


def _snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


_SECRET_ENV_DISJOINT = XRule(
    rule="!has(self.env) || !has(self.secretEnv) || self.secretEnv.all(e, !(e.name in self.env))",
    check=lambda o: not (o.env and o.secret_env and any(e.name in o.env for e in o.secret_env)),
    describe=lambda o: (
        "secretEnv names are also set in env "
        + cel_list([e.name for e in o.secret_env if e.name in o.env])
    ),
    message_expression="'secretEnv names are also set in env %s'.format([self.secretEnv.filter(e, e.name in self.env).map(e, e.name)])",
    field_path=".secretEnv",
)
_REPOSITORY_LENGTH = XRule(
    rule="size(self.registry) + size(self.image) < 255",
    check=lambda o: len(o.registry) + len(o.image) < 255,
    describe=lambda o: (
        f"image ({o.registry}/{o.image}) must be at most 255 characters including the registry"
    ),
    message_expression="'image (%s/%s) must be at most 255 characters including the registry'.format([self.registry, self.image])",
    field_path=".image",
)
_CONTAINER_RULES = (
    _REPOSITORY_LENGTH,
    _SECRET_ENV_DISJOINT,
    _unique_names_rule("secretEnv"),
    _unique_names_rule("imagePullSecrets"),
)

_LIST_MAP = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}


# --------------------------------------------------------------------------------------------
# Bundle, endpoint and fine-tuning configuration
# --------------------------------------------------------------------------------------------


class BundleConfig(K8sModel):
    """The bundle configuration of the model template: the container image of the model
    server, how to start it and the routes it serves. The image is registry/image:tag."""

    __x_rules__ = _CONTAINER_RULES

    registry: Registry = Field(
        description="Container registry of the image, e.g. nvcr.io, ghcr.io/my-org or "
        "123456789012.dkr.ecr.us-west-2.amazonaws.com."
    )
    image: ImageName = Field(description="Image repository in the registry, e.g. vllm/vllm-openai.")
    tag: ImageTag = Field(description="Image tag, e.g. v0.6.3.")
    command: Command | None = Field(
        None,
        description="Command of the model container (exec form); defaults to the image's entrypoint.",
    )
    env: EnvMap | None = Field(None, description=_ENV_DESCRIPTION)
    secret_env: Annotated[list[SecretEnvVar], Field(max_length=MAX_ENV_VARS)] | None = Field(
        None, description=_SECRET_ENV_DESCRIPTION, json_schema_extra=_LIST_MAP
    )
    image_pull_secrets: Annotated[list[LocalObjectReference], Field(max_length=16)] | None = Field(
        None, description=_IMAGE_PULL_SECRETS_DESCRIPTION, json_schema_extra=_LIST_MAP
    )
    streaming_command: Command | None = Field(
        None,
        description="Command of the model container for STREAMING endpoints (exec form); "
        "when unset, command is used.",
    )
    readiness_initial_delay_seconds: _int(0, 86400) = Field(
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


class EndpointConfig(K8sModel):
    """The endpoint configuration of the model template: resources of one worker and how
    the number of workers scales."""

    __x_rules__ = (
        XRule(
            rule="!has(self.minWorkers) || !has(self.maxWorkers) || self.minWorkers <= self.maxWorkers",
            check=lambda o: o.min_workers <= o.max_workers,
            describe=lambda o: (
                f"minWorkers ({o.min_workers}) must be <= maxWorkers ({o.max_workers})"
            ),
            message_expression="'minWorkers (%d) must be <= maxWorkers (%d)'.format([self.minWorkers, self.maxWorkers])",
            field_path=".minWorkers",
        ),
        *_RESOURCE_RULES,
    )

    cpus: Cpus = Field(3, description=_CPUS_DESCRIPTION)
    memory: Memory = Field("8Gi", description=_MEMORY_DESCRIPTION)
    storage: Storage = Field("16Gi", description=_STORAGE_DESCRIPTION)
    gpus: _int(0, MAX_GPUS) = Field(0, description=_GPUS_DESCRIPTION)
    gpu_type: GpuType | None = Field(None, description=_GPU_TYPE_DESCRIPTION)
    min_workers: _int(0, MAX_WORKERS_LIMIT) = Field(
        0,
        description="The minimum number of workers. 0 lets the endpoint scale to zero when idle.",
    )
    max_workers: _int(0, MAX_WORKERS_LIMIT) = Field(
        1, description="The maximum number of workers (at most 250; must be >= minWorkers)."
    )
    per_worker: _int(1, 100000) = Field(
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


class FineTuningResources(K8sModel):
    """Resources of the fine-tuning job's container."""

    __x_rules__ = _RESOURCE_RULES

    cpus: Cpus = Field(3, description=_CPUS_DESCRIPTION)
    memory: Memory = Field("8Gi", description=_MEMORY_DESCRIPTION)
    storage: Storage = Field("16Gi", description=_STORAGE_DESCRIPTION)
    gpus: _int(0, MAX_GPUS) = Field(0, description=_GPUS_DESCRIPTION)
    gpu_type: GpuType | None = Field(None, description=_GPU_TYPE_DESCRIPTION)


class FineTuningJobBundleConfig(K8sModel):
    """The bundle configuration of the fine-tuning job of models created from this template."""

    __x_rules__ = _CONTAINER_RULES

    registry: Registry = Field(description="Container registry of the fine-tuning image.")
    image: ImageName = Field(description="Image repository of the fine-tuning image.")
    tag: ImageTag = Field(description="Image tag of the fine-tuning image.")
    command: Command | None = Field(
        None, description="Command of the fine-tuning container (exec form)."
    )
    env: EnvMap | None = Field(None, description=_ENV_DESCRIPTION)
    secret_env: Annotated[list[SecretEnvVar], Field(max_length=MAX_ENV_VARS)] | None = Field(
        None, description=_SECRET_ENV_DESCRIPTION, json_schema_extra=_LIST_MAP
    )
    image_pull_secrets: Annotated[list[LocalObjectReference], Field(max_length=16)] | None = Field(
        None, description=_IMAGE_PULL_SECRETS_DESCRIPTION, json_schema_extra=_LIST_MAP
    )
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

    name: _pstr(IDENTIFIER_PATTERN, 128) = Field(
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

    __x_rules__ = (_unique_names_rule("parameters"),)

    parameters: Annotated[list[ModelParameter], Field(max_length=MAX_PARAMETERS)] = Field(
        description="The parameter fields (names unique).", json_schema_extra=_LIST_MAP
    )


# --------------------------------------------------------------------------------------------
# Spec
# --------------------------------------------------------------------------------------------

_ENDPOINT_TYPE_CONSISTENT = XRule(
    rule=(
        "!has(self.vendorConfiguration) || !has(self.vendorConfiguration.endpointConfig) || "
        "!has(self.vendorConfiguration.endpointConfig.endpointType) || !has(self.endpointType) || "
        "self.vendorConfiguration.endpointConfig.endpointType == self.endpointType"
    ),
    check=lambda o: (
        o.vendor_configuration.endpoint_config.endpoint_type is None
        or o.vendor_configuration.endpoint_config.endpoint_type == o.endpoint_type
    ),
    describe=lambda o: (
        "vendorConfiguration.endpointConfig.endpointType "
        f"({o.vendor_configuration.endpoint_config.endpoint_type}) must equal endpointType "
        f"({o.endpoint_type}) when set"
    ),
    message_expression=(
        "'vendorConfiguration.endpointConfig.endpointType (%s) must equal endpointType (%s) "
        "when set'.format([self.vendorConfiguration.endpointConfig.endpointType, self.endpointType])"
    ),
    field_path=".vendorConfiguration.endpointConfig.endpointType",
)


class ModelTemplateSpec(K8sModel):
    """A model template (SGP): common scaffolding that is static across multiple models, and
    the variables that can be injected at model creation and request time. Field names are the
    SGP snake_case names in camelCase; the SGP name is metadata.name."""

    __x_rules__ = (_ENDPOINT_TYPE_CONSISTENT,)

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
