"""Inference through SGP's API: chat-completions, completions, embeddings, rerankings, a
deployment's execute, and Launch's sync and streaming tasks.

Each call names a deployment (a ModelDeployment's id, or a Model's id for its default
deployment) or, for Launch's task routes, an endpoint (``namespace/name`` of a ModelDeployment,
Model or template, or its id). The caller must be allowed to ``get`` it (the lookup is made with
the caller's token; what it may not read is a 404). The call is then served by :mod:`...serving`
on the endpoint's Service (:mod:`..endpoints`); an ASYNC deployment's ``execute`` is queued as a
task (answered with its ``task_id``, read at ``/v1/async-tasks/{task_id}``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from ...api.kinds import MODEL, MODEL_DEPLOYMENT, MODEL_REF, MODEL_TEMPLATE, TEMPLATE_REF
from ...api.parameters import ParameterSchema
from ...api.validation import (
    ManifestInvalid,
    parse_deployment_manifest,
    parse_manifest,
    parse_model_manifest,
)
from ...limits import MAX_API_BODY_BYTES
from ...plan.instantiate import apply_overrides, deployment_as_model
from ...serving import Call, ServingError, Target, serve
from ...status.conditions import conditions_by_type
from ...tasks import queue as taskqueue
from ..caller import Caller, CallerDep
from ..calls import read_json
from ..openapi import json_body
from ..schemas import ERRORS, ModelUsage, SyncTaskResult
from ..sgp import SGP_NAME_ANNOTATION, ApiError, validation_error

__all__ = ["router", "target_of"]

router = APIRouter(tags=["inference"], responses=ERRORS)
MAX_CHUNKS = 10_000

_STREAM = {200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE if stream"}}


def target_of(
    obj: dict[str, Any], model: dict[str, Any] | None, template: dict[str, Any]
) -> Target:
    """What serving needs of the endpoint of ``obj`` (a ModelDeployment, a Model, or a
    template), from its template with the Model's (and deployment's) settings applied."""
    parsed = parse_manifest(template)
    spec, params = parsed.spec, {}
    if model is not None:
        runs = parse_model_manifest(model)
        if obj is not model:
            runs = deployment_as_model(parse_deployment_manifest(obj), runs)
        spec = apply_overrides(spec, runs.spec)
        params = runs.spec.creation_parameters or {}
        model_type = str(runs.spec.model_type or spec.model_type)
    else:
        model_type = str(spec.model_type)
    ready = conditions_by_type(obj).get("Ready") or {}
    meta = obj["metadata"]
    return Target(
        namespace=meta["namespace"],
        name=meta["name"],
        protocol=str(spec.endpoint_protocol),
        model_type=model_type,
        endpoint_type=str(spec.endpoint_type),
        request_schema=ParameterSchema.from_model(spec.model_request_parameters_schema),
        model=str(params.get("model_name") or meta["name"]),
        ready=ready.get("status") == "True",
        reason=": ".join(x for x in (ready.get("reason"), ready.get("message")) if x),
    )


async def _template_of(caller: Caller, model: dict[str, Any]) -> dict[str, Any]:
    name = TEMPLATE_REF.name_in(model) or ""
    return await caller.kube(
        "GET", MODEL_TEMPLATE.path(model["metadata"]["namespace"], name), what="model template"
    )


async def _from_caches(caller: Caller, deployment_id: str) -> tuple[dict, dict, dict] | None:
    """(endpoint object, its Model, its template) from the watch caches, once the caller is
    proven to may ``get`` it (404 otherwise); None when the caches do not hold all three
    (just created: the API server is asked instead)."""
    gateway = caller.gateway
    await gateway.synced(every=True)
    obj, kind = gateway.deployments.get(deployment_id), MODEL_DEPLOYMENT
    if obj is None:
        obj, kind = gateway.models.get(deployment_id), MODEL
    if obj is None:
        return None
    namespace = obj["metadata"]["namespace"]
    not_found = caller.not_found(MODEL_DEPLOYMENT, deployment_id)
    if caller.account and caller.account != namespace:
        raise not_found
    await caller.access.visible(caller.token, namespace, "get", not_found.detail, kind)
    model = obj
    if kind is MODEL_DEPLOYMENT:
        model = gateway.models.named(namespace, (MODEL_REF.name_in(obj) or ""))
    template = model and gateway.store.named(namespace, (TEMPLATE_REF.name_in(model) or ""))
    if model is None or template is None:
        return None
    return obj, model, template.obj


def _sgp_name(obj: dict[str, Any]) -> str | None:
    return (obj["metadata"].get("annotations") or {}).get(SGP_NAME_ANNOTATION)


async def _deployment(caller: Caller, deployment_id: str) -> tuple[dict, dict | None, dict]:
    """(endpoint object, its Model, its template) for a deployment id: from the watch caches,
    else from the API server with the caller's token."""
    cached = await _from_caches(caller, deployment_id)
    if cached is not None:
        return cached
    try:
        obj = await caller.find(MODEL_DEPLOYMENT, deployment_id)
    except ApiError as exc:
        if exc.status != 404:
            raise
        model = await caller.find(MODEL, deployment_id)
        return model, model, await _template_of(caller, model)
    ref = MODEL_REF.name_in(obj) or ""
    model = await caller.kube("GET", MODEL.path(obj["metadata"]["namespace"], ref), what="model")
    return obj, model, await _template_of(caller, model)


