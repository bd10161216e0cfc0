"""The FineTuningJob resource: one run of a template's ``fineTuningJobBundleConfig``.

A FineTuningJob names what to fine-tune (``spec.templateRef.name``, or ``spec.modelRef.name``
for a Model, whose template is then used), the training dataset and an optional validation
dataset (each exactly one of: a ``url``, a ``persistentVolumeClaim`` with a ``path`` in it, a
``configMap`` key holding JSON Lines, or ``inline`` rows for small datasets), free-form
``hyperparameters``, optional ``resources`` that lower the bundle's (never raise them), and
``outputModelName``: the Model created from the template once the job succeeds, with the
location of the fine-tuned weights as its ``outputWeightsParameter`` creation parameter.
``cancelled: true`` stops the job.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool

from ... import API_VERSION, FINE_TUNING_JOB_KIND
from .constants import MAX_GPUS
from .fields import IDENTIFIER_PATTERN, Cpus, Memory, Storage, bounded_int
from .resource import _NAME_RULE, NAME_MAX_LENGTH, NAME_PATTERN, ObjectMeta, Resource
from .rules import K8sModel, XRule
from .status import Condition, _StatusModel

__all__ = [
    "ConfigMapKeyRef",
    "Dataset",
    "FineTuningJob",
    "FineTuningJobSpec",
    "FineTuningJobStatus",
    "FineTuningPhase",
    "ModelRef",
    "PvcRef",
    "ResourceOverrides",
    "TERMINAL_PHASES",
]

#: Inline datasets are for small examples and tests: real ones live in a URL or a PVC.
MAX_INLINE_ROWS = 1000
URL_PATTERN = r"^[a-z][a-z0-9+.-]*://\S+$"
_Name = Annotated[
    str, Field(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NAME_PATTERN, strict=True)
]


class FineTuningPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


#: Phases a job never leaves: its Job is never created again.
TERMINAL_PHASES = frozenset(
    {FineTuningPhase.SUCCEEDED, FineTuningPhase.FAILED, FineTuningPhase.CANCELLED}
)


class ModelRef(K8sModel):
    """A Model (same namespace) whose template is fine-tuned."""

    name: _Name = Field(description="Name of a Model in the job's namespace.")


class TemplateRef(K8sModel):
    """The ModelTemplate (same namespace) whose fineTuningJobBundleConfig runs."""

    name: _Name = Field(description="Name of a ModelTemplate in the job's namespace.")


class PvcRef(K8sModel):
    """A file on a PersistentVolumeClaim of the job's namespace (mounted read-only)."""

    claim_name: _Name = Field(description="Name of the PersistentVolumeClaim.")
    path: Annotated[str, Field(strict=True, min_length=1, max_length=1024)] = Field(
        description="Path of the dataset file inside the volume, e.g. train/data.jsonl.",
        pattern=r"^[^/](.*[^/])?$",
    )


class ConfigMapKeyRef(K8sModel):
    """A key of a ConfigMap of the job's namespace holding the rows as JSON Lines."""

    name: Annotated[str, Field(strict=True, min_length=1, max_length=253)] = Field(
        description="Name of the ConfigMap.", pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
    )
    key: Annotated[str, Field(strict=True, min_length=1, max_length=253)] = Field(
        description="Key of the ConfigMap holding one JSON object per line.",
        pattern=r"^[-._a-zA-Z0-9]+$",
    )


_ONE_SOURCE = XRule(
    rule="[has(self.url), has(self.persistentVolumeClaim), has(self.configMap), "
    "has(self.inline)].filter(x, x).size() == 1",
    check=lambda d: (
        sum(x is not None for x in (d.url, d.persistent_volume_claim, d.config_map, d.inline)) == 1
    ),
    describe=lambda d: "exactly one of url, persistentVolumeClaim, configMap, inline must be set",
    message="exactly one of url, persistentVolumeClaim, configMap, inline must be set",
)


class Dataset(K8sModel):
    """Where the job reads a dataset: exactly one of url, persistentVolumeClaim, configMap,
    inline. The rows of configMap and inline datasets are checked against the template's
    trainingDatasetSchemaType before the Job is created."""

    __x_rules__ = (_ONE_SOURCE,)

    url: Annotated[str, Field(strict=True, max_length=2048, pattern=URL_PATTERN)] | None = Field(
        None, description="URL the job downloads the dataset from, e.g. s3://bucket/train.jsonl."
    )
    persistent_volume_claim: PvcRef | None = Field(
        None, description="A file on a PersistentVolumeClaim, mounted read-only into the job."
    )
    config_map: ConfigMapKeyRef | None = Field(
        None, description="A ConfigMap key holding the rows as JSON Lines (small datasets)."
    )
    inline: Annotated[list[dict[str, Any]], Field(max_length=MAX_INLINE_ROWS)] | None = Field(
        None, description="The rows themselves (small datasets, at most 1000 rows)."
    )


