"""The Model resource: one model made from a ModelTemplate with its creation parameters.

A Model names a template in its namespace (``spec.templateRef.name``), carries the values of the
template's ``modelCreationParametersSchema`` (``spec.creationParameters``, a free-form object
checked against that schema by :mod:`modeltemplate_operator.api.parameters`) and may override the few
endpoint settings a team legitimately varies per model: ``minWorkers``, ``maxWorkers``,
``perWorker`` and ``highPriority``. Everything else comes from the template.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictBool

from ... import API_VERSION, MODEL_KIND, MODEL_PLURAL
from .constants import MAX_PARAMETERS, MAX_WORKERS_LIMIT
from .enums import ModelType
from .fields import bounded_int
from .resource import _NAME_RULE, NAME_MAX_LENGTH, NAME_PATTERN, ObjectMeta, Resource
from .rules import K8sModel, XRule
from .status import WorkloadStatus

__all__ = [
    "MODEL_KIND",
    "MODEL_PLURAL",
    "Model",
    "ModelSpec",
    "ModelStatus",
    "TemplateRef",
]


class TemplateRef(K8sModel):
    """The ModelTemplate (same namespace) the model is made from."""

    name: str = Field(
        description="Name of a ModelTemplate in the model's namespace.",
        min_length=1,
        max_length=NAME_MAX_LENGTH,
        pattern=NAME_PATTERN,
    )


_WORKERS_ORDERED = XRule(
    rule="!has(self.minWorkers) || !has(self.maxWorkers) || self.minWorkers <= self.maxWorkers",
    check=lambda s: (
        s.min_workers is None or s.max_workers is None or s.min_workers <= s.max_workers
    ),
    describe=lambda s: (
        f"spec.minWorkers ({s.min_workers}) must be <= spec.maxWorkers ({s.max_workers})"
    ),
    message="spec.minWorkers must be <= spec.maxWorkers",
    field_path=".minWorkers",
)


class EndpointOverrides(K8sModel):
    """The endpoint settings a model (or a deployment of it) may set over what it runs."""

    __x_rules__ = (_WORKERS_ORDERED,)

    min_workers: bounded_int(0, MAX_WORKERS_LIMIT) | None = Field(
        None, description="Overrides endpointConfig.minWorkers."
    )
    max_workers: bounded_int(0, MAX_WORKERS_LIMIT) | None = Field(
        None, description="Overrides endpointConfig.maxWorkers."
    )
    per_worker: bounded_int(1, 100000) | None = Field(
        None, description="Overrides endpointConfig.perWorker."
    )
    high_priority: StrictBool | None = Field(
        None, description="Overrides endpointConfig.highPriority."
    )


class ModelSpec(EndpointOverrides):
    """A model: a template, the values of its creation parameters and a few overrides (of the
    template's endpointConfig)."""

    template_ref: TemplateRef = Field(description="The ModelTemplate the model is made from.")
    creation_parameters: dict[str, Any] | None = Field(
        None,
        max_length=MAX_PARAMETERS,
        description=(
            "Values of the template's modelCreationParametersSchema (SGP "
            "model_creation_parameters), checked against that schema: each required parameter "
            "present, each value of its declared type (str, int, float, bool, list, dict). Each "
            "reaches the main container as MODEL_PARAM_<NAME> (the parameter name upper-cased, "
            "characters other than A-Z, 0-9 and _ turned into _; list and dict values "
            "JSON-encoded) and the whole object as JSON in MODEL_PARAMS; $(MODEL_PARAM_<NAME>) "
            "in the template's command is expanded by Kubernetes. At most 64 parameters; each "
            "value nested at most 32 levels, and as env at most 32,000 characters without NUL, "
            "as the whole object in MODEL_PARAMS."
        ),
    )
    model_type: ModelType | None = Field(
        None,
        description=(
            "The model type; defaults to the template's modelType. A value different from the "
            "template's is an error."
        ),
    )


class ModelStatus(WorkloadStatus):
    """Observed state of the Model, written by the operator."""

    model_template_id: str | None = Field(
        None, description="The SGP id of the template the model is made from."
    )
    endpoint_url: str | None = Field(None, description="In-cluster URL of the predict route.")
    template_generation: int | None = Field(
        None, description="The metadata.generation of the template the model runs.", ge=0
    )


class Model(Resource):
    """A model made from a ModelTemplate with its creation parameters (SGP Model)."""

    __x_rules__ = (_NAME_RULE,)

    api_version: Literal["launch.modelops.dev/v1alpha1"] = Field(
        API_VERSION, description="launch.modelops.dev/v1alpha1"
    )
    kind: Literal["Model"] = Field(MODEL_KIND, description="Model")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ModelSpec = Field(description="The model: template, creation parameters, overrides.")
    status: ModelStatus | None = Field(None, description="Observed state, written by the operator.")
