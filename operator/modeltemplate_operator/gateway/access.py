"""Who a caller is and what RBAC lets them read — asked with the caller's own token.

Reads served without the caller's token (the template watch cache, an endpoint's answer) are
served only after the gateway proves the caller may do the same through the API server: a
SelfSubjectAccessReview (``get`` or ``list`` on the resource of the kind read — the plural of
its entry in the owner-kind registry — in the namespace) made with the caller's token. Answers
are cached for ``ttl`` seconds, keyed by a hash of the token (never the token itself), the
resource, the namespace and the verb, so a revoked RoleBinding stops reads through the gateway
within ``ttl`` seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..api.kinds import MODEL_TEMPLATE, OwnerKind
from .kubeapi import KubeAPI, KubeError
from .sgp import ApiError, from_api_server

__all__ = ["TtlCache", "Access"]

SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
SSR_PATH = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


class TtlCache:
    """A small dict whose entries expire ``ttl`` seconds after they were put."""

    def __init__(self, ttl: float, *, max_entries: int = 10_000, clock=time.monotonic):
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._data: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> Any:
        hit = self._data.get(key)
        if hit is None or hit[0] <= self._clock():
            return None
        return hit[1]

    def put(self, key: Any, value: Any) -> None:
        now = self._clock()
        if len(self._data) >= self.max_entries:
            self._data = {k: v for k, v in self._data.items() if v[0] > now}
            if len(self._data) >= self.max_entries:
                self._data.pop(next(iter(self._data)))
        self._data[key] = (now + self.ttl, value)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Access:
    """Access reviews with the caller's token, cached for ``ttl`` seconds and made once per
    (token, namespace, verb) however many requests ask at the same moment (single flight)."""

    def __init__(self, kube: KubeAPI, ttl: float = 10.0):
        self.kube = kube
        self.cache = TtlCache(ttl)
        self._inflight: dict[Any, asyncio.Future] = {}
        #: Reviews sent to the API server (the single flight's figure in the tests).
        self.reviews = 0
        #: Told of each answer: True when it came from the cache (the gateway's metrics).
        self.on_review: Callable[[bool], None] = lambda cached: None

    async def _once(self, key: Any, review: Callable[[], Awaitable[Any]]) -> Any:
        """The cached answer for ``key``, else one review shared by every concurrent caller."""
        value = self.cache.get(key)
        self.on_review(value is not None)
        if value is not None:
            return value
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            self.reviews += 1
            value = await review()
            self.cache.put(key, value)
            future.set_result(value)
            return value
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            del self._inflight[key]

    async def username(self, token: str) -> str:
        """The caller's user name (a SelfSubjectReview); 401 when the token is not accepted."""

        async def review() -> str:
            body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
            try:
                answer = await self.kube.request("POST", SSR_PATH, token=token, body=body)
            except KubeError as exc:
                raise from_api_server(exc.status, exc.body) from None
            return answer["status"]["userInfo"]["username"]

        return await self._once((token_hash(token), "", "whoami"), review)

    async def allowed(
        self, token: str, namespace: str | None, verb: str, kind: OwnerKind = MODEL_TEMPLATE
    ) -> bool:
        """Whether the caller may ``verb`` ``kind`` in ``namespace`` (None: all)."""

        async def review() -> bool:
            attributes = {"verb": verb, "group": kind.group, "resource": kind.plural}
            if namespace:
                attributes["namespace"] = namespace
            body = {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes},
            }
            try:
                answer = await self.kube.request("POST", SSAR_PATH, token=token, body=body)
            except KubeError as exc:
                raise from_api_server(exc.status, exc.body) from None
            return bool(answer.get("status", {}).get("allowed"))

        key = (token_hash(token), kind.plural, namespace or "", verb)
        return await self._once(key, review)

    async def require(
        self, token: str, namespace: str | None, verb: str, kind: OwnerKind = MODEL_TEMPLATE
    ) -> None:
        """403 unless the caller may ``verb`` ``kind`` in ``namespace`` (None: all): for what
        the caller names itself (an account to list, a create)."""
        if not await self.allowed(token, namespace, verb, kind):
            where = f"in account {namespace!r}" if namespace else "in every account"
            raise ApiError(
                403,
                f"forbidden: this API key may not {verb} {kind.plural} {where}"
                f" ({verb} on {kind.crd_name})",
                retry=False,
            )

    async def visible(
        self,
        token: str,
        namespace: str,
        verb: str,
        not_found: str,
        kind: OwnerKind = MODEL_TEMPLATE,
    ) -> None:
        """For something found by its id: what the caller may not see does not exist for it —
        the same 404 as an unknown id, naming no account (no existence oracle)."""
        if not await self.allowed(token, namespace, verb, kind):
            raise ApiError(404, not_found, False)
