"""The wire types of every route, for ``/openapi.json``: what each route answers and refuses.

Templates' shapes are generated from the CRD's models (:mod:`.openapi`); the other resources
are declared here as SGP's official client reads them (required fields required, the rest
optional, unknown keys kept). Routes declare them as ``response_model`` — answers built as
dicts are checked against them — and every route lists the errors of :data:`ERRORS`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ERRORS",
    "REQUEST_BODIES",
    "DeleteResponse",
    "ErrorResponse",
    "FineTuningJob",
    "FineTuningJobEvent",
    "ModelDeployment",
    "ModelInstance",
    "ModelUsage",
    "Page",
    "SyncTaskResult",
    "TaskCreated",
    "TaskResult",
]

IdentityType = Literal["user", "service_account"]
T = TypeVar("T")


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())


class ErrorResponse(_Wire):
    """SGP's error body: a message, or FastAPI's list of located problems for a 422."""

    detail: Any = Field(description="A message, or a list of {loc, msg, type} problems.")


#: The refusals every SGP route may answer, with what they mean here.
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No x-api-key, or the cluster refuses it."},
    403: {"model": ErrorResponse, "description": "RBAC does not allow it in that account."},
    404: {"model": ErrorResponse, "description": "Unknown, or not readable by this key."},
    409: {"model": ErrorResponse, "description": "A resource of that name already exists."},
    413: {"model": ErrorResponse, "description": "The body is over the size limit."},
    422: {"model": ErrorResponse, "description": "Invalid input: each problem names its field."},
    503: {"model": ErrorResponse, "description": "Not ready yet, or busy: retry (Retry-After)."},
}


class DeleteResponse(_Wire):
    count: int
    success: bool


class Page(_Wire, Generic[T]):
    """One page of a list: ``items`` in creation order, from page 1."""

    items: list[T]
    total_item_count: int
    current_page: int
    items_per_page: int


class _Owned(_Wire):
    id: str = Field(description="The resource's uid.")
    account_id: str = Field(description="The account: the resource's namespace.")
    created_at: datetime
    created_by_identity_type: IdentityType
    created_by_user_id: str


class ModelInstance(_Owned):
    """An SGP model: a Model resource."""

    name: str
    model_type: str
    deployment_count: int = Field(description="Deployments of the model that serve (Ready).")
    request_schema: dict[str, Any]
    response_schema: dict[str, Any]
    supports_multi_turn: bool
    model_template_id: str | None = None
    model_creation_parameters: dict[str, Any] | None = None
    model_vendor: str | None = None


class VendorConfiguration(_Wire):
    vendor: Literal["LAUNCH"] = "LAUNCH"
    min_workers: int | None = None
    max_workers: int | None = None
    per_worker: int | None = None


class ModelDeployment(_Owned):
    """An SGP model deployment: a running endpoint of a model (ModelDeployment, or the
    Model's own endpoint)."""

    name: str
    status: str = Field(description="READY, PENDING, FAILED or the reason it does not serve.")
    model_instance_id: str | None = None
    model_endpoint_id: str | None = None
    model_creation_parameters: dict[str, Any] | None = None
    vendor_configuration: VendorConfiguration | None = None
    deployment_metadata: dict[str, Any] | None = None


class FineTuningJob(_Owned):
    status: Literal["PENDING", "COMPLETED", "FAILED", "RUNNING", "CANCELED"]
    training_dataset_id: str
    base_model_id: str | None = None
    fine_tuned_model_id: str | None = None
    validation_dataset_id: str | None = None
    vendor_configuration: dict[str, Any] | None = None


class FineTuningJobEvent(_Wire):
    level: str
    message: str
    timestamp: float | None = None


class UsagePoint(_Wire):
    date: datetime
    prompt_tokens: int
    response_tokens: int
    summary_tokens: int


class ModelUsage(_Wire):
    data: list[UsagePoint]
    start_date: datetime
    end_date: datetime


class SyncTaskResult(_Wire):
    """Launch's answer to a sync task."""

    status: Literal["SUCCESS", "FAILURE"]
    result: Any = None
    traceback: str | None = None
    status_code: int | None = None


class TaskCreated(_Wire):
    task_id: str


class TaskResult(_Wire):
    task_id: str
    status: Literal["PENDING", "STARTED", "SUCCESS", "FAILURE", "UNDEFINED"]
    result: Any = None
    traceback: str | None = None
    status_code: int | None = None
    error: str | None = None


# --- request bodies (documentation: the routes read bodies themselves, under the limits) ------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ModelCreate(_Body):
    account_id: str | None = Field(None, description="The account; else x-selected-account-id.")
    name: str = Field(description="Free text; the Model's name is derived from it.")
    model_type: Literal[
        "COMPLETION", "CHAT_COMPLETION", "AGENT", "EMBEDDING", "RERANKING", "GENERIC", "BUNDLE"
    ]
    model_template_id: str = Field(description="The id of a model template of the account.")
    model_creation_parameters: dict[str, Any] | None = Field(
        None, description="Checked against the template's creation parameters schema."
    )
    model_vendor: Literal["LAUNCH"] | None = None
    display_name: str | None = None
    description: str | None = None


class FineTuningVendorConfiguration(_Body):
    vendor: Literal["LAUNCH"] | None = None
    hyperparameters: dict[str, Any] | None = None
    output: str | None = Field(None, description="Where the weights are written.")
    suffix: str | None = Field(None, description="The Model <template>-<suffix> made on success.")


class FineTuningJobCreate(_Body):
    account_id: str | None = None
    base_model_id: str = Field(description="The id of a model template of the account.")
    training_dataset_id: str = Field(
        description="A URL, pvc://<claim>/<path> or configmap://<name>/<key> (JSON Lines)."
    )
    validation_dataset_id: str | None = None
    vendor_configuration: FineTuningVendorConfiguration | None = None


class DeploymentVendorConfiguration(_Body):
    vendor: Literal["LAUNCH"] | None = None
    min_workers: int | None = Field(None, ge=0)
    max_workers: int | None = Field(None, ge=0)
    per_worker: int | None = Field(None, ge=0)


class ModelDeploymentCreate(_Body):
    name: str = Field(description="Free text; the object's name is derived from it.")
    account_id: str | None = None
    deployment_metadata: dict[str, Any] | None = None
    model_creation_parameters: dict[str, Any] | None = Field(
        None, description="Merged over the model's; checked against the template's schema."
    )
    vendor_configuration: DeploymentVendorConfiguration | None = None
    wait_for_ready: bool = Field(True, description="Answer once the endpoint is Ready.")


class ParameterBindings(_Body):
    bindings: dict[str, Any] = Field(
        description="Values of the template's request parameters (checked against its schema)."
    )


class _Generation(_Body):
    prompt: str
    stream: bool = False
    model_request_parameters: ParameterBindings | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    stop_sequences: list[str] | None = None


class ChatCompletionRequest(_Generation):
    chat_history: list[dict[str, Any]] = Field(
        description="Earlier messages ({role: user|assistant|system, content})."
    )
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None


class CompletionRequest(_Generation):
    pass


class EmbeddingRequest(_Body):
    texts: list[str]
    model_request_parameters: ParameterBindings | None = None


class RerankingRequest(_Body):
    query: str
    chunks: list[str]
    model_request_parameters: ParameterBindings | None = None


class ExecuteRequest(BaseModel):
    """The model's predict payload as it reads it; ``stream`` asks for its streaming route."""

    model_config = ConfigDict(extra="allow")
    stream: bool = False


#: Request bodies declared by name in the routes' ``openapi_extra``.
REQUEST_BODIES: tuple[type[BaseModel], ...] = (
    ModelCreate,
    ModelDeploymentCreate,
    FineTuningJobCreate,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    RerankingRequest,
    ExecuteRequest,
)
