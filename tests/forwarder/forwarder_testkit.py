"""Shared pieces of the forwarder tests: a real upstream HTTP server and a forwarder, on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time

import aiohttp
from aiohttp import web
from support.procfs import rss_mb  # noqa: F401 - the tests import it from here

from devtools.ports import free_port
from modeltemplate_operator.forwarder import Forwarder, parse_config


def run(coro, timeout: float = 30.0):
    """Run one async scenario with an overall deadline."""

    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


class Upstream:
    """A model container stand-in: records what it sees, answers as the test asks."""

    def __init__(self) -> None:
        self.healthy = True
        self.active = 0
        self.max_active = 0
        self.calls: list[dict] = []
        self.delay = 0.0
        self.cancelled = asyncio.Event()
        self.stream_started = asyncio.Event()
        self.release_stream = asyncio.Event()
        self.all_active: asyncio.Event | None = None
        self.expect_active = 0
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    async def start(self, port: int = 0) -> int:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.calls.append(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string,
                "body": body,
                "headers": request.headers.copy(),
            }
        )
        if request.path in ("/readyz", "/health"):
            return web.Response(status=200 if self.healthy else 500, text="ok")
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        if self.all_active is not None and self.active >= self.expect_active:
            self.all_active.set()
        try:
            if request.path in ("/generate_streaming", "/v1/stream-custom"):
                return await self._stream(request)
            if request.path == "/big":
                return await self._big(request)
            if request.path == "/hang":
                await asyncio.sleep(60)
            if request.path == "/break":
                request.transport.close()
                await asyncio.sleep(1)
            delay = float(request.query.get("sleep", self.delay))
            if delay:
                await asyncio.sleep(delay)
            return web.json_response(
                {
                    "path": request.path,
                    "query": request.query_string,
                    "echo": _decode(body),
                }
            )
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        finally:
            self.active -= 1

    async def _big(self, request: web.Request) -> web.StreamResponse:
        """A large chunked body (no Content-Length): 4 MiB in 64 KiB pieces."""
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await resp.prepare(request)
        for i in range(64):
            await resp.write(bytes([i]) * 65536)
        await resp.write_eof()
        return resp

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        n = int(request.query.get("n", "5"))
        interval = float(request.query.get("interval", "0.01"))
        hold = request.query.get("hold") == "1"
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            for i in range(n):
                await resp.write(f"data: event {i}\n\n".encode())
                if i == 0:
                    self.stream_started.set()
                    if hold:
                        # The rest waits until the test has seen the first event: proof that
                        # the forwarder does not buffer the stream.
                        await self.release_stream.wait()
                await asyncio.sleep(interval)
            await resp.write_eof()
        except (asyncio.CancelledError, ConnectionResetError):
            self.cancelled.set()
            raise
        return resp


def _decode(body: bytes):
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("latin-1")


@contextlib.asynccontextmanager
async def stack(*flags: str, upstream: Upstream | None = None, env: dict | None = None):
    """An upstream (unless given) and a forwarder in front of it; yields (forwarder, upstream)."""
    own = upstream is None
    up = upstream or Upstream()
    if own:
        await up.start()
    cfg = parse_config(
        ["--host", "127.0.0.1", "--port", "0", "--upstream", up.url, *flags], env or {}
    )
    fwd = Forwarder(cfg)
    await fwd.start()
    try:
        yield fwd, up
    finally:
        await fwd.shutdown()
        if own:
            await up.stop()


def base(fwd: Forwarder) -> str:
    return f"http://127.0.0.1:{fwd.port}"


async def spawn(up: Upstream, *flags: str) -> tuple[asyncio.subprocess.Process, int]:
    """The forwarder as a real subprocess in front of ``up``; returns once /healthz answers."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "modeltemplate_operator.forwarder",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--upstream",
        up.url,
        *flags,
        env={**os.environ, "FORWARDER_LOG_LEVEL": "WARNING"},
    )
    deadline = time.monotonic() + 15
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                if (await s.get(f"http://127.0.0.1:{port}/healthz")).status == 200:
                    break
            except aiohttp.ClientError:
                pass
            assert proc.returncode is None, "forwarder exited early"
            assert time.monotonic() < deadline, "forwarder did not come up"
            await asyncio.sleep(0.05)
    return proc, port


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def read_status(reader: asyncio.StreamReader, timeout: float = 10) -> int:
    """The status code of the response on ``reader`` (0 when the connection closed first)."""
    line = await asyncio.wait_for(reader.readline(), timeout)
    return int(line.split()[1]) if line.startswith(b"HTTP/1.") else 0


async def chunked_upload(port: int, total: int, piece: int = 256 * 1024) -> int:
    """POST /predict with a chunked body of ``total`` bytes; stops sending once an answer came."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    answer = asyncio.ensure_future(read_status(reader, timeout=120))
    chunk = b"%x\r\n" % piece + b"x" * piece + b"\r\n"
    try:
        for _ in range(total // piece):
            if answer.done():
                break
            writer.write(chunk)
            await writer.drain()
        else:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except ConnectionError:
        pass
    try:
        return await answer
    finally:
        writer.close()


async def exchange(port: int, data: bytes) -> tuple[int, bytes]:
    """Send raw bytes on a new connection; the status and head of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        status = await read_status(reader)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10) if status else b""
        return status, head
    finally:
        writer.close()


async def sized_upload(port: int, total: int, piece: int = 65536) -> int:
    """POST /predict with a Content-Length body of ``total`` bytes, sent until an answer came;
    the status (0 when the connection closed first)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
    answer = asyncio.ensure_future(read_status(reader))
    try:
        for _ in range(total // piece + 1):
            if answer.done():
                break
            writer.write(b"x" * piece)
            await writer.drain()
    except ConnectionError:
        pass
    try:
        return await answer
    finally:
        writer.close()


#: Malformed requests and the status each gets (nothing of them may reach the model).
MALFORMED = {
    "100 KB header": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        431,
    ),
    "10,000 headers": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000))
        + b"\r\n",
        431,
    ),
    "20 KB request target": (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "Content-Length and Transfer-Encoding": (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
    ),
    "Content-Length beyond 64 bits": (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
        400,
    ),
    "header without colon": (b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n", 400),
    "TLS hello": (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage\r\n\r\n", 400),
    "raw garbage": (bytes(range(256)) * 4, 400),
    "gzip body that is not gzip": (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: gzip\r\nContent-Length: 8\r\n\r\nnotgzip!",
        400,
    ),
    "bad chunk size": (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        400,
    ),
}