_ONE_TARGET = XRule(
    rule="has(self.templateRef) != has(self.modelRef)",
    check=lambda s: (s.template_ref is None) != (s.model_ref is None),
    describe=lambda s: "exactly one of templateRef, modelRef must be set",
    message="exactly one of templateRef, modelRef must be set",
)


class ResourceOverrides(K8sModel):
    """Resources of this run, each at most the template's fineTuningJobBundleConfig.resources
    value (the GPU type is the bundle's)."""

    cpus: Cpus | None = Field(None, description="CPUs of the job's container.")
    memory: Memory | None = Field(None, description="Memory of the job's container.")
    storage: Storage | None = Field(None, description="Ephemeral storage of the container.")
    gpus: bounded_int(0, MAX_GPUS) | None = Field(None, description="GPUs of the container.")


class FineTuningJobSpec(K8sModel):
    """A fine-tuning run of a template's fineTuningJobBundleConfig."""

    __x_rules__ = (_ONE_TARGET,)

    template_ref: TemplateRef | None = Field(
        None, description="The ModelTemplate whose fineTuningJobBundleConfig runs."
    )
    model_ref: ModelRef | None = Field(
        None, description="A Model to fine-tune (its template's bundle runs); or templateRef."
    )
    training_dataset: Dataset = Field(description="The training dataset.")
    validation_dataset: Dataset | None = Field(None, description="The validation dataset.")
    hyperparameters: dict[str, Any] | None = Field(
        None, description="Free-form hyperparameters, passed to the job in its configuration."
    )
    resources: ResourceOverrides | None = Field(
        None, description="Lower the bundle's resources for this run (never above them)."
    )
    output: Annotated[str, Field(strict=True, max_length=2048, pattern=URL_PATTERN)] | None = Field(
        None,
        description="Where the job writes the fine-tuned weights (a URL); defaults to the "
        "operator's fineTuning.outputPrefix followed by <namespace>/<name>.",
    )
    output_model_name: _Name | None = Field(
        None, description="Name of the Model created from the template when the job succeeds."
    )
    output_weights_parameter: Annotated[
        str, Field(strict=True, max_length=128, pattern=IDENTIFIER_PATTERN)
    ] = Field(
        "model_weights_uri",
        description="Creation parameter of the output Model that receives the weights location.",
    )
    cancelled: StrictBool = Field(False, description="true stops the job (its Job is deleted).")


class FineTuningJobStatus(_StatusModel):
    """Observed state of the FineTuningJob, written by the operator."""

    observed_generation: int | None = Field(
        None, description="The metadata.generation the status was computed for.", ge=0
    )
    conditions: list[Condition] | None = Field(
        None,
        description="kstatus conditions; Ready is True once the job succeeded.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    phase: FineTuningPhase | None = Field(
        None, description="Pending, Running, Succeeded, Failed or Cancelled."
    )
    message: str | None = Field(None, description="Why the job is in its phase.")
    start_time: str | None = Field(
        None, description="When the job's pod started.", json_schema_extra={"format": "date-time"}
    )
    completion_time: str | None = Field(
        None,
        description="When the job succeeded, failed or was cancelled.",
        json_schema_extra={"format": "date-time"},
    )
    id: str | None = Field(None, description="The unique identifier of the entity.")
    created_at: str | None = Field(
        None,
        description="The date and time when the entity was created in ISO format.",
        json_schema_extra={"format": "date-time"},
    )
    template: str | None = Field(None, description="The ModelTemplate whose bundle runs.")
    base_model_id: str | None = Field(None, description="The SGP id of the base (template).")
    job_name: str | None = Field(
        None,
        description="The Kubernetes Job running the bundle; written before the Job is created. "
        "A run whose Job is gone before it finished is Failed (JobLost), never run again.",
    )
    output: str | None = Field(None, description="Where the fine-tuned weights are written.")
    output_model: str | None = Field(None, description="The Model created on success.")
    fine_tuned_model_id: str | None = Field(None, description="The SGP id of that Model.")
    output_model_error: str | None = Field(
        None, description="Why the API server refused the output Model (tried again)."
    )


class FineTuningJob(Resource):
    """A fine-tuning run of a ModelTemplate's fineTuningJobBundleConfig (SGP FineTuningJob)."""

    __x_rules__ = (_NAME_RULE,)

    api_version: Literal["launch.modelops.dev/v1alpha1"] = Field(
        API_VERSION, description="launch.modelops.dev/v1alpha1"
    )
    kind: Literal["FineTuningJob"] = Field(FINE_TUNING_JOB_KIND, description="FineTuningJob")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: FineTuningJobSpec = Field(description="What to fine-tune, on which data, how.")
    status: FineTuningJobStatus | None = Field(
        None, description="Observed state, written by the operator."
    )

    @property
    def target_name(self) -> str:
        ref = self.spec.template_ref or self.spec.model_ref
        return ref.name if ref else ""
