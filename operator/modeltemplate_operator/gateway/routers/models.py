"""The SGP model routes (``/v4/models``) on Model resources, as the official client calls them.

A model is a Model resource in the account's namespace; its id is the Model's uid and its
``model_template_id`` the uid of the template it names (the one key mapping:
:func:`..convert.model_manifest_from_sgp` / :func:`..convert.model_manifest_to_sgp`).

Every call to the API server is made with the caller's token (reads included: RBAC and the
audit log see the caller). A create is checked before anything is written: the body's shape,
the Model's schema (the CRD's rules) and the creation parameters against the template's
schema with the one checker (:func:`..instantiate.check_model`); each problem is a 422 naming
the SGP field (``model_creation_parameters.tensor_parallel_size``). Lists are ordered by
creation time (microseconds when the gateway created the model), then id, so pages are stable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from ...api.convert import (
    MODEL_SGP_ANNOTATIONS,
    MODEL_UNSUPPORTED_FIELDS,
    MODEL_VENDOR,
    model_manifest_from_sgp,
    model_manifest_to_sgp,
    sgp_model_path,
)
from ...api.kinds import MODEL, MODEL_DEPLOYMENT, MODEL_REF, MODEL_TEMPLATE, TEMPLATE_REF
from ...api.models import ModelType
from ...api.validation import ManifestInvalid, parse_manifest, parse_model_manifest
from ...limits import truncate
from ...observed import CREATED_BY_TYPE_ANNOTATION, CREATED_BY_USER_ANNOTATION
from ...plan.instantiate import check_model
from ...status.conditions import conditions_by_type
from ..caller import Caller, CallerDep
from ..calls import PageQuery
from ..openapi import MAX_UNKNOWN_KEYS, json_body
from ..schemas import ERRORS, DeleteResponse, ModelInstance, Page
from ..sgp import (
    IDENTITY_TYPES,
    SGP_NAME_ANNOTATION,
    creator_annotations,
    message_path,
    object_name,
    order_key,
    validation_error,
)

__all__ = ["PREFIX", "router", "model_to_sgp", "model_create_problems"]

PREFIX = "/v4/models"
#: Fields of a create body the gateway reads (the rest of the client's fields are refused).
CREATE_FIELDS = (
    "account_id",
    "name",
    "model_type",
    "model_template_id",
    "model_creation_parameters",
    "model_vendor",
    *MODEL_SGP_ANNOTATIONS,
)
MODEL_TYPES = tuple(t.value for t in ModelType)


# --- pure parts -------------------------------------------------------------------------------


def model_create_problems(body: Any) -> list[tuple[str, str]]:
    """Problems of the shape of a create body, as (SGP path, message); empty when it can be
    turned into a Model manifest."""
    if not isinstance(body, dict):
        return [("", "the body must be a JSON object")]
    problems: list[tuple[str, str]] = []
    for key in body:
        if len(problems) >= MAX_UNKNOWN_KEYS:
            break  # named up to a bound, never one by one at any length
        shown = truncate(key)
        if key in MODEL_UNSUPPORTED_FIELDS:
            problems.append((key, f"{key} is not supported: a model here is made from a template"))
        elif key not in CREATE_FIELDS:
            problems.append((shown, f"{shown} is not a field of a model"))
    for key in ("name", "model_template_id"):
        if not isinstance(body.get(key), str) or not body[key]:
            problems.append((key, f"{key} is required (a non-empty string)"))
    model_type = body.get("model_type")
    if model_type not in MODEL_TYPES:
        problems.append(
            (
                "model_type",
                f"model_type ({truncate(model_type)}) must be one of {', '.join(MODEL_TYPES)}",
            )
        )
    vendor = body.get("model_vendor")
    if vendor is not None and vendor != MODEL_VENDOR:
        problems.append(
            (
                "model_vendor",
                f"model_vendor ({truncate(vendor)}) must be {MODEL_VENDOR} (or left out)",
            )
        )
    params = body.get("model_creation_parameters")
    if params is not None and not isinstance(params, dict):
        problems.append(
            ("model_creation_parameters", "model_creation_parameters must be an object")
        )
    for key in MODEL_SGP_ANNOTATIONS:
        if body.get(key) is not None and not isinstance(body[key], str):
            problems.append((key, f"{key} must be a string"))
    return problems


def is_ready(obj: dict[str, Any]) -> bool:
    return conditions_by_type(obj).get("Ready", {}).get("status") == "True"


def _model_message(message: str) -> tuple[str, str]:
    """A Model validation message (manifest paths) as (SGP path, message in SGP terms)."""
    path = message_path(message)
    if not path:
        return "", message
    sgp = sgp_model_path(path)
    return sgp, sgp + message[len(path) :]


def model_to_sgp(
    obj: dict[str, Any], template: dict[str, Any] | None, deployments: int = 0
) -> dict[str, Any]:
    """A Model object (as the API server returns it) as an SGP model, with every field the
    official client's ``ModelInstance`` requires. ``template``: the ModelTemplate it names
    (None when it is gone: ``model_template_id`` is then null); ``deployments``: its
    ModelDeployments that serve."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    template_id = ((template or {}).get("metadata") or {}).get("uid")
    template_type = ((template or {}).get("spec") or {}).get("modelType")
    sgp = model_manifest_to_sgp(obj, template_id=template_id, template_model_type=template_type)
    sgp["name"] = annotations.get(SGP_NAME_ANNOTATION) or sgp.get("name")
    if sgp.get("model_type") not in MODEL_TYPES:
        sgp["model_type"] = "GENERIC"  # neither the model nor a template says
    identity = annotations.get(CREATED_BY_TYPE_ANNOTATION)
    ready = is_ready(obj)
    sgp.update(
        created_by_user_id=annotations.get(CREATED_BY_USER_ANNOTATION, ""),
        created_by_identity_type=identity if identity in IDENTITY_TYPES else "user",
        # Its own endpoint (its default deployment) and its ModelDeployments, once they serve.
        deployment_count=(1 if ready else 0) + deployments,
        request_schema={},
        response_schema={},
        supports_multi_turn=False,
    )
    return sgp


