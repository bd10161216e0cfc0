"""The SGP model template routes (``/v4/model-templates``), as the official client calls them.

Auth: ``x-api-key`` is a Kubernetes bearer token; the account (``x-selected-account-id``, or
``account_id`` in the body or query) is the namespace. Writes go to the API server with the
caller's token; reads come from the watch cache after an access review with that token.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from ..api.convert import SGP_READ_ONLY_FIELDS
from ..api.kinds import MODEL_TEMPLATE as TEMPLATE
from ..api.validation import ManifestInvalid, parse_manifest
from ..limits import bounded, truncate
from .access import Access
from .calls import (
    Account,
    ApiKey,
    LargeBodySlot,
    Page,
    account_header,
    create_call,
    listed_account,
    token_of,
)
from .finetuning import router as fine_tuning_router
from .kubeapi import KubeAPI, KubeError
from .models import create_models_router
from .openapi import json_body, json_response, sgp_schemas, unknown_keys
from .sgp import (
    ApiError,
    creator_annotations,
    from_api_server,
    manifest_errors,
    manifest_from_request,
    validation_error,
)
from .store import Store, Watcher, entry_of
from .tasks_api import Broker, task_router

__all__ = ["create_app"]

PREFIX = "/v4/model-templates"


def create_app(kube: KubeAPI, *, access_ttl: float = 10.0, broker: Broker | None = None) -> FastAPI:
    store = Store()
    watcher = Watcher(kube, store)
    access = Access(kube, ttl=access_ttl)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        task = asyncio.create_task(watcher.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await kube.close()
            if broker is not None:
                await broker.redis.aclose()

    app = FastAPI(
        title="ModelTemplate gateway (SGP API)",
        summary="SGP /v4/model-templates served from ModelTemplate resources",
        lifespan=lifespan,
    )
    app.state.store, app.state.watcher = store, watcher
    app.state.large_body_slot = slot = LargeBodySlot()
    app.add_middleware(slot.wrap)
    _document(app)
    app.include_router(create_models_router(kube, access))

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors())
        for error in errors:  # inputs quoted, never at length
            if isinstance(error, dict) and "input" in error:
                error["input"] = truncate(error["input"])
        return JSONResponse({"detail": bounded(errors)}, status_code=422)

    async def synced() -> None:
        try:
            await asyncio.wait_for(watcher.synced.wait(), timeout=10)
        except TimeoutError:
            raise ApiError(503, "the template cache has not synced with the cluster yet") from None

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        ok = watcher.synced.is_set()
        return JSONResponse({"synced": ok, "templates": len(store)}, status_code=200 if ok else 503)

    @app.post(
        PREFIX,
        summary="Create a model template",
        openapi_extra=json_body("ModelTemplateCreate"),
        responses=json_response("ModelTemplate"),
    )
    async def create(request: Request, api_key: ApiKey = None, account: Account = None):
        token, body, namespace = await create_call(request, api_key, account, access)
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
        user = await access.username(token)
        annotations = creator_annotations(user, datetime.now(UTC))
        manifest = manifest_from_request(body, namespace, annotations)
        try:
            parse_manifest(manifest)
        except ManifestInvalid as exc:
            raise manifest_errors(exc.errors) from None
        try:
            created = await kube.request(
                "POST",
                TEMPLATE.path(namespace),
                token=token,
                body=manifest,
                query={"fieldValidation": "Strict"},
            )
        except KubeError as exc:
            raise from_api_server(exc.status, exc.body, name=body.get("name", "")) from None
        entry = store.upsert(created, only_new=True) or entry_of(created)
        return Response(entry.json, media_type="application/json")

    @app.get(
        PREFIX, summary="List model templates (paged)", responses=json_response("ModelTemplatePage")
    )
    async def list_templates(
        paging: Page,
        api_key: ApiKey = None,
        account: Account = None,
        account_id: Annotated[str | None, Query()] = None,
    ):
        token = token_of(api_key)
        namespace = listed_account(account_id, account)
        await access.require(token, namespace, "list")
        await synced()
        # The cached entries are SGP JSON already: the page is joined, not encoded again.
        page = paging.of(store.ordered(namespace))
        items = b",".join(e.json for e in page.pop("items"))
        return Response(
            b'{"items":[' + items + b"]," + orjson.dumps(page)[1:], media_type="application/json"
        )

    async def _readable(token: str, template_id: str, account: str | None, verb: str):
        await access.username(token)  # 401 for a bad key, whatever the id
        await synced()
        entry = store.get(template_id)
        not_found = f"model template {truncate(template_id, 80)!r} not found"
        if entry is None or (account and account_header(account) != entry.namespace):
            raise ApiError(404, not_found, False)
        await access.visible(token, entry.namespace, verb, not_found)
        return entry

    @app.get(
        PREFIX + "/{model_template_id}",
        summary="Get a model template",
        responses=json_response("ModelTemplate"),
    )
    async def retrieve(model_template_id: str, api_key: ApiKey = None, account: Account = None):
        entry = await _readable(token_of(api_key), model_template_id, account, "get")
        return Response(entry.json, media_type="application/json")

    @app.delete(
        PREFIX + "/{model_template_id}",
        summary="Delete a model template",
        responses=json_response("DeleteResponse"),
    )
    async def delete(model_template_id: str, api_key: ApiKey = None, account: Account = None):
        token = token_of(api_key)
        entry = await _readable(token, model_template_id, account, "get")
        options = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
            "preconditions": {"uid": entry.uid},
        }
        try:
            await kube.request(
                "DELETE", TEMPLATE.path(entry.namespace, entry.name), token=token, body=options
            )
        except KubeError as exc:
            if exc.status == 404 or (exc.status == 409 and "Precondition" in str(exc)):
                store.remove(entry.uid)
                raise ApiError(
                    404, f"model template {model_template_id!r} not found", False
                ) from None
            raise from_api_server(exc.status, exc.body) from None
        store.remove(entry.uid, tombstone=True)
        return {"count": 1, "success": True}

    app.include_router(task_router(store, access, broker, synced))
    app.include_router(fine_tuning_router(kube, access, store))
    return app


def _document(app: FastAPI) -> None:
    """``/openapi.json`` with the SGP schemas the routes declare by reference."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(sgp_schemas())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
