"""Who a caller is and what RBAC lets them read — asked with the caller's own token.

Reads come from the watch cache, so before serving one the gateway proves the caller may do
the same through the API server: a SelfSubjectAccessReview (``get`` or ``list`` on
``modeltemplates`` in the namespace) made with the caller's token. Answers are cached for
``ttl`` seconds, keyed by a hash of the token (never the token itself), the namespace and the
verb, so a revoked RoleBinding stops reads through the gateway within ``ttl`` seconds.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from .. import GROUP, PLURAL
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
    def __init__(self, kube: KubeAPI, ttl: float = 10.0):
        self.kube = kube
        self.cache = TtlCache(ttl)

    async def username(self, token: str) -> str:
        """The caller's user name (a SelfSubjectReview); 401 when the token is not accepted."""
        key = (token_hash(token), "", "whoami")
        name = self.cache.get(key)
        if name is None:
            review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
            try:
                answer = await self.kube.request("POST", SSR_PATH, token=token, body=review)
            except KubeError as exc:
                raise from_api_server(exc.status, exc.body) from None
            name = answer["status"]["userInfo"]["username"]
            self.cache.put(key, name)
        return name

    async def require(self, token: str, namespace: str | None, verb: str) -> None:
        """403 unless the caller may ``verb`` modeltemplates in ``namespace`` (None: all)."""
        key = (token_hash(token), namespace or "", verb)
        allowed = self.cache.get(key)
        if allowed is None:
            attributes = {"verb": verb, "group": GROUP, "resource": PLURAL}
            if namespace:
                attributes["namespace"] = namespace
            review = {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes},
            }
            try:
                answer = await self.kube.request("POST", SSAR_PATH, token=token, body=review)
            except KubeError as exc:
                raise from_api_server(exc.status, exc.body) from None
            allowed = bool(answer.get("status", {}).get("allowed"))
            self.cache.put(key, allowed)
        if not allowed:
            where = f"in account {namespace!r}" if namespace else "in every account"
            raise ApiError(
                403,
                f"forbidden: this API key may not {verb} model templates {where}"
                f" ({verb} on {PLURAL}.{GROUP})",
                retry=False,
            )
