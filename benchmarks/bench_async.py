"""ASYNC endpoints: one async forwarder vs calling ``main`` directly, in one run:
``make bench-async``.

Processes besides this one: a real ``redis-server`` (the broker), a stand-in ``main`` answering
``POST /predict`` in 20 ms (``devtools/standin_main.py``), and the forwarder in ``--mode async``
with perWorker 16. The stand-in ``main`` records when its first call arrived and its last call
answered, so both sides are timed at ``main`` the same way.

1. Throughput, alternating rounds (direct, queued, direct, queued, ...):
   - direct: 16 keep-alive clients POST ``/predict`` until N calls are done;
   - queued: N tasks are put in the endpoint's queue first, then the forwarder is started;
     the time runs from ``main``'s first call to the moment every result is stored (the stream
     is empty: each task acknowledged with its result).
   Target: queued tasks/s >= 80 % of direct calls/s.
2. Latency at low load: one task at a time, submitted with the gateway's own code
   (``taskqueue.submit``) and its record polled every 0.5 ms until SUCCESS, vs one direct call at
   a time. Target: p50(submit -> result) - p50(direct) <= 10 ms.

Usage: python benchmarks/bench_async.py [--tasks N] [--rounds R] [--latency-tasks M]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "operator"))

import aiohttp  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from devtools.ports import free_port  # noqa: E402
from devtools.redisserver import RedisServer  # noqa: E402
from modeltemplate_operator.tasks import protocol as t  # noqa: E402
from modeltemplate_operator.tasks import queue as taskqueue  # noqa: E402

PER_WORKER = 16
CLIENTS = 16
DELAY = 0.020
NS, NAME = "bench", "async"
QUEUE = t.queue_name(NS, NAME)


def _http(url: str, doc: dict | None = None) -> dict:
    data = None if doc is None else json.dumps(doc).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _wait(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer")


class Bench:
    def __init__(self) -> None:
        self.redis = RedisServer().start()
        self.main_port = free_port()
        self.main = subprocess.Popen(
            [sys.executable, "-m", "devtools.standin_main", f"--port={self.main_port}"]
            + [f"--delay={DELAY}"],
            cwd=ROOT,
        )
        self.main_url = f"http://127.0.0.1:{self.main_port}"
        _wait(self.main_url + "/stats")
        self.fwd: subprocess.Popen | None = None
        self.fwd_port = 0

    def start_forwarder(self) -> None:
        self.fwd_port = free_port()
        self.fwd = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modeltemplate_operator.forwarder",
                "--mode=async",
                f"--port={self.fwd_port}",
                f"--upstream={self.main_url}",
                f"--broker-url={self.redis.url}",
                f"--queue={QUEUE}",
                f"--per-worker={PER_WORKER}",
                "--log-level=WARNING",
            ],
            cwd=ROOT,
        )

    def stop_forwarder(self) -> None:
        if self.fwd is not None:
            self.fwd.terminate()
            self.fwd.wait(30)
            self.fwd = None

    def reset(self) -> None:
        _http(self.main_url + "/control", {"reset": True})

    def close(self) -> None:
        self.stop_forwarder()
        self.main.terminate()
        self.main.wait()
        self.redis.close()


async def direct_round(bench: Bench, n: int) -> float:
    """Calls/s of ``CLIENTS`` keep-alive clients until ``n`` calls are answered."""
    bench.reset()
    left = n
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as session:

        async def client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with session.post(bench.main_url + "/predict", json={"x": 1}) as resp:
                    await resp.read()
                    assert resp.status == 200

        await asyncio.gather(*(client() for _ in range(CLIENTS)))
    stats = _http(bench.main_url + "/stats")
    assert stats["total"] == n
    return n / (stats["last_at"] - stats["first_at"])


async def queued_round(bench: Bench, n: int) -> tuple[float, int]:
    """Tasks/s of one forwarder over ``n`` queued tasks; and the highest concurrency at main."""
    bench.reset()
    r = aioredis.Redis.from_url(bench.redis.url, decode_responses=True)
    try:
        ids = []
        for start in range(0, n, 50):  # batched submission, before the forwarder runs
            ids += await asyncio.gather(
                *(
                    taskqueue.submit(r, NS, NAME, {"args": {"n": i}}, result_ttl_seconds=600)
                    for i in range(start, min(n, start + 50))
                )
            )
        bench.start_forwarder()
        while await r.xlen(QUEUE) > 0:
            await asyncio.sleep(0.002)
        done = time.time()
        stats = _http(bench.main_url + "/stats")
        pipe = r.pipeline(transaction=False)
        for task_id in ids:
            pipe.hget(t.task_key(task_id), "status")
        statuses = await pipe.execute()
        assert statuses.count(t.SUCCESS) == n, {s: statuses.count(s) for s in set(statuses)}
        assert stats["total"] == n
        return n / (done - stats["first_at"]), stats["max_active"]
    finally:
        bench.stop_forwarder()
        await r.delete(QUEUE)
        await r.aclose()


async def latency(bench: Bench, m: int) -> tuple[list[float], list[float]]:
    """(direct call latencies, submit -> result latencies), one at a time."""
    direct, queued = [], []
    async with aiohttp.ClientSession() as session:
        for _ in range(m):
            t0 = time.perf_counter()
            async with session.post(bench.main_url + "/predict", json={"x": 1}) as resp:
                await resp.read()
            direct.append(time.perf_counter() - t0)
    bench.start_forwarder()
    _wait(f"http://127.0.0.1:{bench.fwd_port}/readyz")
    r = aioredis.Redis.from_url(bench.redis.url, decode_responses=True)
    try:
        # one warm-up task: the forwarder has made its consumer group and connections
        for i in range(m + 1):
            t0 = time.perf_counter()
            task_id = await taskqueue.submit(r, NS, NAME, {"args": {"n": i}}, result_ttl_seconds=60)
            key = t.task_key(task_id)
            while (await r.hget(key, "status")) not in t.FINAL:
                await asyncio.sleep(0.0005)
            if i:
                queued.append(time.perf_counter() - t0)
    finally:
        bench.stop_forwarder()
        await r.aclose()
    return direct, queued


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-tasks", type=int, default=200)
    args = parser.parse_args()
    bench = Bench()
    try:
        print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
        print(
            f"main answers in {DELAY * 1e3:.0f} ms; one forwarder, perWorker {PER_WORKER}; "
            f"direct: {CLIENTS} clients; {args.tasks} calls/tasks per round, {args.rounds} rounds"
        )
        direct_rates, queued_rates, peaks = [], [], []
        for i in range(args.rounds):
            direct_rates.append(asyncio.run(direct_round(bench, args.tasks)))
            rate, peak = asyncio.run(queued_round(bench, args.tasks))
            queued_rates.append(rate)
            peaks.append(peak)
            print(
                f"  round {i + 1}: direct {direct_rates[-1]:7.1f} calls/s   "
                f"queued {rate:7.1f} tasks/s (peak {peak} in flight at main)"
            )
        d, q = statistics.median(direct_rates), statistics.median(queued_rates)
        ratio = q / d
        print(
            f"throughput (median of {args.rounds}): direct {d:.1f} calls/s, through the queue "
            f"{q:.1f} tasks/s = {ratio:.1%} of direct (target >= 80 %: "
            f"{'met' if ratio >= 0.8 else 'NOT met'}); {args.rounds * args.tasks} tasks, all "
            f"SUCCESS; perWorker never exceeded (max {max(peaks)} <= {PER_WORKER})"
        )
        direct, queued = asyncio.run(latency(bench, args.latency_tasks))
        d50, q50 = _pct(direct, 50), _pct(queued, 50)
        overhead = (q50 - d50) * 1e3
        print(
            f"latency, one at a time ({args.latency_tasks} each): direct p50 {d50 * 1e3:.2f} ms "
            f"p99 {_pct(direct, 99) * 1e3:.2f} ms; submit -> result p50 {q50 * 1e3:.2f} ms "
            f"p99 {_pct(queued, 99) * 1e3:.2f} ms"
        )
        print(
            f"p50 overhead of the queue: {overhead:.2f} ms (target <= 10 ms: "
            f"{'met' if overhead <= 10 else 'NOT met'})"
        )
    finally:
        bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