async def _endpoint(caller: Caller, endpoint_id: str) -> tuple[dict, dict | None, dict]:
    """(endpoint object, its Model or None, its template) for Launch's ``model_endpoint_id``:
    ``namespace/name`` of a ModelDeployment, Model or template, or a deployment or template
    id."""
    if "/" not in endpoint_id:
        entry = caller.gateway.store.get(endpoint_id)
        if entry is None:
            return await _deployment(caller, endpoint_id)
        endpoint_id = f"{entry.namespace}/{entry.name}"
    namespace, _, name = endpoint_id.partition("/")
    gateway = caller.gateway
    await gateway.synced(every=True)
    for cache in (gateway.deployments, gateway.models):
        obj = cache.named(namespace, name)
        if obj is not None:
            return await _deployment(caller, obj["metadata"]["uid"])
    entry = gateway.store.named(namespace, name)
    if entry is not None:
        not_found = f"model endpoint {endpoint_id[:80]!r} not found"
        await caller.access.visible(caller.token, namespace, "get", not_found)
        return entry.obj, None, entry.obj
    for kind in (MODEL_DEPLOYMENT, MODEL, MODEL_TEMPLATE):
        try:
            obj = await caller.kube("GET", kind.path(namespace, name), what="model endpoint")
        except ApiError as exc:
            if exc.status in (403, 404):
                continue
            raise
        if kind is MODEL_TEMPLATE:
            return obj, None, obj
        if kind is MODEL:
            return obj, obj, await _template_of(caller, obj)
        return await _deployment(caller, obj["metadata"]["uid"])
    raise ApiError(404, f"model endpoint {endpoint_id[:80]!r} not found", False)


#: Targets by the versions of the objects they are made of (parsing a template takes ~1 ms).
_TARGETS: dict[tuple, Target] = {}
MAX_TARGETS = 10_000


def _target(obj: dict, model: dict | None, template: dict) -> Target:
    key = tuple(
        (o["metadata"].get("uid"), o["metadata"].get("resourceVersion"))
        for o in (obj, model or {"metadata": {}}, template)
    )
    target = _TARGETS.get(key)
    if target is None:
        try:
            target = target_of(obj, model, template)
        except ManifestInvalid:
            raise ApiError(409, "the endpoint's model or template is not valid", False) from None
        if len(_TARGETS) >= MAX_TARGETS:
            _TARGETS.clear()
        _TARGETS[key] = target
    return target


async def _serve(
    request: Request, caller: Caller, call: Call, found: tuple[dict, dict | None, dict]
):
    target = _target(*found)
    body = await read_json(request, MAX_API_BODY_BYTES)
    if not isinstance(body, dict):
        raise validation_error([("", "the body must be a JSON object")])
    gateway = caller.gateway
    if call is Call.EXECUTE and target.endpoint_type == "ASYNC":
        if gateway.broker is None:
            raise ApiError(503, "ASYNC deployments need the gateway's broker", False)
        payload = {k: v for k, v in body.items() if k != "stream"}
        task_id = await taskqueue.submit(
            gateway.broker.redis,
            target.namespace,
            target.name,
            payload,
            result_ttl_seconds=gateway.broker.result_ttl_seconds,
        )
        return {"task_id": task_id}
    url = gateway.endpoints.url(target.namespace, target.name)

    def record(status: int, seconds: float, prompt: int, response: int) -> None:
        gateway.usage.record(
            target.namespace, target.name, call.value, status, seconds, prompt, response
        )

    try:
        return await serve(call, body, target, url, gateway.endpoint_client, record)
    except ServingError as exc:
        if exc.status == 422:
            field = exc.field or ""
            raise validation_error([(field, exc.message)]) from None
        retry = exc.status in (429, 503)
        raise ApiError(exc.status, exc.message, retry, retry_after=exc.retry_after) from None


def _deployment_route(call: Call, summary: str, body: str):
    async def route(model_deployment_id: str, request: Request, caller: CallerDep):
        return await _serve(request, caller, call, await _deployment(caller, model_deployment_id))

    route.__name__ = call.name.lower().replace("_", "-")
    router.post(
        f"/v4/models/{{model_deployment_id}}/{call.value}",
        summary=summary,
        responses=_STREAM,
        openapi_extra=json_body(body),
    )(route)