# --- routes ---------------------------------------------------------------------------------

router = APIRouter(prefix=PREFIX, tags=["models"], responses=ERRORS)


async def templates_by_name(caller: Caller, namespaces: list[str] | None) -> dict[tuple, dict]:
    return {
        (t["metadata"]["namespace"], t["metadata"]["name"]): t
        for t in await caller.list(MODEL_TEMPLATE, namespaces)
    }


async def serving_deployments(caller: Caller, namespaces: list[str] | None) -> dict[tuple, int]:
    """(namespace, model name) -> its ModelDeployments that are Ready."""
    counts: dict[tuple, int] = {}
    for obj in await caller.list(MODEL_DEPLOYMENT, namespaces):
        ref = MODEL_REF.name_in(obj) or ""
        if is_ready(obj):
            key = (obj["metadata"]["namespace"], ref)
            counts[key] = counts.get(key, 0) + 1
    return counts


def _key(model: dict) -> tuple[str, str]:
    return model["metadata"]["namespace"], model["metadata"]["name"]


def template_of(model: dict, templates: dict[tuple, dict]) -> dict | None:
    meta = model.get("metadata") or {}
    ref = TEMPLATE_REF.name_in(model) or ""
    return templates.get((meta.get("namespace"), ref))


@router.post(
    "",
    summary="Create a model from a model template",
    response_model=ModelInstance,
    openapi_extra=json_body("ModelCreate"),
)
async def create(request: Request, caller: CallerDep):
    body, namespace = await caller.create_body(request)
    problems = model_create_problems(body)
    if problems:
        raise validation_error(problems)
    user = await caller.access.username(caller.token)
    template_id = body["model_template_id"]
    templates = await caller.list(MODEL_TEMPLATE, [namespace])
    template = next((t for t in templates if t["metadata"].get("uid") == template_id), None)
    if template is None:
        raise validation_error(
            [
                (
                    "model_template_id",
                    f"model_template_id ({truncate(template_id)}) names no model template "
                    f"in account {namespace!r}",
                )
            ]
        )
    manifest = model_manifest_from_sgp(
        body, template_name=template["metadata"]["name"], namespace=namespace
    )
    metadata = manifest["metadata"]
    annotations = metadata.setdefault("annotations", {})
    annotations.update(creator_annotations(user, datetime.now(UTC)))
    name, generate = object_name(body["name"])
    checked = manifest
    if generate:  # free text: kept as given, the object named from it (unique)
        annotations[SGP_NAME_ANNOTATION] = body["name"]
        del metadata["name"]
        metadata["generateName"] = generate
        checked = {**manifest, "metadata": {**metadata, "name": f"{generate}x"}}
    try:
        model = parse_model_manifest(checked)
    except ManifestInvalid as exc:
        raise validation_error([_model_message(m) for m in exc.errors]) from None
    try:
        parsed_template = parse_manifest(template)
    except ManifestInvalid:
        raise validation_error(
            [("model_template_id", f"model template {template_id} is not valid")]
        ) from None
    problems = [
        (sgp_model_path(p["field"]), f"{sgp_model_path(p['field'])}: {p['problem']}")
        for p in check_model(model, parsed_template)
    ]
    if problems:
        raise validation_error(problems)
    return model_to_sgp(await caller.create(MODEL, manifest), template)


@router.get("", summary="List models (paged)", response_model=Page[ModelInstance])
async def list_models(
    caller: CallerDep,
    paging: PageQuery,
    account_id: Annotated[str | None, Query()] = None,
    model_type: Annotated[str | None, Query()] = None,
):
    namespaces = await caller.namespaces(MODEL, caller.listed(account_id))
    models = await caller.list(MODEL, namespaces)
    templates = await templates_by_name(caller, namespaces)
    counts = await serving_deployments(caller, namespaces)
    items = [model_to_sgp(m, template_of(m, templates), counts.get(_key(m), 0)) for m in models]
    if model_type:
        items = [i for i in items if i["model_type"] == model_type]
    keys = {m["metadata"]["uid"]: order_key(m) for m in models}
    items.sort(key=lambda i: keys[i["id"]])
    return paging.of(items)


@router.get("/{model_id}", summary="Get a model", response_model=ModelInstance)
async def retrieve(model_id: str, caller: CallerDep):
    model = await caller.find(MODEL, model_id)
    namespaces = [model["metadata"]["namespace"]]
    templates = await templates_by_name(caller, namespaces)
    counts = await serving_deployments(caller, namespaces)
    return model_to_sgp(model, template_of(model, templates), counts.get(_key(model), 0))


@router.delete("/{model_id}", summary="Delete a model", response_model=DeleteResponse)
async def delete(model_id: str, caller: CallerDep):
    meta = (await caller.find(MODEL, model_id))["metadata"]
    return await caller.delete(MODEL, meta["namespace"], meta["name"], meta["uid"])
