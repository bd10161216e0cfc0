"""Who calls, and the resources they reach: the one dependency every SGP route takes.

:func:`caller` (a FastAPI dependency, :data:`CallerDep`) reads ``x-api-key`` — a Kubernetes
token, declared as the API's security scheme — and proves it to the cluster before anything
else of the request is read (401 otherwise), then checks ``x-selected-account-id`` as a DNS
label (422 naming the header). The :class:`Caller` it gives a route is the only way routes reach
resources, so every kind is found, listed, created and deleted the same way:

- **one account policy** (:meth:`Caller.namespaces`): an account named (query, header) is
  that namespace; none named is every account the key may list — the whole cluster when RBAC
  allows it, else each namespace the gateway knows of (those with templates) checked one by one
  with an access review (cached, :mod:`.access`);
- **one lookup** (:meth:`Caller.find`): a resource by its SGP id (the object's uid) among what
  the caller may read; what it may not read is the same 404 as an unknown id (no existence
  oracle);
- **one list** (:meth:`Caller.list`), **one create** and **one delete** (uid precondition:
  a resource re-created under the same name is never deleted by an old id).

Templates are read from the watch cache (:mod:`.store`) after an access review; the other
kinds from the API server with the caller's own token (RBAC and the audit log see the caller).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from ..api.kinds import MODEL, MODEL_DEPLOYMENT, MODEL_TEMPLATE, OwnerKind
from ..limits import truncate
from ..serving import EndpointClient, Usage
from .access import Access
from .calls import Account, account_header, account_of, read_json, token_of
from .endpoints import Endpoints
from .kubeapi import KubeAPI, KubeError
from .sgp import ApiError, from_api_server
from .store import Entry, Objects, Store, Watcher, collection

__all__ = ["Caller", "CallerDep", "Gateway", "api_key", "caller"]

#: How long a read waits for the watch cache's first list before answering 503.
SYNC_TIMEOUT_SECONDS = 10.0
#: Objects per page when the gateway lists the API server.
LIST_CHUNK = "500"

#: ``x-api-key``: the OpenAPI security scheme of every SGP route.
api_key = APIKeyHeader(
    name="x-api-key",
    scheme_name="ApiKey",
    description="A Kubernetes bearer token (a ServiceAccount token, an OIDC id token, ...).",
    auto_error=False,
)


@dataclass
class Gateway:
    """What the routes share: the API-server client, the access reviews, the watch caches
    (templates as SGP JSON; Models and ModelDeployments for serving), and the optional parts
    (task broker, endpoint addresses)."""

    kube: KubeAPI
    access: Access
    store: Store = field(default_factory=Store)
    watcher: Watcher | None = None
    models: Objects = field(default_factory=Objects)
    deployments: Objects = field(default_factory=Objects)
    watchers: list[Watcher] = field(default_factory=list)
    #: The task queue's broker (:class:`.routers.tasks.Broker`; None: no task routes).
    broker: Any = None
    #: Where endpoints answer, and the client that calls them.
    endpoints: Endpoints = field(default_factory=Endpoints)
    endpoint_client: EndpointClient = field(default_factory=EndpointClient)
    #: What the endpoints served through this replica (``usage-statistics``, ``/metrics``).
    usage: Usage = field(default_factory=Usage)

    def __post_init__(self) -> None:
        if self.watcher is None:
            self.watcher = Watcher(self.kube, self.store)
        self.watchers = [
            self.watcher,
            Watcher(self.kube, self.models, path=collection(MODEL)),
            Watcher(self.kube, self.deployments, path=collection(MODEL_DEPLOYMENT)),
        ]

    async def synced(self, every: bool = False) -> None:
        """Wait for the template cache's first list (``every``: every cache's), 503 after
        :data:`SYNC_TIMEOUT_SECONDS`."""
        watchers = self.watchers if every else [self.watcher]
        if all(w.synced.is_set() for w in watchers):
            return
        try:
            async with asyncio.timeout(SYNC_TIMEOUT_SECONDS):
                for watcher in watchers:
                    await watcher.synced.wait()
        except TimeoutError:
            raise ApiError(503, "the watch caches have not synced with the cluster yet") from None


def what_of(kind: OwnerKind) -> str:
    """``ModelTemplate`` -> ``model template``: how messages name a kind."""
    words = "".join(f" {c.lower()}" if c.isupper() else c for c in kind.kind).strip()
    return words


@dataclass
class Caller:
    """An authenticated caller: its token, the account its header names (checked), and the
    gateway's shared parts."""

    gateway: Gateway
    token: str
    account: str | None

    @property
    def access(self) -> Access:
        return self.gateway.access

    async def create_body(self, request: Request) -> tuple[Any, str]:
        """A create call's JSON body (read once the caller is known) and the namespace it
        creates in: ``account_id`` in the body, else the ``x-selected-account-id`` header
        (422 naming the field when neither is a DNS label)."""
        body = await read_json(request)
        namespace = (body.get("account_id") if isinstance(body, dict) else None) or self.account
        return body, account_of(namespace)

    def listed(self, account_id: str | None) -> str | None:
        """The account a list names: ``account_id`` in the query (checked, 422 naming it),
        else the header's (None: every account the key may list)."""
        return account_of(account_id, "account_id", "query") if account_id else self.account

    # --- the API server, with the caller's token ------------------------------------------

    async def kube(
        self, method: str, path: str, *, what: str = "resource", name: str = "", **kwargs: Any
    ) -> dict[str, Any]:
        """One API-server call with the caller's token; refusals in SGP's shape."""
        try:
            return await self.gateway.kube.request(method, path, token=self.token, **kwargs)
        except KubeError as exc:
            raise from_api_server(exc.status, exc.body, name=name, what=what) from None

    async def create(self, kind: OwnerKind, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create ``manifest`` (its schema checked strictly by the API server)."""
        meta = manifest["metadata"]
        return await self.kube(
            "POST",
            kind.path(meta["namespace"]),
            what=what_of(kind),
            name=meta.get("name") or "",
            body=manifest,
            query={"fieldValidation": "Strict"},
        )

    async def delete(self, kind: OwnerKind, namespace: str, name: str, uid: str) -> dict:
        """Delete that object, only if it is still the one with ``uid`` (404 otherwise); SGP's
        answer to a delete."""
        options = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
            "preconditions": {"uid": uid},
        }
        try:
            await self.gateway.kube.request(
                "DELETE", kind.path(namespace, name), token=self.token, body=options
            )
        except KubeError as exc:
            if exc.status == 404 or (exc.status == 409 and "Precondition" in str(exc)):
                if kind is MODEL_TEMPLATE:
                    self.gateway.store.remove(uid)
                raise self.not_found(kind, uid) from None
            raise from_api_server(exc.status, exc.body) from None
        if kind is MODEL_TEMPLATE:
            self.gateway.store.remove(uid, tombstone=True)
        return {"count": 1, "success": True}

    # --- the one account policy -----------------------------------------------------------

    async def namespaces(self, kind: OwnerKind, account: str | None = None) -> list[str] | None:
        """The accounts a list of ``kind`` covers: ``account`` (or the header's) when named
        (403 unless the caller may list there), else every account the key may list (None:
        the whole cluster)."""
        named = account or self.account
        if named:
            await self.access.require(self.token, named, "list", kind)
            return [named]
        if await self.access.allowed(self.token, None, "list", kind):
            return None
        await self.gateway.synced()
        known = sorted({e.namespace for e in self.gateway.store.ordered(None)})
        allowed = await asyncio.gather(
            *(self.access.allowed(self.token, ns, "list", kind) for ns in known)
        )
        return [ns for ns, ok in zip(known, allowed, strict=True) if ok]

    # --- the one list and the one lookup --------------------------------------------------

    async def list(self, kind: OwnerKind, namespaces: list[str] | None) -> list[dict[str, Any]]:
        """Every ``kind`` object of ``namespaces`` (None: all), read with the caller's token."""
        if namespaces is None:
            paths = [collection(kind)]
        else:
            paths = [kind.path(ns) for ns in namespaces]
        pages = await asyncio.gather(*(self._list_path(p, kind) for p in paths))
        return [item for page in pages for item in page]

    async def _list_path(self, path: str, kind: OwnerKind) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        query = {"limit": LIST_CHUNK}
        while True:
            page = await self.kube("GET", path, what=what_of(kind), query=query)
            items += page.get("items") or []
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                return items
            query = {"limit": LIST_CHUNK, "continue": cont}

    def not_found(self, kind: OwnerKind, resource_id: str) -> ApiError:
        return ApiError(404, f"{what_of(kind)} {truncate(resource_id, 80)!r} not found", False)

    async def find(self, kind: OwnerKind, resource_id: str) -> dict[str, Any]:
        """The ``kind`` object whose uid is ``resource_id``, among the caller's header account
        (or every account it may read); 404 for anything else, whatever the reason."""
        not_found = self.not_found(kind, resource_id)
        try:
            namespaces = await self.namespaces(kind)
            objects = await self.list(kind, namespaces)
        except ApiError as exc:
            if exc.status == 403:  # an account it may not read: nothing there for it
                raise not_found from None
            raise
        found = next((o for o in objects if o["metadata"].get("uid") == resource_id), None)
        if found is None:
            raise not_found
        return found

    async def template(self, template_id: str, verb: str = "get") -> Entry:
        """A template of the watch cache by id, if the caller may ``verb`` it (404 otherwise)."""
        await self.gateway.synced()
        entry = self.gateway.store.get(template_id)
        not_found = self.not_found(MODEL_TEMPLATE, template_id)
        if entry is None or (self.account and self.account != entry.namespace):
            raise not_found
        await self.access.visible(self.token, entry.namespace, verb, not_found.detail)
        return entry


async def caller(
    request: Request,
    key: Annotated[str | None, Depends(api_key)] = None,
    account: Account = None,
) -> Caller:
    """The caller of a route: its key accepted by the cluster (401), then its account header
    checked (422) — before a byte of the body is read."""
    token = token_of(key)
    gateway: Gateway = request.app.state.gateway
    await gateway.access.username(token)
    return Caller(gateway, token, account_header(account))


#: The dependency of every SGP route.
CallerDep = Annotated[Caller, Depends(caller)]
