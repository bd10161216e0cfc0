"""Forwarder vs direct, on loopback, in one run: ``make bench-forwarder``.

Three processes besides this one: a test upstream (answers /predict in 20 ms, streams SSE on
/stream), the forwarder (``python -m modeltemplate_operator.forwarder``) in front of it, and a load
generator started afresh for each measurement. The same load generator code hits the upstream
directly and through the forwarder, alternately (direct, forwarded, direct, forwarded, ...), so
the ratios compare like with like and drift on a busy machine hits both sides.

Phases:

1. 64 concurrent keep-alive clients, POST /predict for a fixed time: requests/s, p50, p99.
2. 200 concurrent SSE streams of 200 events (started over the first second, so all 200 overlap
   while later ones begin): time to first event (TTFB) and event integrity — every event
   checked byte for byte and in order.
3. 256 concurrent slow streams through the forwarder: peak RSS of the forwarder process.

Usage: python benchmarks/bench_forwarder.py [--quick] [--event-loop auto|asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # devtools/

from devtools.ports import free_ports  # noqa: E402

UPSTREAM_DELAY = 0.020
PREDICT_BODY = json.dumps(
    {"prompt": "Tell me about GPUs", "model_request_parameters": {"max_tokens": 16}}
).encode()


def _complete_message(buf: bytes) -> tuple[bytes, int] | None:
    """(head, size) of the first whole HTTP/1.1 message in ``buf`` (Content-Length bodies only)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end]
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    size = end + 4 + length
    return (head, size) if len(buf) >= size else None


# ------------------------------------------------------------------------------------------
# test upstream
# ------------------------------------------------------------------------------------------
def event_bytes(stream_id: str, seq: int) -> bytes:
    return b'id: %d\ndata: {"stream": "%s", "seq": %d, "token": "tok%06d"}\n\n' % (
        seq,
        stream_id.encode(),
        seq,
        seq,
    )


PREDICT_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 30\r\n\r\n"
    b'{"output": "ok", "tokens": 16}'
)


