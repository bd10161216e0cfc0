"""The forwarder: aiohttp's low-level server in front, an aiohttp client session to the model.

One handler does the dispatch (a dict lookup on the path), so every answer, 404 and 405
included, is the forwarder's own JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict

from .. import contract as c
from ..limits import MAX_DECODED_BODY_BYTES, MAX_DOCUMENT_DEPTH, text_too_deep
from .config import Config
from .health import UpstreamHealth
from .limiter import ByteBudget, ConcurrencyLimiter
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import ForwarderMetrics
from .routes import OWN_ROUTES, Route, routes_for
from .server import ClientConnection, ForwarderServer, listen
from .server import json_error as _error
from .upstream import (
    UpstreamError,
    UpstreamPool,
    UpstreamResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)

log = logging.getLogger("modeltemplate_operator.forwarder")

# Headers that describe one hop, not the message: never forwarded either way.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
        "Expect",
    )
)
# Upstream answers at most this large with a Content-Length are read whole and sent with a
# Content-Length; everything else (SSE, chunked, big bodies) is passed through as it arrives.
BUFFER_LIMIT = 1024 * 1024
HOP_BY_HOP_B = frozenset(h.encode() for h in HOP_BY_HOP)
# Not passed on with a request either: the forwarder's server decodes a compressed request body
# (to check and bound it), so the model receives the decoded bytes.
REQUEST_DROPPED_B = HOP_BY_HOP_B | {b"content-encoding"}
CLIENT_CLOSED = 499  # status recorded in metrics when the client went away first


class _Abort(Exception):
    """Carries a ready error response out of the proxy steps."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response


