"""uvicorn as the gateway runs it: a deadline and a size cap for each request's head, the idle
timeout of :mod:`..limits`.

uvicorn closes a keep-alive connection idle after a response, but has no deadline for a
request's head: a connection that sends nothing, or half a header, is kept as long as the
client likes (one account holding every slot of the process). :class:`HeadDeadlineProtocol` is
uvicorn's own httptools protocol with that deadline: from the connection's start (and from the
end of each response) the head must be complete within :data:`HEADER_TIMEOUT_SECONDS`, or the
connection is closed. The head is also capped in size: httptools keeps a request's URL and
headers in memory whatever their length (a 92 MB header took the process from 70 to 245 MB
within the deadline), so a head still incomplete after :data:`MAX_HEAD_BYTES` is answered 431
and the connection closed. A body's deadline and cap are the route's (:func:`.calls.read_json`).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..limits import HEADER_TIMEOUT_SECONDS, IDLE_TIMEOUT_SECONDS, MAX_HEAD_BYTES

__all__ = ["HeadDeadlineProtocol", "MAX_HEAD_BYTES", "SERVER_SETTINGS"]

assert MAX_HEAD_BYTES >= HIGH_WATER_LIMIT  # a head is never cut below what uvicorn buffers
_TOO_LARGE = b'{"detail":"request head over %d bytes"}' % MAX_HEAD_BYTES


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request head is late."""

    _head_deadline: asyncio.TimerHandle | None = None
    _head_bytes = 0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        waiting = self._head_deadline is not None
        super().data_received(data)
        if not waiting or self._head_deadline is None or self.transport.is_closing():
            return  # not a head's bytes, or the head completed in this chunk
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self._disarm()
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TOO_LARGE), _TOO_LARGE)
            )
            self.transport.close()

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
        self._head_bytes = 0
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
