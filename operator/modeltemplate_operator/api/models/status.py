"""Status models of the ModelTemplate resource (written by the operator, permissive)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "IdentityType",
    "ConditionStatus",
    "Condition",
    "WorkersStatus",
    "EndpointsStatus",
    "SchedulingStatus",
    "ModelTemplateStatus",
]


class _StatusModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class IdentityType(StrEnum):
    """The type of identity that created the entity."""

    USER = "user"
    SERVICE_ACCOUNT = "service_account"


class ConditionStatus(StrEnum):
    """Status of a condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(_StatusModel):
    """A kstatus condition (Ready, Reconciling, Stalled, ...)."""

    type: str = Field(description="Type of the condition, e.g. Ready.", max_length=316)
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str | None = Field(
        None, description="Machine-readable reason in CamelCase.", max_length=1024
    )
    message: str | None = Field(None, description="Human-readable details.", max_length=32768)
    last_transition_time: str | None = Field(
        None,
        description="When the condition last changed status (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(
        None, description="The metadata.generation the condition was computed for.", ge=0
    )


class WorkersStatus(_StatusModel):
    """Worker counts of the rendered workload."""

    desired: int | None = Field(None, description="Workers the workload asks for.", ge=0)
    ready: int | None = Field(None, description="Workers that are ready.", ge=0)


class EndpointsStatus(_StatusModel):
    """In-cluster URLs of the endpoint."""

    predict: str | None = Field(None, description="URL of the predict route.")
    streaming: str | None = Field(None, description="URL of the streaming predict route.")
    health: str | None = Field(None, description="URL of the health check route.")


class SchedulingStatus(_StatusModel):
    """How the workers are scheduled (resolved GPU class)."""

    resource: str | None = Field(
        None, description="Extended resource requested for the GPUs, e.g. nvidia.com/gpu."
    )
    node_selector: dict[str, str] | None = Field(None, description="Node selector of the workers.")


class WorkloadStatus(_StatusModel):
    """What the operator writes of anything that renders a workload (a template, a model)."""

    observed_generation: int | None = Field(
        None, description="The metadata.generation the status was computed for.", ge=0
    )
    conditions: list[Condition] | None = Field(
        None,
        description="kstatus conditions; Ready is True when the workers serve.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    id: str | None = Field(None, description="The unique identifier of the entity.")
    created_at: str | None = Field(
        None,
        description="The date and time when the entity was created in ISO format.",
        json_schema_extra={"format": "date-time"},
    )
    account_id: str | None = Field(
        None, description="The ID of the account that owns the given entity."
    )
    created_by_user_id: str | None = Field(
        None, description="The user who originally created the entity."
    )
    created_by_identity_type: IdentityType | None = Field(
        None, description="The type of identity that created the entity: user or service_account."
    )
    workers: WorkersStatus | None = Field(None, description="Worker counts.")
    endpoints: EndpointsStatus | None = Field(None, description="URLs of the endpoint.")
    scheduling: SchedulingStatus | None = Field(None, description="Resolved scheduling.")


class ModelsStatus(_StatusModel):
    """The models made from a template and its rollout to them."""

    total: int | None = Field(None, description="Models made from the template.", ge=0)
    updated: int | None = Field(
        None, description="Models on the template's current generation.", ge=0
    )
    ready: int | None = Field(
        None, description="Models Ready on the template's current generation.", ge=0
    )
    outdated: list[str] | None = Field(
        None,
        description="Models not yet on the template's current generation (the first 20 names).",
        max_length=20,
    )
    rollout_blocked_by: str | None = Field(
        None,
        description="A model that failed on the current generation: the rollout waits for it.",
    )


class ModelTemplateStatus(WorkloadStatus):
    """Observed state of the ModelTemplate, written by the operator."""

    models: ModelsStatus | None = Field(
        None, description="The models made from the template (absent: none)."
    )
