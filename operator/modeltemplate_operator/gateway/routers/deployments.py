"""SGP model deployments (``/v4/models/{model_instance_id}/deployments``, ``/v4/model-deployments``).

A deployment is a running endpoint of a model. Every Model runs one endpoint of its own: that
is its **default deployment** (id: the Model's id, name: the Model's), listed first, changed
and deleted only with the Model (as SGP's automatic deployments of built-in models are
immutable). ``create`` makes a ``ModelDeployment`` (``kubectl get mdep``) that runs one more
endpoint of the Model with its own creation parameters (merged over the Model's, checked by the
one checker against the template's schema) and worker settings (``vendor_configuration``:
``min_workers``, ``max_workers``, ``per_worker``).

SGP names are free text: the caller's name is kept in an annotation and the object's name is
derived from it (the name itself when it is a DNS label, else its DNS-safe form with a suffix
the API server makes unique). ``wait_for_ready`` (default true) makes create and update wait
for the Ready condition, up to :data:`READY_WAIT_SECONDS`, then answer with the state reached.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from ... import API_VERSION, MODEL_DEPLOYMENT_KIND
from ...api.kinds import MODEL, MODEL_DEPLOYMENT, MODEL_REF, MODEL_TEMPLATE, TEMPLATE_REF
from ...api.validation import (
    ManifestInvalid,
    parse_deployment_manifest,
    parse_manifest,
    parse_model_manifest,
)
from ...limits import truncate
from ...observed import CREATED_BY_TYPE_ANNOTATION, CREATED_BY_USER_ANNOTATION
from ...plan.instantiate import check_model, deployment_as_model
from ...status.conditions import conditions_by_type
from ..caller import Caller, CallerDep
from ..calls import PageQuery, read_json
from ..openapi import json_body
from ..schemas import ERRORS, DeleteResponse, ModelDeployment, Page
from ..sgp import (
    IDENTITY_TYPES,
    SGP_NAME_ANNOTATION,
    ApiError,
    creator_annotations,
    object_name,
    order_key,
    validation_error,
)

__all__ = ["deployment_to_sgp", "deployment_problems", "router"]

#: ``deployment_metadata``, kept as JSON.
METADATA_ANNOTATION = "launch.modelops.dev/deployment-metadata"
#: The most ``wait_for_ready`` waits (SGP's client times out after 60 s by default).
READY_WAIT_SECONDS = 50.0
READY_POLL_SECONDS = 0.5
MAX_METADATA_BYTES = 8192
VENDOR_FIELDS = {
    "min_workers": "minWorkers",
    "max_workers": "maxWorkers",
    "per_worker": "perWorker",
}
BODY_FIELDS = (
    "name",
    "account_id",
    "deployment_metadata",
    "model_creation_parameters",
    "vendor_configuration",
    "wait_for_ready",
)

router = APIRouter(prefix="/v4", tags=["model-deployments"], responses=ERRORS)


# --- pure parts -------------------------------------------------------------------------------


def deployment_problems(body: Any, *, create: bool) -> list[tuple[str, str]]:
    """Problems of the shape of a create (or update) body, as (SGP path, message)."""
    if not isinstance(body, dict):
        return [("", "the body must be a JSON object")]
    problems = [
        (truncate(k), f"{truncate(k)} is not a field of a model deployment")
        for k in list(body)[:100]
        if k not in BODY_FIELDS and k != "model_instance_id"
    ]
    name = body.get("name")
    if (create or name is not None) and (not isinstance(name, str) or not name.strip()):
        problems.append(("name", "name is required (a non-empty string)"))
    elif isinstance(name, str) and len(name) > 253:
        problems.append(("name", "name must have at most 253 characters"))
    for key in ("model_creation_parameters", "deployment_metadata", "vendor_configuration"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            problems.append((key, f"{key} must be an object"))
    metadata = body.get("deployment_metadata")
    if isinstance(metadata, dict) and len(json.dumps(metadata)) > MAX_METADATA_BYTES:
        problems.append(
            ("deployment_metadata", f"deployment_metadata must be at most {MAX_METADATA_BYTES} B")
        )
    vendor = body.get("vendor_configuration")
    if isinstance(vendor, dict):
        for key, value in vendor.items():
            where = f"vendor_configuration.{truncate(key)}"
            if key == "vendor":
                if value not in (None, "LAUNCH"):
                    problems.append((where, f"{where} ({truncate(value)}) must be LAUNCH"))
            elif key not in VENDOR_FIELDS:
                problems.append((where, f"{where} is not a setting of a Launch deployment"))
            elif value is not None and (type(value) is not int or value < 0):
                problems.append((where, f"{where} ({truncate(value)}) must be an integer >= 0"))
    wait = body.get("wait_for_ready")
    if wait is not None and not isinstance(wait, bool):
        problems.append(("wait_for_ready", "wait_for_ready must be true or false"))
    return problems


def _spec_changes(body: dict[str, Any]) -> dict[str, Any]:
    """The ModelDeployment spec fields a body sets."""
    spec: dict[str, Any] = {}
    if body.get("model_creation_parameters") is not None:
        spec["creationParameters"] = body["model_creation_parameters"]
    for sgp, field in VENDOR_FIELDS.items():
        value = (body.get("vendor_configuration") or {}).get(sgp)
        if value is not None:
            spec[field] = value
    return spec


def _ready(obj: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """SGP's status of an endpoint (READY, PENDING, FAILED) and what status says of it."""
    conditions = conditions_by_type(obj)
    ready, stalled = conditions.get("Ready") or {}, conditions.get("Stalled") or {}
    if ready.get("status") == "True":
        state = "READY"
    elif stalled.get("status") == "True":
        state = "FAILED"
    else:
        state = "PENDING"
    said = {"reason": ready.get("reason"), "message": truncate(ready.get("message") or "", 500)}
    return state, {k: v for k, v in said.items() if v}