class _UpstreamProto(asyncio.Protocol):
    """The test upstream: a bare protocol, so that it costs as little CPU as possible."""

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buf = b""
        self.busy = False
        self.closed = False
        self.loop = asyncio.get_running_loop()

    def connection_lost(self, exc) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._next()

    def _next(self) -> None:
        if self.busy:
            return
        message = _complete_message(self.buf)
        if message is None:
            return
        head, size = message
        self.buf = self.buf[size:]
        target = head.split(b" ", 2)[1]
        path, _, query = target.partition(b"?")
        self.busy = True
        if path == b"/predict":
            self.loop.call_later(UPSTREAM_DELAY, self._answer, PREDICT_RESPONSE)
        elif path == b"/stream":
            self.loop.create_task(self._stream(query))
        elif path == b"/readyz":
            self._answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        else:
            self._answer(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    def _answer(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)
        self.busy = False
        self._next()

    async def _stream(self, query: bytes) -> None:
        params = dict(p.split(b"=", 1) for p in query.split(b"&") if b"=" in p)
        n = int(params.get(b"n", b"200"))
        interval = float(params.get(b"interval", b"0.025"))
        sid = params.get(b"id", b"s").decode()
        write = self.transport.write
        write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        await asyncio.sleep(UPSTREAM_DELAY)
        start = self.loop.time()
        for seq in range(n):
            if self.closed:
                return
            ev = event_bytes(sid, seq)
            write(b"%x\r\n%s\r\n" % (len(ev), ev))
            if seq + 1 < n:
                # paced on an absolute schedule so slow ticks do not stretch the stream
                await asyncio.sleep(max(start + (seq + 1) * interval - self.loop.time(), 0))
        self._answer(b"0\r\n\r\n")


async def run_upstream(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_UpstreamProto, "127.0.0.1", port, backlog=2048)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


# ------------------------------------------------------------------------------------------
# load generator
# ------------------------------------------------------------------------------------------
async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        low = line.lower()
        if low.startswith(b"content-length:"):
            length = int(line[15:])
        elif low.startswith(b"transfer-encoding:") and b"chunked" in low:
            chunked = True
    if length is not None:
        return status, await reader.readexactly(length)
    body = bytearray()
    if chunked:
        while True:
            size = int((await reader.readline()).strip(), 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += data[:-2]
    return status, bytes(body)


class _PredictClient(asyncio.Protocol):
    """One keep-alive client of phase 1: a bare protocol, to keep the load generator cheap."""

    def __init__(self, run: dict) -> None:
        self.run = run
        self.buf = b""
        self.t0 = 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        if not self.run["done"].done() and exc is not None:
            self.run["done"].set_exception(ConnectionError(str(exc)))

    def send(self) -> None:
        self.t0 = time.perf_counter()
        self.transport.write(self.run["request"])

    def data_received(self, data: bytes) -> None:
        self.buf += data
        message = _complete_message(self.buf)
        if message is None:
            return
        head, size = message
        t1 = time.perf_counter()
        self.buf = self.buf[size:]
        run = self.run
        if self.t0 >= run["t_measure"]:
            if head[9:12] == b"200":
                run["latencies"].append(t1 - self.t0)
            else:
                run["errors"] += 1
        if t1 < run["t_end"]:
            self.send()
        else:
            self.transport.close()
            run["left"] -= 1
            if run["left"] == 0 and not run["done"].done():
                run["done"].set_result(None)


async def load_predict(port: int, clients: int, duration: float, warmup: float) -> dict:
    loop = asyncio.get_running_loop()
    request = (
        b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(PREDICT_BODY), PREDICT_BODY)
    )
    t_start = time.perf_counter()
    run = {
        "request": request,
        "latencies": [],
        "errors": 0,
        "t_measure": t_start + warmup,
        "t_end": t_start + warmup + duration,
        "left": clients,
        "done": loop.create_future(),
    }
    conns = []
    for _ in range(clients):
        _, proto = await loop.create_connection(lambda: _PredictClient(run), "127.0.0.1", port)
        conns.append(proto)
    # Clients start spread over one upstream period, as independent clients would; started
    # all at once they stay phase-locked to the fixed 20 ms upstream and arrive in bursts.
    for i, proto in enumerate(conns):
        loop.call_later(UPSTREAM_DELAY * i / clients, proto.send)
    await run["done"]
    latencies = sorted(run["latencies"])
    return {
        "requests": len(latencies),
        "errors": run["errors"],
        "rps": len(latencies) / duration,
        "p50": _pct(latencies, 50),
        "p99": _pct(latencies, 99),
    }


async def load_streams(
    port: int, streams: int, events: int, interval: float, ramp: float, tag: str
) -> dict:
    clock = time.perf_counter
    ttfbs: list[float] = []
    bad: list[str] = []

    async def one(i: int) -> None:
        await asyncio.sleep(ramp * i / streams)
        sid = f"{tag}{i}"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            t0 = clock()
            writer.write(
                b"POST /stream?n=%d&interval=%s&id=%s HTTP/1.1\r\nHost: bench\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (events, str(interval).encode(), sid.encode(), len(PREDICT_BODY), PREDICT_BODY)
            )
            head = await reader.readuntil(b"\r\n\r\n")
            if head[9:12] != b"200" or b"chunked" not in head.lower():
                bad.append(f"{sid}: unexpected head {head[:40]!r}")
                return
            got = bytearray()
            first = True
            while True:
                size = int((await reader.readline()).strip(), 16)
                data = await reader.readexactly(size + 2)
                if size == 0:
                    break
                if first:
                    ttfbs.append(clock() - t0)
                    first = False
                got += data[:-2]
            expected = b"".join(event_bytes(sid, seq) for seq in range(events))
            if bytes(got) != expected:
                n = got.count(b"\n\n")
                bad.append(f"{sid}: {n} events received, content differs")
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            bad.append(f"{sid}: {exc!r}")
        finally:
            writer.close()

    t0 = clock()
    await asyncio.gather(*(one(i) for i in range(streams)))
    ttfbs.sort()
    return {
        "streams": streams,
        "complete": streams - len(bad),
        "events_expected": streams * events,
        "bad": bad[:5],
        "ttfb_p50": _pct(ttfbs, 50),
        "ttfb_p99": _pct(ttfbs, 99),
        "seconds": clock() - t0,
    }


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))
    return values[k]


# ------------------------------------------------------------------------------------------
# orchestration
# ------------------------------------------------------------------------------------------
def _wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


# CPU placement. The pod gives the forwarder its own CPU (the sidecar requests cpu: 1) and the
# model runs elsewhere; on this 2-core box the forwarder gets core 1 and the load generator and
# the test upstream share core 0, in the direct runs as in the forwarded ones. --no-pin leaves
# placement to the OS scheduler.
PIN = {"helpers": None, "forwarder": None}


