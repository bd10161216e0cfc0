"""The client side of the forwarder: aiohttp's low-level server with deadlines on slow clients.

aiohttp closes a connection only when it has been idle for its keep-alive timeout, and that
clock is all a client that trickles its request head (or never sends a byte) ever meets. Here
each connection also gets a deadline for its request head: ``header_timeout`` from the moment
the connection opens, or from the first byte of the next request on a kept-alive connection.
A connection that misses it is closed. (Silence between body bytes is timed by the handler,
which answers 408; see ``Forwarder._read_bounded``.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler


class ClientConnection(RequestHandler):
    """One client connection; the forwarder's handler calls ``request_started`` and
    ``request_finished`` around each request so that the head deadline runs only in between."""

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._head_deadline: asyncio.TimerHandle | None = None
        self._busy = False

    def _arm(self) -> None:
        if self._head_deadline is None:
            loop = asyncio.get_running_loop()
            self._head_deadline = loop.call_later(self._header_timeout, self._head_expired)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_expired(self) -> None:
        self._head_deadline = None
        if not self._busy:
            self.force_close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if not self._busy:
            self._arm()  # the first bytes of a request head: it has header_timeout to finish
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def request_started(self) -> None:
        self._busy = True
        self._disarm()

    def request_finished(self) -> None:
        self._busy = False


class ForwarderServer(web.Server):
    """``web.Server`` whose connections are ``ClientConnection`` s."""

    def __init__(self, handler, *, header_timeout: float, **kwargs: Any) -> None:
        self._connection_kwargs = {k: v for k, v in kwargs.items() if k != "handler_cancellation"}
        super().__init__(handler, **kwargs)
        self._header_timeout = header_timeout

    def __call__(self) -> RequestHandler:
        return ClientConnection(
            self,
            loop=asyncio.get_running_loop(),
            header_timeout=self._header_timeout,
            **self._connection_kwargs,
        )