class Forwarder:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.routes = routes_for(config.protocol)
        self.limiter = ConcurrencyLimiter(config.per_worker, config.concurrency_wait_seconds)
        self.metrics = ForwarderMetrics(config.per_worker, lambda: self.limiter.active)
        self.body_budget = ByteBudget(config.max_buffered_bytes)
        self.draining = False
        self.port: int | None = None
        self._pool: UpstreamPool | None = None
        self._runner: web.ServerRunner | None = None
        self.health = UpstreamHealth(config, self._health_changed)
        prefix = urlsplit(config.upstream).path.rstrip("/")
        self._upstream_targets: dict[str, bytes] = {}
        for path, route in self.routes.items():
            if route.upstream == "predict":
                target = config.predict_route
            elif route.upstream == "stream":
                target = config.streaming_predict_route
            else:
                target = path
            self._upstream_targets[path] = (prefix + target).encode()
        self._retry_after = str(config.retry_after_seconds)
        self._schema = config.request_parameters_schema

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> int:
        cfg = self.config
        self._pool = UpstreamPool(
            cfg.upstream,
            connect_timeout=cfg.upstream_connect_timeout_seconds,
            read_timeout=cfg.upstream_timeout_seconds,
            keepalive=cfg.upstream_keepalive_seconds,
        )
        self.health.pool = self._pool
        server = ForwarderServer(
            self.handle,
            handler_cancellation=True,
            header_timeout=cfg.header_timeout_seconds,
            keepalive_timeout=cfg.keepalive_timeout_seconds,
            # after an early answer (413, 408), the rest of a body is read and dropped for at
            # most this long before the connection is closed
            lingering_time=cfg.body_timeout_seconds,
            access_log=logging.getLogger("modeltemplate_operator.forwarder.access")
            if cfg.access_log
            else None,
        )
        self._runner = web.ServerRunner(
            server, handle_signals=False, shutdown_timeout=cfg.grace_period_seconds
        )
        self.port = await listen(self._runner, cfg.host, cfg.port, backlog=1024)
        log.info(
            "forwarding :%s -> %s (protocol %s, perWorker %s)",
            self.port,
            cfg.upstream,
            cfg.protocol,
            cfg.per_worker,
        )
        return self.port

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight requests finish within the grace period, close."""
        self.draining = True
        if self._runner is not None:
            log.info(
                "draining: %d request(s) in flight, grace period %ss",
                self.metrics.concurrency,
                self.config.grace_period_seconds,
            )
            await self._runner.cleanup()
            self._runner = None
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        log.info("stopped")

    async def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT, then shut down gracefully (``announce_shutdown``, then
        ``shutdown``)."""
        await self.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
            await self.announce_shutdown()
        finally:
            await self.shutdown()

    async def announce_shutdown(self) -> None:
        """Readiness answers 503 at once; requests are still accepted and served for
        ``--shutdown-delay-seconds``, the time endpoints need to stop routing to this pod."""
        self.draining = True
        delay = self.config.shutdown_delay_seconds
        log.info("signal received: not ready; still accepting for %ss, then draining", delay)
        if delay:
            await asyncio.sleep(delay)

    # -- dispatch -------------------------------------------------------------------------
    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        connection = request.protocol
        if not isinstance(connection, ClientConnection):
            return await self._dispatch(request)
        connection.request_started()
        try:
            return await self._dispatch(request)
        finally:
            connection.request_finished()

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        route = self.routes.get(path)
        try:
            if route is not None:
                if request.method not in route.methods:
                    return self._not_allowed(request, route.methods)
                resp = await self.proxy(request, route)
                if self.draining and not resp.prepared:
                    resp.force_close()  # tells the client not to reuse the connection
                return resp
            own = OWN_ROUTES.get(path)
            if own is not None:
                if request.method not in own:
                    return self._not_allowed(request, own)
                if path == c.LIVE_PATH:
                    return _error_ok({"status": "ok"})
                if path == c.READY_PATH:
                    return await self.readyz()
                return web.Response(
                    body=self.metrics.render(), headers={"Content-Type": METRICS_CONTENT_TYPE}
                )
            return _error(
                404,
                "not_found",
                f"no route {request.method} {path} on this forwarder (protocol "
                f"{self.config.protocol})",
                routes=sorted(
                    [f"{m} {p}" for p, r in self.routes.items() for m in r.methods]
                    + [f"{m} {p}" for p, ms in OWN_ROUTES.items() for m in ms if m != "HEAD"]
                ),
            )
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            log.exception("internal error on %s %s", request.method, path)
            return _error(500, "internal_error", "the forwarder failed to handle this request")

    def _not_allowed(self, request: web.BaseRequest, methods) -> web.Response:
        return _error(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed on {request.path}; use {', '.join(methods)}",
            headers={"Allow": ", ".join(methods)},
        )

    # -- health ---------------------------------------------------------------------------
    async def readyz(self) -> web.Response:
        if self.draining:
            return _error(503, "draining", "the forwarder is shutting down")
        if await self.health.healthy():
            return _error_ok({"status": "ready"})
        return _error(503, "upstream_not_ready", self.health.not_ready_message)

    def _health_changed(self, ok: bool) -> None:
        self.metrics.upstream_ready = 1 if ok else 0

    # -- proxy ----------------------------------------------------------------------------
    async def proxy(self, request: web.BaseRequest, route: Route) -> web.StreamResponse:
        loop_time = asyncio.get_running_loop().time
        t0 = loop_time()
        metrics = self.metrics
        status = 500
        counted = False  # in the in-flight gauge: only once the request is complete
        body: bytes | bytearray = b""
        try:
            try:
                if request.can_read_body:
                    body = await self._receive_body(request)
                self._check_body(request, route, body)
                if route.capped:
                    metrics.enter()
                    counted = True
                resp = await self._forward(request, route, body, t0)
            except _Abort as abort:
                resp = abort.response
            status = resp.status
            return resp
        except (asyncio.CancelledError, ConnectionResetError):
            status = CLIENT_CLOSED
            raise
        finally:
            if counted:
                metrics.leave()
            self.body_budget.give(len(body))
            metrics.observe(route.path, status, loop_time() - t0)

    async def _read_bounded(self, request: web.BaseRequest, limit: int) -> bytearray:
        """The body as it arrives, refused (413) as soon as it passes ``limit``: a chunked body
        (no Content-Length) is never held beyond the limit either. A client silent for
        ``--body-timeout-seconds`` between body bytes gets 408 and the connection is closed.
        The bytes count against ``--max-buffered-bytes`` across requests (503 past it); the
        caller gives back ``len()`` of the body returned, this method what it does not return."""
        body = bytearray()
        try:
            return await self._read_into(request, limit, body)
        except BaseException:
            self.body_budget.give(len(body))
            raise

    async def _read_into(self, request: web.BaseRequest, limit: int, body: bytearray) -> bytearray:
        content = request.content
        timeout = self.config.body_timeout_seconds
        loop_time = asyncio.get_running_loop().time
        deadline = loop_time() + self.config.body_deadline_seconds
        budget = self.body_budget
        while True:
            try:
                if content.is_eof():  # all of it has arrived (small bodies): no timer needed
                    chunk = content.read_nowait()
                else:
                    left = deadline - loop_time()
                    if left <= 0:
                        raise _Abort(self._late_body(request))
                    async with asyncio.timeout(min(timeout, left)):
                        chunk = await content.readany()
            except web.RequestPayloadError as exc:  # e.g. a gzip body that is not gzip
                log.debug("malformed request body from %s: %s", request.remote, exc)
                resp = _error(400, "bad_request", "malformed request body: it does not decode")
                resp.force_close()
                raise _Abort(resp) from None
            except TimeoutError:
                if loop_time() >= deadline:
                    raise _Abort(self._late_body(request)) from None
                resp = _error(
                    408,
                    "body_timeout",
                    f"no request body bytes for {timeout}s (--body-timeout-seconds)",
                )
                resp.force_close()
                raise _Abort(resp) from None
            if not chunk:
                return body
            if len(body) + len(chunk) > limit:
                raise _Abort(_too_large(limit))
            if not budget.take(len(chunk)):
                raise _Abort(self._busy_buffering())
            body += chunk

    async def _receive_body(self, request: web.BaseRequest) -> bytearray:
        limit = self.config.max_body_bytes
        length = request.content_length
        if length is not None and length > limit:
            raise _Abort(_too_large(limit))
        if (
            request.version >= (1, 1)
            and request.headers.get("Expect", "").lower() == "100-continue"
        ):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return await self._read_bounded(request, limit)

    def _check_body(self, request: web.BaseRequest, route: Route, body: bytes | bytearray) -> None:
        """400 for malformed JSON, 422 for bad or (on Launch routes) missing parameters."""
        if not body:
            if route.params == "required" and self._schema.has_required:
                problems = self._schema.check_request({}, require_key=True)
                raise _Abort(_invalid_parameters(problems))
            return
        mime = request.headers.get("Content-Type", "").partition(";")[0].strip().lower()
        if mime and mime != "application/json" and not mime.endswith("+json"):
            return  # not JSON: nothing to check
        budget = self.body_budget
        cost = decoded_bound(body) if len(body) <= MAX_DECODED_BODY_BYTES else None
        if cost is None or cost > budget.limit:
            # Decoding would hold more than the budget in objects: such bodies are checked not
            # at all, and refused only where request parameters must be checked.
            if self._schema:
                raise _Abort(
                    _error(
                        413,
                        "too_large_to_check",
                        f"request parameters are checked in JSON bodies of at most "
                        f"{MAX_DECODED_BODY_BYTES} bytes whose decoded objects fit in "
                        f"{budget.limit} bytes (--max-buffered-bytes); this one has "
                        f"{len(body)} bytes",
                    )
                )
            return
        if text_too_deep(body):
            raise _Abort(
                _error(
                    400,
                    "malformed_json",
                    f"request body nests deeper than {MAX_DOCUMENT_DEPTH} levels",
                )
            )
        # The decoded objects count against --max-buffered-bytes like the bodies held: decoding
        # is synchronous, so while it runs no other body grows, and the total stays within it.
        if not budget.take(cost):
            raise _Abort(self._busy_buffering())
        try:
            try:
                doc = orjson.loads(body)  # from the bytes as they are: no text copy first
            except orjson.JSONDecodeError as exc:
                raise _Abort(
                    _error(400, "malformed_json", f"request body is not valid JSON: {exc}")
                ) from None
            if self._schema:
                problems = self._schema.check_request(doc, require_key=route.params == "required")
                if problems:
                    raise _Abort(_invalid_parameters(problems))
            del doc  # before the budget is given back
        finally:
            budget.give(cost)

    def _late_body(self, request: web.BaseRequest) -> web.Response:
        """408 for a body past --body-deadline-seconds; the connection is closed right after
        the answer (the rest of the body is not read: it would drip as slowly)."""
        if isinstance(request.protocol, ClientConnection):
            request.protocol.close_after_answer()
        return _late_body(self.config.body_deadline_seconds)

    def _busy_buffering(self) -> web.Response:
        budget = self.body_budget
        return _error(
            503,
            "busy_buffering",
            f"other requests' bodies already fill this forwarder's {budget.limit} bytes "
            f"(--max-buffered-bytes); retry",
            headers={"Retry-After": self._retry_after},
        )

    async def _forward(
        self, request: web.BaseRequest, route: Route, body: bytes | bytearray, t0: float
    ):
        if route.capped:
            if not await self.limiter.acquire():
                raise _Abort(
                    _error(
                        429,
                        "too_many_requests",
                        f"{self.config.per_worker} requests already in flight (perWorker) and "
                        f"no slot freed within {self.config.concurrency_wait_seconds}s",
                        headers={"Retry-After": self._retry_after},
                    )
                )
            try:
                return await self._exchange(request, route, body, t0)
            finally:
                self.limiter.release()
        return await self._exchange(request, route, body, t0)

    async def _exchange(
        self, request: web.BaseRequest, route: Route, body: bytes | bytearray, t0: float
    ):
        target = self._upstream_targets[route.path]
        qs = request.query_string
        if qs:
            target = target + b"?" + qs.encode()
        headers = [(k, v) for k, v in request.raw_headers if k.lower() not in REQUEST_DROPPED_B]
        assert self._pool is not None
        try:
            up = await self._pool.request(request.method.encode(), target, headers, body)
        except UpstreamTimeout:
            raise _Abort(_timeout_error(self.config.upstream_timeout_seconds)) from None
        except UpstreamUnavailable as exc:
            raise _Abort(
                _error(
                    503,
                    "upstream_unavailable",
                    f"model container at {self.config.upstream} is not accepting connections "
                    f"({exc})",
                )
            ) from None
        except UpstreamError as exc:
            raise _Abort(
                _error(502, "upstream_error", f"model container failed to answer: {exc}")
            ) from None
        try:
            return await self._relay(request, route, up, t0)
        finally:
            up.release()

    async def _relay(self, request, route: Route, up: UpstreamResponse, t0: float):
        loop_time = asyncio.get_running_loop().time
        timeout = self.config.upstream_timeout_seconds
        headers = CIMultiDict()
        length = None
        is_sse = False
        for k, v in up.headers:
            low = k.lower()
            if low == b"content-length":
                try:
                    length = int(v)
                except ValueError:
                    length = None
                continue
            if low in HOP_BY_HOP_B:
                continue
            if low == b"content-type" and v.startswith(b"text/event-stream"):
                is_sse = True
            headers.add(k.decode("latin-1"), v.decode("latin-1"))
        if length is not None and length <= BUFFER_LIMIT and not is_sse:
            try:
                data = await up.read(timeout)
            except UpstreamTimeout:
                raise _Abort(_timeout_error(timeout)) from None
            except UpstreamError as exc:
                raise _Abort(
                    _error(502, "upstream_error", f"model container response broke off: {exc}")
                ) from None
            self.metrics.observe_ttfb(route.path, loop_time() - t0)
            return web.Response(status=up.status, body=data, headers=headers)
        resp = web.StreamResponse(status=up.status, headers=headers)
        if length is not None:
            resp.content_length = length
        await resp.prepare(request)
        first = True
        while True:
            try:
                chunk = await up.next_chunk(timeout)
            except UpstreamError as exc:
                # The model broke off or stalled mid-response: the status line is already out,
                # so the only honest signal left is to cut the client's connection.
                log.warning("upstream response on %s broke off: %r", route.path, exc)
                if request.transport is not None:
                    request.transport.close()
                return resp
            if not chunk:
                break
            if first:
                first = False
                self.metrics.observe_ttfb(route.path, loop_time() - t0)
            try:
                await resp.write(chunk)
            except (ConnectionError, aiohttp.ClientConnectionResetError):
                # The client went away: the model's response is dropped with it (release()
                # closes an unfinished upstream connection).
                raise ConnectionResetError("client disconnected") from None
        await resp.write_eof()
        return resp