def deployment_to_sgp(obj: dict[str, Any], model: dict[str, Any] | None) -> dict[str, Any]:
    """A ModelDeployment — or a Model, as its default deployment — as SGP's model deployment."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    spec = obj.get("spec") or {}
    state, said = _ready(obj)
    identity = annotations.get(CREATED_BY_TYPE_ANNOTATION)
    vendor = {"vendor": "LAUNCH"}
    vendor.update({sgp: spec[f] for sgp, f in VENDOR_FIELDS.items() if spec.get(f) is not None})
    try:
        metadata = json.loads(annotations.get(METADATA_ANNOTATION) or "{}")
    except ValueError:
        metadata = {}
    default = obj.get("kind") != MODEL_DEPLOYMENT_KIND
    return {
        "id": meta.get("uid"),
        "account_id": meta.get("namespace"),
        "created_at": meta.get("creationTimestamp"),
        "created_by_identity_type": identity if identity in IDENTITY_TYPES else "user",
        "created_by_user_id": annotations.get(CREATED_BY_USER_ANNOTATION, ""),
        "name": annotations.get(SGP_NAME_ANNOTATION) or meta.get("name"),
        "status": state,
        "model_instance_id": ((model or {}).get("metadata") or {}).get("uid"),
        "model_endpoint_id": f"{meta.get('namespace')}/{meta.get('name')}",
        "model_creation_parameters": spec.get("creationParameters"),
        "vendor_configuration": vendor,
        "deployment_metadata": {**metadata, **said, "default": default},
    }


# --- routes -----------------------------------------------------------------------------------


def _model_name(model: dict[str, Any]) -> str:
    return model["metadata"]["name"]


async def _deployments_of(caller: Caller, models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each model's default deployment, then its ModelDeployments, as SGP deployments."""
    namespaces = sorted({m["metadata"]["namespace"] for m in models})
    by_model = {(m["metadata"]["namespace"], _model_name(m)): m for m in models}
    extra = await caller.list(MODEL_DEPLOYMENT, namespaces) if namespaces else []
    items = [(order_key(m), deployment_to_sgp(m, m)) for m in models]
    for obj in extra:
        ref = MODEL_REF.name_in(obj) or ""
        model = by_model.get((obj["metadata"]["namespace"], ref))
        if model is not None:
            items.append((order_key(obj), deployment_to_sgp(obj, model)))
    return [sgp for _, sgp in sorted(items, key=lambda pair: pair[0])]


