"""Pydantic models of the ModelTemplate resource — the one source of the CRD schema.

Main classes (python attributes are snake_case, manifest keys are their camelCase aliases):

- :class:`ModelTemplate` — ``api_version``, ``kind``, ``metadata`` (:class:`ObjectMeta`),
  ``spec`` (:class:`ModelTemplateSpec`), ``status`` (:class:`ModelTemplateStatus` | None).
  Parse a manifest dict with ``ModelTemplate.model_validate(d)``.
- :class:`ModelTemplateSpec` — ``endpoint_type``, ``model_type``, ``endpoint_protocol``,
  ``vendor_configuration``, ``model_creation_parameters_schema``,
  ``model_request_parameters_schema``; shortcuts ``bundle_config`` and ``endpoint_config``.
- :class:`VendorConfiguration` — ``vendor``, ``bundle_config``, ``endpoint_config``,
  ``fine_tuning_job_bundle_config``.
- :class:`BundleConfig` — ``registry``, ``image``, ``tag``, ``command``, ``env``,
  ``secret_env`` (list of :class:`SecretEnvVar`), ``image_pull_secrets`` (list of
  :class:`LocalObjectReference`), ``streaming_command``, ``readiness_initial_delay_seconds``,
  ``healthcheck_route``, ``predict_route``, ``streaming_predict_route``.
- :class:`EndpointConfig` — ``cpus``, ``memory``, ``storage`` (int | quantity str), ``gpus``,
  ``gpu_type`` (:class:`GpuType` | None), ``min_workers``, ``max_workers``, ``per_worker``,
  ``endpoint_type``, ``high_priority``.
- :class:`FineTuningJobBundleConfig` (with :class:`FineTuningResources`),
  :class:`ParametersSchema` / :class:`ModelParameter`.
- :class:`Model` (:class:`ModelSpec`, :class:`TemplateRef`, :class:`ModelStatus`) — a model
  made from a template with its creation parameters.
- Status: :class:`ModelTemplateStatus`, :class:`Condition`, :class:`WorkersStatus`,
  :class:`EndpointsStatus`, :class:`SchedulingStatus`.

Constants: :data:`RESERVED_ENV_NAMES`, :data:`RESERVED_ENV_PREFIXES`. GPU types: :data:`GPUS`
(the one table; :class:`GpuType`, :data:`GPU_TYPE_CAPS` and :data:`GPU_BY_TYPE` derive from it),
:data:`CPU_ONLY_CAPS`. Quantities: :func:`parse_quantity`.

Modules: ``enums`` and ``gpus`` (the enums and the GPU table), ``fields`` (field types and the
rules, each Python check paired with its CEL twin), ``spec`` / ``status`` / ``resource`` (the
classes), ``rules`` (the XRule machinery), ``quantity``, ``constants``.
"""

from .constants import MAX_WORKERS_LIMIT, RESERVED_ENV_NAMES, RESERVED_ENV_PREFIXES
from .deployment import ModelDeployment, ModelDeploymentSpec
from .enums import (
    EndpointProtocol,
    EndpointType,
    ModelType,
    ParameterType,
    TrainingDatasetSchemaType,
    Vendor,
)
from .fields import ENV_NAME_PATTERN, IDENTIFIER_PATTERN, PATTERN_HELP, is_reserved_env_name
from .finetuning import (
    FineTuningJob,
    FineTuningJobSpec,
    FineTuningJobStatus,
    FineTuningPhase,
)
from .gpus import (
    CPU_ONLY_CAPS,
    GPU_BY_TYPE,
    GPU_TYPE_CAPS,
    GPUS,
    Gpu,
    GpuType,
    ResourceCaps,
    caps_for,
)
from .model import MODEL_KIND, MODEL_PLURAL, Model, ModelSpec, ModelStatus, TemplateRef
from .quantity import QuantityError, is_quantity, parse_quantity
from .resource import NAME_MAX_LENGTH, NAME_PATTERN, ModelTemplate, ObjectMeta
from .rules import X_RULE_ERROR, K8sModel, XRule
from .spec import (
    BundleConfig,
    EndpointConfig,
    FineTuningJobBundleConfig,
    FineTuningResources,
    LocalObjectReference,
    ModelParameter,
    ModelTemplateSpec,
    ParametersSchema,
    SecretEnvVar,
    SecretKeySelector,
    VendorConfiguration,
)
from .status import (
    Condition,
    ConditionStatus,
    EndpointsStatus,
    IdentityType,
    ModelTemplateStatus,
    SchedulingStatus,
    WorkersStatus,
)

__all__ = [
    "BundleConfig",
    "CPU_ONLY_CAPS",
    "Condition",
    "ConditionStatus",
    "ENV_NAME_PATTERN",
    "EndpointConfig",
    "EndpointProtocol",
    "EndpointType",
    "EndpointsStatus",
    "FineTuningJobBundleConfig",
    "FineTuningResources",
    "GPUS",
    "GPU_BY_TYPE",
    "GPU_TYPE_CAPS",
    "Gpu",
    "GpuType",
    "IDENTIFIER_PATTERN",
    "IdentityType",
    "FineTuningJob",
    "FineTuningJobSpec",
    "FineTuningJobStatus",
    "FineTuningPhase",
    "K8sModel",
    "LocalObjectReference",
    "MAX_WORKERS_LIMIT",
    "MODEL_KIND",
    "MODEL_PLURAL",
    "Model",
    "ModelDeployment",
    "ModelDeploymentSpec",
    "ModelSpec",
    "ModelStatus",
    "ModelParameter",
    "ModelTemplate",
    "ModelTemplateSpec",
    "ModelTemplateStatus",
    "ModelType",
    "NAME_MAX_LENGTH",
    "NAME_PATTERN",
    "ObjectMeta",
    "PATTERN_HELP",
    "ParameterType",
    "ParametersSchema",
    "QuantityError",
    "RESERVED_ENV_NAMES",
    "RESERVED_ENV_PREFIXES",
    "ResourceCaps",
    "SchedulingStatus",
    "SecretEnvVar",
    "SecretKeySelector",
    "TemplateRef",
    "TrainingDatasetSchemaType",
    "Vendor",
    "VendorConfiguration",
    "WorkersStatus",
    "XRule",
    "X_RULE_ERROR",
    "caps_for",
    "is_quantity",
    "is_reserved_env_name",
    "parse_quantity",
]
