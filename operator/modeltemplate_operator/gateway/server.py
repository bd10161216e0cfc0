"""uvicorn as the gateway runs it: a deadline for each request's head, the idle timeout of
:mod:`..limits`.

uvicorn closes a keep-alive connection idle after a response, but has no deadline for a
request's head: a connection that sends nothing, or half a header, is kept as long as the
client likes (one account holding every slot of the process). :class:`HeadDeadlineProtocol` is
uvicorn's own httptools protocol with that deadline: from the connection's start (and from the
end of each response) the head must be complete within :data:`HEADER_TIMEOUT_SECONDS`, or the
connection is closed. A body's deadline is the route's (:func:`.calls.read_json`).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..limits import HEADER_TIMEOUT_SECONDS, IDLE_TIMEOUT_SECONDS

__all__ = ["HeadDeadlineProtocol", "SERVER_SETTINGS"]


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request head is late."""

    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request's head (the keep-alive timeout closes it earlier)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(HEADER_TIMEOUT_SECONDS, self._late)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _late(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


#: The uvicorn settings that bound what one client can hold.
SERVER_SETTINGS = {
    "http": HeadDeadlineProtocol,
    "timeout_keep_alive": int(IDLE_TIMEOUT_SECONDS),
}