async def _find(caller: Caller, model_id: str, deployment_id: str) -> tuple[dict, dict]:
    """(model, deployment object) — the deployment is the Model itself for its default one."""
    model = await caller.find(MODEL, model_id)
    if deployment_id == model_id:
        return model, model
    obj = await caller.find(MODEL_DEPLOYMENT, deployment_id)
    ref = MODEL_REF.name_in(obj) or ""
    if (obj["metadata"]["namespace"], ref) != (model["metadata"]["namespace"], _model_name(model)):
        raise caller.not_found(MODEL_DEPLOYMENT, deployment_id)
    return model, obj


async def _check(caller: Caller, manifest: dict[str, Any], model: dict[str, Any]) -> None:
    """The deployment's schema and its parameters against the template (the one checker)."""
    try:
        deployment = parse_deployment_manifest(manifest)
    except ManifestInvalid as exc:
        raise validation_error([("", m) for m in exc.errors]) from None
    namespace = model["metadata"]["namespace"]
    template_name = TEMPLATE_REF.name_in(model) or ""
    template = await caller.kube(
        "GET", MODEL_TEMPLATE.path(namespace, template_name), what="model template"
    )
    try:
        runs = deployment_as_model(deployment, parse_model_manifest(model))
        problems = check_model(runs, parse_manifest(template))
    except ManifestInvalid:
        raise ApiError(409, f"model {_model_name(model)!r} or its template is not valid") from None
    names = {
        "spec.creationParameters": "model_creation_parameters",
        **{f"spec.{f}": f"vendor_configuration.{s}" for s, f in VENDOR_FIELDS.items()},
    }
    located = []
    for p in problems:
        field = p["field"]
        for ours, sgp in names.items():
            if field.startswith(ours):
                field = sgp + field[len(ours) :]
                break
        located.append((field, f"{field}: {p['problem']}"))
    if located:
        raise validation_error(located)


def _settling(obj: dict[str, Any]) -> bool:
    """Not Ready and not failed yet, or its status not yet of its latest spec."""
    observed = (obj.get("status") or {}).get("observedGeneration") or 0
    return _ready(obj)[0] == "PENDING" or observed < obj["metadata"].get("generation", 0)


async def _wait_ready(caller: Caller, obj: dict[str, Any], wait: bool) -> dict[str, Any]:
    """``obj`` again once Ready or failed (or when :data:`READY_WAIT_SECONDS` have passed)."""
    if not wait:
        return obj
    meta = obj["metadata"]
    path = MODEL_DEPLOYMENT.path(meta["namespace"], meta["name"])
    deadline = time.monotonic() + READY_WAIT_SECONDS
    while _settling(obj) and time.monotonic() < deadline:
        await asyncio.sleep(READY_POLL_SECONDS)
        obj = await caller.kube("GET", path, what="model deployment")
    return obj


@router.post(
    "/models/{model_instance_id}/deployments",
    summary="Deploy a model: one more endpoint with its own parameters and workers",
    response_model=ModelDeployment,
    openapi_extra=json_body("ModelDeploymentCreate"),
)
async def create(model_instance_id: str, request: Request, caller: CallerDep):
    body, namespace = await caller.create_body(request)
    problems = deployment_problems(body, create=True)
    if problems:
        raise validation_error(problems)
    model = await caller.find(MODEL, model_instance_id)
    if model["metadata"]["namespace"] != namespace:
        raise validation_error(
            [("account_id", f"model {model_instance_id!r} is not in account {namespace!r}")]
        )
    user = await caller.access.username(caller.token)
    annotations = creator_annotations(user, datetime.now(UTC))
    annotations[SGP_NAME_ANNOTATION] = body["name"]
    if body.get("deployment_metadata"):
        annotations[METADATA_ANNOTATION] = json.dumps(body["deployment_metadata"])
    name, generate = object_name(body["name"])
    metadata: dict[str, Any] = {"namespace": namespace, "annotations": annotations}
    metadata.update({"name": name} if name else {"generateName": generate})
    manifest = {
        "apiVersion": API_VERSION,
        "kind": MODEL_DEPLOYMENT_KIND,
        "metadata": metadata,
        "spec": {"modelRef": {"name": _model_name(model)}, **_spec_changes(body)},
    }
    # checked under a name of the form the API server will complete a generateName to
    checked = {**manifest, "metadata": {**metadata, "name": name or f"{generate}x"}}
    await _check(caller, checked, model)
    created = await caller.create(MODEL_DEPLOYMENT, manifest)
    created = await _wait_ready(caller, created, body.get("wait_for_ready", True))
    return deployment_to_sgp(created, model)


