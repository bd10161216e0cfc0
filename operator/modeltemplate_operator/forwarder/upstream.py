"""A lean HTTP/1.1 client for the one upstream (the model container), with a keep-alive pool.

Responses are parsed by llhttp (``httptools``). Bodies are handed over as they arrive, so
streams pass through chunk by chunk; reading pauses when the consumer falls behind.
Measured against aiohttp's client for the same job, it roughly halves the forwarder's CPU per
request (docs/forwarder.md).
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from collections import deque
from urllib.parse import urlsplit

import httptools

HIGH_WATER = 256 * 1024
BODY_SLICE = 64 * 1024  # request bodies are written to the upstream in slices of this size
WATCHDOG_TICK = 0.1  # seconds: read timeouts fire up to this much late


class UpstreamError(Exception):
    """The upstream could not be reached or broke off."""


class UpstreamUnavailable(UpstreamError):
    """No connection could be made (refused, unreachable, connect timeout)."""


class UpstreamDisconnected(UpstreamError):
    """The connection closed before a complete response arrived."""


class UpstreamTimeout(UpstreamError):
    """The upstream sent nothing for the read timeout."""


class _Conn(asyncio.Protocol):
    __slots__ = (
        "pool",
        "transport",
        "parser",
        "closed",
        "idle_since",
        "got_bytes",
        "status",
        "headers",
        "chunks",
        "buffered",
        "complete",
        "error",
        "waiter",
        "paused",
        "keep_alive",
        "_hdrs",
        "_delimited_by_close",
        "deadline",
        "writable",
    )

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.writable: asyncio.Future | None = None  # set while the transport's buffer is full
        self._reset()

    def _reset(self) -> None:
        self.got_bytes = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] | None = None
        self._hdrs: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future | None = None
        self.paused = False
        self.keep_alive = False
        self._delimited_by_close = False

    # -- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.error = UpstreamDisconnected(f"malformed response from upstream: {exc}")
            self._wake()
            self.transport.close()  # type: ignore[union-attr]

    def pause_writing(self) -> None:
        self.writable = self.pool.loop.create_future()

    def resume_writing(self) -> None:
        writable, self.writable = self.writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    async def send_body(self, body: bytes | bytearray, timeout: float) -> None:
        """Write ``body`` in slices as the transport takes them: the transport's buffer never
        holds a copy of more than one slice of a large body."""
        view = memoryview(body)
        for start in range(0, len(view), BODY_SLICE):
            if self.closed:
                return  # the response (or its absence) tells the caller what happened
            self.transport.write(view[start : start + BODY_SLICE])  # type: ignore[union-attr]
            if self.writable is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(self.writable), timeout)
                except TimeoutError:
                    raise UpstreamTimeout() from None

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.resume_writing()
        if self.headers is not None and not self.complete and self.error is None:
            # A body delimited by the connection's end completes here; a cut one errors.
            if self._delimited_by_close:
                self.complete = True
            else:
                self.error = UpstreamDisconnected("upstream closed the connection mid-response")
        elif self.headers is None and self.error is None:
            self.error = UpstreamDisconnected("upstream closed the connection without answering")
        self._wake()
        self.pool._forget(self)

    # -- httptools callbacks --------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._hdrs.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers = self._hdrs
        self._delimited_by_close = True
        for name, value in self._hdrs:
            low = name.lower()
            if low == b"content-length" or (low == b"transfer-encoding" and b"chunked" in value):
                self._delimited_by_close = False
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.paused:
            self.paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    # -- consumer side --------------------------------------------------------------------
    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _wait(self, timeout: float) -> None:
        # No timer per wait (they cost more than the rest of a relayed chunk): the pool's
        # watchdog expires waits whose deadline has passed, a few times a second.
        pool = self.pool
        self.waiter = w = pool.loop.create_future()
        self.deadline = pool.loop.time() + timeout
        pool._waiting.add(self)
        pool._ensure_watchdog()
        try:
            await w
        finally:
            pool._waiting.discard(self)
            self.waiter = None


class UpstreamResponse:
    __slots__ = ("_conn", "status", "headers", "_done")

    def __init__(self, conn: _Conn) -> None:
        self._conn = conn
        self.status = conn.status
        self.headers = conn.headers or []
        self._done = False

    async def next_chunk(self, timeout: float) -> bytes:
        """Body bytes received so far (coalesced), or b"" at the end of the body."""
        conn = self._conn
        while True:
            if conn.chunks:
                chunks = conn.chunks
                data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                conn.buffered = 0
                if conn.paused and not conn.closed:
                    conn.paused = False
                    conn.transport.resume_reading()  # type: ignore[union-attr]
                return data
            if conn.error is not None:
                raise conn.error
            if conn.complete:
                self._done = True
                return b""
            await conn._wait(timeout)

    async def read(self, timeout: float) -> bytes:
        parts = []
        while True:
            data = await self.next_chunk(timeout)
            if not data:
                return b"".join(parts)
            parts.append(data)

    def release(self) -> None:
        """Give the connection back to the pool when the response was read whole, else drop it."""
        conn = self._conn
        if conn is None:
            return
        self._conn = None  # type: ignore[assignment]
        if self._done and conn.keep_alive and not conn.closed and conn.error is None:
            conn.pool._put(conn)
        else:
            conn.pool._discard(conn)


class UpstreamPool:
    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        keepalive: float,
    ) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = _ssl.create_default_context() if parts.scheme == "https" else None
        default_port = (parts.scheme == "https" and self.port == 443) or self.port == 80
        self.host_header = (parts.hostname or "").encode("idna") + (
            b"" if default_port else b":%d" % self.port
        )
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keepalive = keepalive
        self._idle: list[_Conn] = []
        self._all: set[_Conn] = set()
        self._waiting: set[_Conn] = set()
        self._watchdog: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_event_loop()

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None:
            self._watchdog = self.loop.call_later(WATCHDOG_TICK, self._watch)

    def _watch(self) -> None:
        self._watchdog = None
        now = self.loop.time()
        for conn in list(self._waiting):
            if conn.deadline <= now:
                self._waiting.discard(conn)
                w = conn.waiter
                if w is not None and not w.done():
                    w.set_exception(UpstreamTimeout())
        if self._waiting:
            self._ensure_watchdog()

    async def _connect(self) -> _Conn:
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: _Conn(self), self.host, self.port, ssl=self.ssl
                ),
                self.connect_timeout,
            )
        except (TimeoutError, OSError) as exc:
            raise UpstreamUnavailable(str(exc) or type(exc).__name__) from None
        self._all.add(conn)
        return conn

    def _get_idle(self) -> _Conn | None:
        now = self.loop.time()
        while self._idle:
            conn = self._idle.pop()
            if conn.closed:
                continue
            if self.keepalive and now - conn.idle_since > self.keepalive:
                self._discard(conn)
                continue
            return conn
        return None

    def _put(self, conn: _Conn) -> None:
        conn._reset()
        conn.idle_since = self.loop.time()
        self._idle.append(conn)

    def _discard(self, conn: _Conn) -> None:
        conn.closed = True
        if conn.transport is not None:
            conn.transport.close()
        self._all.discard(conn)

    def _forget(self, conn: _Conn) -> None:
        self._all.discard(conn)

    async def request(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | bytearray,
        timeout: float | None = None,
    ) -> UpstreamResponse:
        """Send one request and wait for the response head. The caller must ``release()``.

        A body of up to one slice goes out with the head in one write; a bigger one is written
        after the head, slice by slice (``_Conn.send_body``), never copied into one payload."""
        head = [method, b" ", target, b" HTTP/1.1\r\nHost: ", self.host_header, b"\r\n"]
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        if body or method not in (b"GET", b"HEAD"):
            head.append(b"Content-Length: %d\r\n" % len(body))
        head.append(b"\r\n")
        if len(body) <= BODY_SLICE:  # the common case: head and body in one write
            head.append(body)
            body = b""
        payload = b"".join(head)
        for attempt in (1, 2):
            conn = self._get_idle()
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            conn.transport.write(payload)  # type: ignore[union-attr]
            try:
                if body:
                    await conn.send_body(body, timeout or self.read_timeout)
                while conn.headers is None:
                    if conn.error is not None:
                        raise conn.error
                    await conn._wait(timeout or self.read_timeout)
            except UpstreamDisconnected:
                self._discard(conn)
                # A kept-alive connection the upstream closed just as we reused it: once more.
                if reused and not conn.got_bytes and attempt == 1:
                    continue
                raise
            except BaseException:
                self._discard(conn)
                raise
            return UpstreamResponse(conn)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for conn in list(self._all):
            self._discard(conn)
        self._idle.clear()