_deployment_route(
    Call.CHAT, "Chat completion from a chat model's deployment", "ChatCompletionRequest"
)
_deployment_route(Call.COMPLETION, "Completion from a model's deployment", "CompletionRequest")
_deployment_route(
    Call.EMBEDDING, "Embeddings of texts from an embedding model's deployment", "EmbeddingRequest"
)
_deployment_route(
    Call.RERANKING, "Scores of chunks for a query from a reranking deployment", "RerankingRequest"
)


@router.post(
    "/v4/models/{model_instance_id}/deployments/{model_deployment_id}/execute",
    summary="Call a deployment's predict route (its stream with stream: true)",
    responses=_STREAM,
    openapi_extra=json_body("ExecuteRequest"),
)
async def execute(
    model_instance_id: str, model_deployment_id: str, request: Request, caller: CallerDep
):
    found = await _deployment(caller, model_deployment_id)
    if (found[1] or {}).get("metadata", {}).get("uid") != model_instance_id:
        raise caller.not_found(MODEL_DEPLOYMENT, model_deployment_id)
    return await _serve(request, caller, Call.EXECUTE, found)


_ENDPOINT = Annotated[str, Query(description="namespace/name of the endpoint, or its id")]


@router.post(
    "/v1/sync-tasks",
    summary="Launch: call an endpoint's predict route and wait",
    response_model=SyncTaskResult,
    openapi_extra=json_body("ExecuteRequest"),
)
async def sync_task(request: Request, caller: CallerDep, model_endpoint_id: _ENDPOINT):
    return await _serve(request, caller, Call.SYNC_TASK, await _endpoint(caller, model_endpoint_id))


@router.post(
    "/v1/streaming-tasks",
    summary="Launch: call an endpoint's streaming route (SSE)",
    responses=_STREAM,
    openapi_extra=json_body("ExecuteRequest"),
)
async def streaming_task(request: Request, caller: CallerDep, model_endpoint_id: _ENDPOINT):
    return await _serve(
        request, caller, Call.STREAMING_TASK, await _endpoint(caller, model_endpoint_id)
    )


# --- usage statistics -------------------------------------------------------------------------


def _usage(caller: Caller, endpoints: list[str], start: datetime, end: datetime, chunks: int):
    if chunks < 1 or chunks > MAX_CHUNKS:
        raise validation_error([("chunks", f"chunks must be 1..{MAX_CHUNKS}")], where="query")
    if end <= start:
        raise validation_error([("end_date", "end_date must be after start_date")], where="query")
    data = caller.gateway.usage.series(endpoints, start, end, chunks)
    return {"data": data, "start_date": start.isoformat(), "end_date": end.isoformat()}


Chunks = Annotated[int, Query(description="Data points between the two dates")]
StartDate = Annotated[datetime, Query(description="The start of the period (ISO 8601)")]
EndDate = Annotated[datetime, Query(description="The end of the period (ISO 8601)")]


@router.get(
    "/v4/models/{model_name}/usage-statistics",
    summary="Tokens a model's deployments reported, through this gateway replica",
    response_model=ModelUsage,
)
async def model_usage(
    model_name: str,
    caller: CallerDep,
    chunks: Chunks,
    start_date: StartDate,
    end_date: EndDate,
):
    gateway = caller.gateway
    await gateway.synced(every=True)
    not_found = caller.not_found(MODEL, model_name)
    candidates = [
        m
        for m in gateway.models.all()
        if model_name in (m["metadata"]["name"], _sgp_name(m))
        and caller.account in (None, m["metadata"]["namespace"])
    ]
    for model in candidates:
        namespace = model["metadata"]["namespace"]
        if await caller.access.allowed(caller.token, namespace, "get", MODEL):
            own = model["metadata"]["name"]
            names = [own] + [
                d["metadata"]["name"]
                for d in gateway.deployments.all()
                if d["metadata"]["namespace"] == namespace and MODEL_REF.name_in(d) == own
            ]
            endpoints = [f"{namespace}/{name}" for name in names]
            return _usage(caller, endpoints, start_date, end_date, chunks)
    raise not_found


@router.get(
    "/v4/model-deployments/{model_deployment_id}/usage-statistics",
    summary="Tokens a deployment reported, through this gateway replica",
    response_model=ModelUsage,
)
async def deployment_usage(
    model_deployment_id: str,
    caller: CallerDep,
    chunks: Chunks,
    start_date: StartDate,
    end_date: EndDate,
):
    obj, _, _ = await _deployment(caller, model_deployment_id)
    meta = obj["metadata"]
    endpoint = f"{meta['namespace']}/{meta['name']}"
    return _usage(caller, [endpoint], start_date, end_date, chunks)