def _pinned(role: str):
    cpus = PIN[role]
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def _loadgen(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "loadgen", *args],
        preexec_fn=_pinned("helpers"),
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return json.loads(out.stdout)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter phases (smoke run)")
    ap.add_argument("--event-loop", default="auto", help="forwarder's --event-loop")
    ap.add_argument("--rounds", type=int, default=3, help="direct/forwarded pairs for phase 1")
    ap.add_argument(
        "--no-pin", action="store_true", help="do not give the forwarder a core of its own"
    )
    args = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if not args.no_pin and len(cpus) >= 2:
        PIN["helpers"], PIN["forwarder"] = {cpus[0]}, {cpus[1]}
    duration = 2.0 if args.quick else 6.0
    rounds = 1 if args.quick else args.rounds
    sse_rounds = 1 if args.quick else 2

    up_port, fw_port = free_ports(2)
    procs: list[subprocess.Popen] = []
    try:
        upstream = subprocess.Popen(
            [sys.executable, __file__, "upstream", str(up_port)],
            stdout=subprocess.PIPE,
            preexec_fn=_pinned("helpers"),
        )
        procs.append(upstream)
        _wait_port(up_port)
        env = dict(os.environ)
        forwarder = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modeltemplate_operator.forwarder",
                "--port",
                str(fw_port),
                "--host",
                "127.0.0.1",
                "--upstream",
                f"http://127.0.0.1:{up_port}",
                "--predict-route",
                "/predict",
                "--streaming-predict-route",
                "/stream",
                "--per-worker",
                "512",
                "--event-loop",
                args.event_loop,
                "--log-level",
                "WARNING",
                "--shutdown-delay-seconds",  # stopped by SIGTERM at the end: no endpoints to wait for
                "0",
            ],
            env=env,
            preexec_fn=_pinned("forwarder"),
        )
        procs.append(forwarder)
        _wait_port(fw_port)
        idle_rss = _rss_mb(forwarder.pid)
        print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
        print(f"forwarder event loop: {args.event_loop}; python {sys.version.split()[0]}")
        if PIN["forwarder"]:
            print(
                f"CPU placement: forwarder on core {min(PIN['forwarder'])}, load generator and "
                f"upstream on core {min(PIN['helpers'])} (direct and forwarded alike)"
            )
        else:
            print("CPU placement: left to the OS scheduler (--no-pin)")

        # warm both paths (connection pools, imports, caches)
        _loadgen("predict", str(up_port), "64", "1", "0.3")
        _loadgen("predict", str(fw_port), "64", "1", "0.3")

        # -- phase 1 ---------------------------------------------------------------------
        direct, fwd = [], []
        fw_cpu = 0.0
        for _ in range(rounds):
            direct.append(_loadgen("predict", str(up_port), "64", str(duration), "0.5"))
            c0 = _cpu_seconds(forwarder.pid)
            fwd.append(_loadgen("predict", str(fw_port), "64", str(duration), "0.5"))
            fw_cpu += _cpu_seconds(forwarder.pid) - c0
        d_rps = sum(r["rps"] for r in direct) / rounds
        f_rps = sum(r["rps"] for r in fwd) / rounds
        d_p50 = statistics.median(r["p50"] for r in direct)
        f_p50 = statistics.median(r["p50"] for r in fwd)
        d_p99 = statistics.median(r["p99"] for r in direct)
        f_p99 = statistics.median(r["p99"] for r in fwd)
        errors = sum(r["errors"] for r in direct + fwd)
        print()
        print(
            f"[1] 64 concurrent clients, POST /predict, upstream answers in "
            f"{UPSTREAM_DELAY * 1000:.0f} ms ({rounds} x {duration:.0f} s per side, alternating)"
        )
        print(
            f"    direct:    {d_rps:8.1f} req/s  p50 {d_p50 * 1e3:6.2f} ms  p99 {d_p99 * 1e3:6.2f} ms"
        )
        print(
            f"    forwarded: {f_rps:8.1f} req/s  p50 {f_p50 * 1e3:6.2f} ms  p99 {f_p99 * 1e3:6.2f} ms"
        )
        print(
            f"    throughput ratio {f_rps / d_rps * 100:.1f} % (target >= 95 %)   "
            f"added p50 {(f_p50 - d_p50) * 1e3:+.2f} ms (target <= 1)   "
            f"added p99 {(f_p99 - d_p99) * 1e3:+.2f} ms (target <= 5)   non-200: {errors}"
        )
        print(
            f"    forwarder CPU: {fw_cpu / (rounds * (duration + 0.5)) * 100:.0f} % of one core "
            f"at {f_rps:.0f} req/s, about {fw_cpu / (f_rps * rounds * (duration + 0.5)) * 1e6:.0f} "
            "us of CPU per request"
        )

        # -- phase 2 ---------------------------------------------------------------------
        streams, events = 200, (40 if args.quick else 200)
        interval = 0.025
        sd, sf = [], []
        sse_cpu = 0.0
        for r in range(sse_rounds):
            sd.append(
                _loadgen(
                    "streams",
                    str(up_port),
                    str(streams),
                    str(events),
                    str(interval),
                    "1.0",
                    f"d{r}-",
                )
            )
            c0 = _cpu_seconds(forwarder.pid)
            sf.append(
                _loadgen(
                    "streams",
                    str(fw_port),
                    str(streams),
                    str(events),
                    str(interval),
                    "1.0",
                    f"f{r}-",
                )
            )
            sse_cpu += _cpu_seconds(forwarder.pid) - c0
        d_t = statistics.median(r["ttfb_p50"] for r in sd)
        f_t = statistics.median(r["ttfb_p50"] for r in sf)
        d_t99 = statistics.median(r["ttfb_p99"] for r in sd)
        f_t99 = statistics.median(r["ttfb_p99"] for r in sf)
        f_ok = sum(r["complete"] for r in sf)
        d_ok = sum(r["complete"] for r in sd)
        print()
        print(
            f"[2] {streams} concurrent SSE streams x {events} events ({interval * 1000:.0f} ms apart, "
            f"first after {UPSTREAM_DELAY * 1000:.0f} ms; streams started over 1 s; {sse_rounds} round(s))"
        )
        print(f"    direct:    TTFB p50 {d_t * 1e3:6.2f} ms  p99 {d_t99 * 1e3:6.2f} ms")
        print(f"    forwarded: TTFB p50 {f_t * 1e3:6.2f} ms  p99 {f_t99 * 1e3:6.2f} ms")
        print(
            f"    added TTFB p50 {(f_t - d_t) * 1e3:+.2f} ms (target <= 2)   "
            f"added TTFB p99 {(f_t99 - d_t99) * 1e3:+.2f} ms"
        )
        print(
            f"    integrity: forwarded {f_ok}/{streams * sse_rounds} streams with all "
            f"{events} events byte-exact and in order (direct {d_ok}/{streams * sse_rounds})"
        )
        sse_secs = sum(r["seconds"] for r in sf)
        print(
            f"    forwarder CPU while streaming: {sse_cpu / sse_secs * 100:.0f} % of one core "
            f"({streams * events * sse_rounds / sse_secs:.0f} events/s relayed)"
        )
        for r in sf:
            for line in r["bad"]:
                print(f"      {line}")

        # -- phase 3 ---------------------------------------------------------------------
        n3 = 256
        events3, interval3 = (20 if args.quick else 60), 0.05
        gen = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "loadgen",
                "streams",
                str(fw_port),
                str(n3),
                str(events3),
                str(interval3),
                "0.5",
                "m-",
            ],
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=_pinned("helpers"),
        )
        peak = 0.0
        while gen.poll() is None:
            peak = max(peak, _rss_mb(forwarder.pid))
            time.sleep(0.05)
        r3 = json.loads(gen.stdout.read())
        print()
        print(
            f"[3] {n3} concurrent streams through the forwarder ({events3} events, {interval3 * 1000:.0f} ms apart)"
        )
        print(
            f"    forwarder RSS: idle {idle_rss:.1f} MB, peak {peak:.1f} MB (target <= 60)   "
            f"streams complete {r3['complete']}/{n3}"
        )
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    return 0


def _sub(argv: list[str]) -> None:
    # The upstream and the load generator always run on plain asyncio, whatever the forwarder
    # runs on, so that comparisons between forwarder set-ups keep the same helpers.
    run = asyncio.run
    if argv[0] == "upstream":
        run(run_upstream(int(argv[1])))
    elif argv[0] == "loadgen" and argv[1] == "predict":
        port, clients, duration, warmup = int(argv[2]), int(argv[3]), float(argv[4]), float(argv[5])
        print(json.dumps(run(load_predict(port, clients, duration, warmup))))
    elif argv[0] == "loadgen" and argv[1] == "streams":
        port, n, events, interval, ramp, tag = argv[2:8]
        print(
            json.dumps(
                run(load_streams(int(port), int(n), int(events), float(interval), float(ramp), tag))
            )
        )
    else:
        raise SystemExit(f"unknown sub-command {argv}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("upstream", "loadgen"):
        _sub(sys.argv[1:])
    else:
        sys.exit(main())