def decoded_bound(body: bytes | bytearray) -> int:
    """An upper bound of the resident memory JSON ``body`` adds while it is decoded (the
    objects and the decoder's own working memory), from byte counts alone: at C speed, no copy.

    Measured per 1 MiB of body: one string 2 MB, small ints 13 MB, floats 15 MB, short
    strings 23 MB, empty lists 30 MB, ``{"a":1}`` objects 32 MB. So: 3 bytes per byte of ASCII
    text, 6 otherwise (one character past the BMP makes a whole string 4 bytes a character,
    built from a copy), 128 per container, 96 per value or key (a short string, its pointer,
    the decoder's node; an object's entry is a key and a value); brackets and separators inside
    strings count too, which only overestimates. tests/forwarder/test_forwarder_abuse.py
    checks the bound."""
    per_byte = 3 if body.isascii() and b"\\u" not in body else 6
    containers = body.count(b"[") + body.count(b"{")
    separators = body.count(b",") + body.count(b":") + 1
    return per_byte * len(body) + 128 * containers + 96 * separators


def _invalid_parameters(problems: list[dict]) -> web.Response:
    fields = ", ".join(p["field"] for p in problems)
    return _error(
        422,
        "invalid_request_parameters",
        f"invalid model_request_parameters: {fields}",
        errors=problems,
    )


def _late_body(seconds: float) -> web.Response:
    resp = _error(
        408,
        "body_timeout",
        f"the request body did not arrive within {seconds}s (--body-deadline-seconds)",
    )
    resp.force_close()
    return resp


def _too_large(limit: int) -> web.Response:
    return _error(413, "body_too_large", f"request body over {limit} bytes (--max-body-bytes)")


def _timeout_error(seconds: float) -> web.Response:
    return _error(
        504,
        "upstream_timeout",
        f"model container sent nothing for {seconds}s (--upstream-timeout-seconds)",
    )


def _error_ok(doc: dict) -> web.Response:
    resp = web.Response(status=200, body=json.dumps(doc).encode())
    resp.content_type = "application/json"
    return resp
