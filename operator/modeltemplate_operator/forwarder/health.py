"""``main``'s healthcheck as both modes of the forwarder ask it: cached for
``--health-cache-seconds``, one check in flight however many ask at once, and what it last
answered (``ok``) for ``/readyz``, the metrics and the task consumer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from .config import Config
from .upstream import UpstreamError, UpstreamPool

log = logging.getLogger("modeltemplate_operator.forwarder")


class UpstreamHealth:
    def __init__(self, config: Config, on_change: Callable[[bool], None] = lambda ok: None):
        prefix = urlsplit(config.upstream).path.rstrip("/")
        self.target = (prefix + config.healthcheck_route).encode()
        self.config = config
        self.pool: UpstreamPool | None = None  # set when the forwarder starts
        self.ok = False
        self._on_change = on_change
        self._checked_at = -1e9
        self._task: asyncio.Future | None = None

    @property
    def not_ready_message(self) -> str:
        """What ``/readyz`` says while ``main`` is not healthy."""
        return f"model container's healthcheck {self.config.healthcheck_route} did not answer 200"

    def forget(self) -> None:
        """Ask ``main`` again at the next call (e.g. after a task failed to reach it)."""
        self._checked_at = -1e9

    async def healthy(self) -> bool:
        loop = asyncio.get_running_loop()
        if loop.time() - self._checked_at < self.config.health_cache_seconds:
            return self.ok
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._check())
        return await asyncio.shield(self._task)

    async def _check(self) -> bool:
        ok = False
        timeout = self.config.health_timeout_seconds
        try:
            assert self.pool is not None
            up = await asyncio.wait_for(
                self.pool.request(b"GET", self.target, [], b"", timeout=timeout), timeout
            )
            try:
                await up.read(timeout)
                ok = up.status == 200
            finally:
                up.release()
        except (UpstreamError, TimeoutError, OSError):
            ok = False
        if ok != self.ok:
            self._on_change(ok)
        self.ok = ok
        self._checked_at = asyncio.get_running_loop().time()
        return ok