@router.get(
    "/models/{model_instance_id}/deployments",
    summary="List a model's deployments (paged; its default deployment first)",
    response_model=Page[ModelDeployment],
)
async def list_deployments(model_instance_id: str, caller: CallerDep, paging: PageQuery):
    model = await caller.find(MODEL, model_instance_id)
    return paging.of(await _deployments_of(caller, [model]))


@router.get(
    "/model-deployments",
    summary="List the deployments of every model (paged)",
    response_model=Page[ModelDeployment],
)
async def list_all(
    caller: CallerDep, paging: PageQuery, account_id: Annotated[str | None, Query()] = None
):
    namespaces = await caller.namespaces(MODEL, caller.listed(account_id))
    return paging.of(await _deployments_of(caller, await caller.list(MODEL, namespaces)))


@router.get(
    "/models/{model_instance_id}/deployments/{deployment_id}",
    summary="Get a deployment",
    response_model=ModelDeployment,
)
async def retrieve(model_instance_id: str, deployment_id: str, caller: CallerDep):
    model, obj = await _find(caller, model_instance_id, deployment_id)
    return deployment_to_sgp(obj, model)


def _immutable(model: dict[str, Any]) -> ApiError:
    return ApiError(
        409,
        f"the default deployment of model {_model_name(model)!r} is the model's own endpoint: "
        "change or delete the model instead",
        False,
    )


@router.patch(
    "/models/{model_instance_id}/deployments/{deployment_id}",
    summary="Change a deployment's name, parameters or workers (it rolls)",
    response_model=ModelDeployment,
)
async def update(model_instance_id: str, deployment_id: str, request: Request, caller: CallerDep):
    body = await read_json(request)
    problems = deployment_problems(body, create=False)
    if problems:
        raise validation_error(problems)
    model, obj = await _find(caller, model_instance_id, deployment_id)
    if obj is model:
        raise _immutable(model)
    meta = obj["metadata"]
    spec = {**obj["spec"], **_spec_changes(body)}
    if body.get("model_creation_parameters") is not None:
        spec["creationParameters"] = body["model_creation_parameters"]  # replaced, not merged
    annotations = dict(meta.get("annotations") or {})
    if body.get("name"):
        annotations[SGP_NAME_ANNOTATION] = body["name"]
    if body.get("deployment_metadata") is not None:
        annotations[METADATA_ANNOTATION] = json.dumps(body["deployment_metadata"])
    changed = {**obj, "metadata": {**meta, "annotations": annotations}, "spec": spec}
    await _check(caller, changed, model)
    updated = await caller.kube(
        "PUT",
        MODEL_DEPLOYMENT.path(meta["namespace"], meta["name"]),
        what="model deployment",
        body=changed,
        query={"fieldValidation": "Strict"},
    )
    updated = await _wait_ready(caller, updated, body.get("wait_for_ready", True))
    return deployment_to_sgp(updated, model)


@router.delete(
    "/models/{model_instance_id}/deployments/{deployment_id}",
    summary="Delete a deployment (its endpoint stops)",
    response_model=DeleteResponse,
)
async def delete(model_instance_id: str, deployment_id: str, caller: CallerDep):
    model, obj = await _find(caller, model_instance_id, deployment_id)
    if obj is model:
        raise _immutable(model)
    meta = obj["metadata"]
    return await caller.delete(MODEL_DEPLOYMENT, meta["namespace"], meta["name"], meta["uid"])
