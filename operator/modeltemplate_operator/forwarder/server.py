"""The client side of the forwarder: aiohttp's low-level server with deadlines on slow clients.

aiohttp closes a connection only when it has been idle for its keep-alive timeout, and that
clock is all a client that trickles its request head (or never sends a byte) ever meets. Here
each connection also gets a deadline for its request head: ``header_timeout`` from the moment
the connection opens, or from the first byte of the next request on a kept-alive connection.
A connection that misses it is closed. (Silence between body bytes is timed by the handler,
which answers 408; see ``Forwarder._read_bounded``.)

Requests that do not parse (or whose body does not decode) are answered by the forwarder's
JSON error (400; 431 for oversized or too many header fields, 414 for an oversized request
target) and logged at DEBUG in one line: they are the client's fault, and whoever floods the port with garbage must not flood the
log with tracebacks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("modeltemplate_operator.forwarder")


def json_error(status: int, error: str, message: str, headers=None, **extra: Any) -> web.Response:
    """The forwarder's error answer: ``{"error", "message", "status", …}``."""
    body = {"error": error, "message": message, "status": status}
    body.update(extra)
    resp = web.Response(status=status, body=json.dumps(body).encode(), headers=headers)
    resp.content_type = "application/json"
    return resp


def parse_failure(exc: HttpProcessingError) -> str:
    """The parser's complaint in one short line (its message may quote the request at length)."""
    lines = (exc.message or "").splitlines()
    return lines[0][:120].rstrip(": ") if lines else ""


def malformed_answer(exc: HttpProcessingError) -> web.Response:
    """What a request that does not parse is answered with."""
    if isinstance(exc, LineTooLong):
        line = exc.args[0] if exc.args else b""
        if bytes(line[:1]) == b"/":
            return json_error(414, "uri_too_long", "the request target is too long")
        return json_error(431, "header_too_large", "a request header field is too long")
    reason = parse_failure(exc)
    if reason.lower().startswith("too many headers"):
        return json_error(431, "too_many_headers", "too many request header fields")
    return json_error(400, "bad_request", f"malformed HTTP request: {reason or 'does not parse'}")


class ClientConnection(RequestHandler):
    """One client connection; the forwarder's handler calls ``request_started`` and
    ``request_finished`` around each request so that the head deadline runs only in between."""

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        # When the pending request head began (None: no head pending). One timer at a time
        # checks it, so a busy keep-alive connection does not make and cancel a timer per
        # request.
        self._head_since: float | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._busy = False

    def _arm(self) -> None:
        if self._head_since is None:
            loop = asyncio.get_running_loop()
            self._head_since = loop.time()
            if self._head_timer is None:
                self._head_timer = loop.call_at(
                    self._head_since + self._header_timeout, self._check_head
                )

    def _check_head(self) -> None:
        self._head_timer = None
        if self._head_since is None or self._busy:
            return
        loop = asyncio.get_running_loop()
        deadline = self._head_since + self._header_timeout
        if loop.time() >= deadline:
            self.force_close()
        else:
            self._head_timer = loop.call_at(deadline, self._check_head)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if not self._busy:
            self._arm()  # the first bytes of a request head: it has header_timeout to finish
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500 or not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already under way")
        resp = malformed_answer(exc)
        log.debug(
            "malformed request from %s: %s %s", request.remote, resp.status, parse_failure(exc)
        )
        resp.force_close()
        return resp

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError | web.RequestPayloadError):
            # aiohttp draining the rest of a body that does not decode: the client's doing
            log.debug("malformed request body: %s", exc)
            return
        super().log_exception(*args, **kw)

    def close_after_answer(self) -> None:
        """Close once the current answer is sent, without first reading and dropping the rest
        of the request body for ``lingering_time`` (a client past the overall body deadline
        would hold the connection that much longer): aiohttp then closes an unfinished request's
        connection at once. Its own attribute (``force_close()`` would close before the answer
        is written); tests/chaos/test_chaos_forwarder.py checks the connection is closed."""
        self._lingering_time = 0.0

    def request_started(self) -> None:
        self._busy = True
        self._head_since = None

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


async def listen(runner: web.BaseRunner, host: str, port: int, backlog: int = 128) -> int:
    """Set ``runner`` up and listen on ``host:port``; the port bound (``port`` 0: any free)."""
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=backlog)
    await site.start()
    sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
    return sockets[0].getsockname()[1] if sockets else port
