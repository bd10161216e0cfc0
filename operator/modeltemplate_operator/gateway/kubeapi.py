"""The gateway's HTTP client to the API server (aiohttp, one pool per credential kind).

Calls made for a caller carry only the caller's token (``Authorization: Bearer <x-api-key>``)
and no client certificate, so RBAC and the audit log see the caller. The gateway's own
credentials (in-cluster ServiceAccount or ``$KUBECONFIG``, loaded by the official client) are
used for nothing but the watch cache.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes import client, config

from ..decoding import loads  # any depth the API server stores

__all__ = ["KubeError", "KubeAPI", "load_configuration"]


@dataclass
class KubeError(Exception):
    """A non-2xx answer of the API server; ``body`` is its ``Status`` (or None)."""

    status: int
    body: dict[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.status}: {(self.body or {}).get('message', '')}"


def load_configuration(kubeconfig: str | None = None) -> client.Configuration:
    """In-cluster credentials when running in a pod, else the kubeconfig."""
    cfg = client.Configuration()
    try:
        if kubeconfig:
            raise config.ConfigException("kubeconfig given")
        config.load_incluster_config(client_configuration=cfg)
    except config.ConfigException:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    return cfg


def _ssl_context(cfg: client.Configuration, *, own: bool) -> ssl.SSLContext | bool:
    if not cfg.verify_ssl:
        return False
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    if own and cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    return ctx


class KubeAPI:
    """``request`` for one JSON call (``token=None``: the gateway's own credentials),
    ``watch`` for a stream of watch events (own credentials)."""

    def __init__(self, cfg: client.Configuration, *, timeout: float = 30):
        self.cfg = cfg
        self.server = cfg.host.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._callers: aiohttp.ClientSession | None = None
        self._own: aiohttp.ClientSession | None = None

    def _sessions(self) -> tuple[aiohttp.ClientSession, aiohttp.ClientSession]:
        if self._callers is None or self._own is None:
            self._callers = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=_ssl_context(self.cfg, own=False), limit=64),
                timeout=self._timeout,
            )
            self._own = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=_ssl_context(self.cfg, own=True), limit=8),
                read_bufsize=1 << 20,  # one watch event per line
            )
        return self._callers, self._own

    def _own_headers(self) -> dict[str, str]:
        if self.cfg.refresh_api_key_hook is not None:
            self.cfg.refresh_api_key_hook(self.cfg)  # in-cluster tokens rotate
        return {
            setting["key"]: setting["value"]
            for setting in self.cfg.auth_settings().values()
            if setting.get("in") == "header" and setting.get("value")
        }

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None,
        body: Any = None,
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        callers, own = self._sessions()
        if token is None:
            session, headers = own, self._own_headers()
        else:
            session, headers = callers, {"Authorization": f"Bearer {token}"}
        headers["Accept"] = "application/json"
        async with session.request(
            method, self.server + path, json=body, params=query, headers=headers
        ) as response:
            data = await response.read()
            decoded = _decode(data)
            if not 200 <= response.status < 300:
                raise KubeError(response.status, decoded)
            return decoded or {}

    async def watch(self, path: str, query: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        """Watch events (``{"type", "object"}``) until the server ends the stream."""
        _, own = self._sessions()
        query = {**query, "watch": "1"}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=float(query["timeoutSeconds"]) + 30)
        async with own.get(
            self.server + path, params=query, headers=self._own_headers(), timeout=timeout
        ) as response:
            if response.status != 200:
                raise KubeError(response.status, _decode(await response.read()))
            async for line in response.content:
                if line.strip():
                    yield loads(line)

    async def close(self) -> None:
        for session in (self._callers, self._own):
            if session is not None:
                await session.close()
        self._callers = self._own = None


def _decode(data: bytes) -> dict[str, Any] | None:
    try:
        decoded = loads(data) if data else None
    except ValueError:
        return {"message": data.decode("utf-8", "replace")[:500]}
    return decoded if isinstance(decoded, dict) else None
