"""The gateway's FastAPI application: the shared state, the routers, the error shapes and
``/openapi.json``.

Auth: ``x-api-key`` is a Kubernetes bearer token; the account (``x-selected-account-id``, or
``account_id`` in the body or query) is the namespace. What each route does is in its router
(:mod:`.routers`); how every route reaches resources is :mod:`.caller`.
"""

from __future__ import annotations

import asyncio
import contextlib
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..limits import bounded, truncate
from .access import Access
from .caller import Gateway
from .calls import LargeBodySlot
from .endpoints import Endpoints
from .kubeapi import KubeAPI
from .metrics import GatewayMetrics
from .openapi import sgp_schemas
from .routers import ROUTERS
from .schemas import REQUEST_BODIES
from .sgp import ApiError

__all__ = ["create_app"]

#: Where the docs pages' scripts and styles are served from.
ASSETS_PATH = "/docs-assets"


def operation_id(route: APIRoute) -> str:
    """A stable operation id: the router's tag and the route's function (``models-create``)."""
    tag = route.tags[0] if route.tags else "gateway"
    return f"{tag}-{route.name}".replace("_", "-")


def create_app(
    kube: KubeAPI,
    *,
    access_ttl: float = 10.0,
    broker: Any = None,
    endpoints: Endpoints | None = None,
) -> FastAPI:
    gateway = Gateway(kube, Access(kube, ttl=access_ttl), broker=broker)
    if endpoints is not None:
        gateway.endpoints = endpoints

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        tasks = [asyncio.create_task(w.run()) for w in gateway.watchers]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await kube.close()
            await gateway.endpoint_client.close()
            if broker is not None:
                await broker.redis.aclose()

    app = FastAPI(
        docs_url=None,
        redoc_url=None,
        title="ModelTemplate gateway (SGP API)",
        summary="SGP's model template, model, deployment, inference, fine-tuning and task APIs",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    _docs(app)
    app.state.gateway = gateway
    app.state.store, app.state.watcher = gateway.store, gateway.watcher
    app.state.large_body_slot = slot = LargeBodySlot()
    app.add_middleware(slot.wrap)
    app.add_middleware(GatewayMetrics(gateway).wrap)
    _document(app)

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

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        ok = all(w.synced.is_set() for w in gateway.watchers)
        counts = {
            "templates": len(gateway.store),
            "models": len(gateway.models),
            "deployments": len(gateway.deployments),
        }
        return JSONResponse({"synced": ok, **counts}, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(gateway.usage.registry), media_type=CONTENT_TYPE_LATEST)

    for router in ROUTERS:
        app.include_router(router)
    return app


def _docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` from assets shipped with the package (no CDN)."""
    assets = files("fastapi_offline") / "static"
    app.mount(ASSETS_PATH, StaticFiles(directory=str(assets)), name="assets")
    title = f"{app.title} — docs"

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> Response:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=title,
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url="data:,",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> Response:
        return get_redoc_html(
            openapi_url=app.openapi_url,
            title=title,
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url="data:,",
            with_google_fonts=False,
        )


def _document(app: FastAPI) -> None:
    """``/openapi.json`` with the SGP schemas the routes declare by reference, and ``x-api-key``
    required by every route."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(sgp_schemas())
            for model in REQUEST_BODIES:
                body = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(body.pop("$defs", {}))
                schemas[model.__name__] = body
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
