"""``/v4/model-templates``: ModelTemplate resources, as SGP's client calls them.

Writes go to the API server with the caller's token; reads come from the watch cache after an
access review with that token, and pages are joined from the cache's ready SGP JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ...api.convert import SGP_READ_ONLY_FIELDS
from ...api.kinds import MODEL_TEMPLATE
from ...api.validation import ManifestInvalid, parse_manifest
from ..caller import CallerDep
from ..calls import PageQuery
from ..openapi import json_body, json_response, unknown_keys
from ..schemas import ERRORS, DeleteResponse
from ..sgp import creator_annotations, manifest_errors, manifest_from_request, validation_error
from ..store import entry_of

__all__ = ["router"]

router = APIRouter(prefix="/v4/model-templates", tags=["model-templates"], responses=ERRORS)


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


@router.post(
    "",
    summary="Create a model template",
    openapi_extra=json_body("ModelTemplateCreate"),
    responses=json_response("ModelTemplate"),
)
async def create(request: Request, caller: CallerDep):
    body, namespace = await caller.create_body(request)
    # keys no template has, named before the models list each one (~1 kB per key)
    unknown = unknown_keys(
        {k: v for k, v in body.items() if k not in SGP_READ_ONLY_FIELDS}
        if isinstance(body, dict)
        else body,
        "ModelTemplateCreate",
    )
    if unknown:
        raise validation_error(
            [(path, f"{path} is not a field of a model template") for path in unknown]
        )
    user = await caller.access.username(caller.token)
    manifest = manifest_from_request(body, namespace, creator_annotations(user, datetime.now(UTC)))
    try:
        parse_manifest(manifest)
    except ManifestInvalid as exc:
        raise manifest_errors(exc.errors) from None
    created = await caller.create(MODEL_TEMPLATE, manifest)
    store = caller.gateway.store
    return _json((store.upsert(created, only_new=True) or entry_of(created)).json)


@router.get(
    "", summary="List model templates (paged)", responses=json_response("ModelTemplatePage")
)
async def list_templates(
    caller: CallerDep, paging: PageQuery, account_id: Annotated[str | None, Query()] = None
):
    namespaces = await caller.namespaces(MODEL_TEMPLATE, caller.listed(account_id))
    await caller.gateway.synced()
    store = caller.gateway.store
    if namespaces is None:
        entries = store.ordered(None)
    elif len(namespaces) == 1:
        entries = store.ordered(namespaces[0])
    else:
        wanted = set(namespaces)
        entries = [e for e in store.ordered(None) if e.namespace in wanted]
    # The cached entries are SGP JSON already: the page is joined, not encoded again.
    page = paging.of(entries)
    items = b",".join(e.json for e in page.pop("items"))
    return _json(b'{"items":[' + items + b"]," + orjson.dumps(page)[1:])


@router.get(
    "/{model_template_id}", summary="Get a model template", responses=json_response("ModelTemplate")
)
async def retrieve(model_template_id: str, caller: CallerDep):
    return _json((await caller.template(model_template_id)).json)


@router.delete(
    "/{model_template_id}", summary="Delete a model template", response_model=DeleteResponse
)
async def delete(model_template_id: str, caller: CallerDep):
    entry = await caller.template(model_template_id)
    return await caller.delete(MODEL_TEMPLATE, entry.namespace, entry.name, entry.uid)
