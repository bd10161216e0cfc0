"""The ModelDeployment resource: one more running endpoint of a Model (SGP model deployment).

A Model's own endpoint is its default deployment; a ModelDeployment (``kubectl get mdep``) runs
another endpoint of the same Model with its own creation parameters (merged over the Model's)
and worker settings (SGP ``vendor_configuration``: ``min_workers``, ``max_workers``,
``per_worker``). It goes through the one plan (the Model's, with these applied), the one
renderer and the one parameter checker, and is owned by nothing but itself (deleting its Model
leaves it ``ModelMissing``, as a Model without its template).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ... import API_VERSION, MODEL_DEPLOYMENT_KIND
from .constants import MAX_PARAMETERS
from .finetuning import ModelRef
from .model import EndpointOverrides, ModelStatus
from .resource import _NAME_RULE, ObjectMeta, Resource

__all__ = ["ModelDeployment", "ModelDeploymentSpec"]


class ModelDeploymentSpec(EndpointOverrides):
    """A deployment: a Model, creation parameters over the Model's, and worker settings over
    the Model's (SGP vendor_configuration)."""

    model_ref: ModelRef = Field(description="The Model (same namespace) the deployment runs.")
    creation_parameters: dict[str, Any] | None = Field(
        None,
        max_length=MAX_PARAMETERS,
        description=(
            "Creation parameters of this deployment, merged over the Model's (SGP "
            "model_creation_parameters); checked against the template's schema with the "
            "same rules as a Model's."
        ),
    )


class ModelDeployment(Resource):
    """A running endpoint of a Model (SGP model deployment)."""

    __x_rules__ = (_NAME_RULE,)

    api_version: Literal["launch.modelops.dev/v1alpha1"] = Field(
        API_VERSION, description="launch.modelops.dev/v1alpha1"
    )
    kind: Literal["ModelDeployment"] = Field(MODEL_DEPLOYMENT_KIND, description="ModelDeployment")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ModelDeploymentSpec = Field(description="The Model, parameters and worker settings.")
    status: ModelStatus | None = Field(None, description="Observed state, written by the operator.")
