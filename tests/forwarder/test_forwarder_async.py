"""``modeltemplate-forwarder --mode async`` as a real process, against a real ``redis-server``
and a stand-in ``main`` process that counts what it receives (calls per task, concurrency)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis as redis_sync
import redis.asyncio as aioredis

from devtools.ports import free_port
from devtools.redisserver import RedisServer
from modeltemplate_operator.tasks import protocol as t
from modeltemplate_operator.tasks import queue as taskqueue

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
NS, NAME = "team-a", "whisper"
QUEUE = t.queue_name(NS, NAME)


def _http(url: str, doc: dict | None = None) -> tuple[int, dict]:
    data = None if doc is None else json.dumps(doc).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class Rig:
    """Redis + stand-in main + forwarder(s), all real processes on loopback."""

    def __init__(self, tmp_path, *, per_worker=16, delay=0.01, visibility=2.0, schema=None):
        self.tmp = tmp_path
        self.per_worker = per_worker
        self.visibility = visibility
        self.schema = schema
        self.redis = RedisServer(directory=str(tmp_path / "redis")).start()
        self.main_port = free_port()
        self.main = subprocess.Popen(
            [sys.executable, "-m", "devtools.standin_main", "--port", str(self.main_port)]
            + ["--delay", str(delay)],
            cwd=ROOT,
        )
        self._wait(lambda: _http(self.main_url + "/stats")[0] == 200, "stand-in main")
        self.forwarders: list[subprocess.Popen] = []
        self.fwd_port = 0
        self.client = redis_sync.Redis.from_url(self.redis.url, decode_responses=True)

    @property
    def main_url(self) -> str:
        return f"http://127.0.0.1:{self.main_port}"

    def _wait(self, check, what: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{what} not up within {timeout}s")

    def start_forwarder(self, grace: float = 60.0) -> subprocess.Popen:
        self.fwd_port = free_port()
        args = [
            sys.executable,
            "-m",
            "modeltemplate_operator.forwarder",
            "--mode=async",
            f"--port={self.fwd_port}",
            f"--upstream={self.main_url}",
            f"--broker-url={self.redis.url}",
            f"--queue={QUEUE}",
            f"--per-worker={self.per_worker}",
            f"--visibility-timeout-seconds={self.visibility}",
            f"--grace-period-seconds={grace}",
            "--health-cache-seconds=0.2",
        ]
        if self.schema is not None:
            args.append(f"--request-parameters-schema={json.dumps(self.schema)}")
        proc = subprocess.Popen(args, cwd=ROOT, stderr=open(self.tmp / "fwd.log", "ab"))  # noqa: SIM115
        self.forwarders.append(proc)
        port = self.fwd_port
        self._wait(lambda: _http(f"http://127.0.0.1:{port}/healthz")[0] == 200, "forwarder")
        return proc

    def submit(self, payloads: list) -> list[str]:
        async def go():
            r = aioredis.Redis.from_url(self.redis.url, decode_responses=True)
            try:
                return [
                    await taskqueue.submit(r, NS, NAME, p, result_ttl_seconds=3600)
                    for p in payloads
                ]
            finally:
                await r.aclose()

        return asyncio.run(go())

    def results(self, ids: list[str]) -> dict[str, dict]:
        out = {}
        pipe = self.client.pipeline(transaction=False)
        for task_id in ids:
            pipe.hgetall(t.task_key(task_id))
        for task_id, rec in zip(ids, pipe.execute(), strict=True):
            out[task_id] = t.response(task_id, rec)
        return out

    def done_count(self, ids: list[str]) -> int:
        return sum(r["status"] in t.FINAL for r in self.results(ids).values())

    def wait_all(self, ids: list[str], timeout: float = 120.0) -> dict[str, dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            res = self.results(ids)
            if all(r["status"] in t.FINAL for r in res.values()):
                return res
            time.sleep(0.2)
        res = self.results(ids)
        left = [i for i, r in res.items() if r["status"] not in t.FINAL]
        raise AssertionError(f"{len(left)} of {len(ids)} tasks not final: {left[:5]}")

    def stats(self) -> dict:
        return _http(self.main_url + "/stats")[1]

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.fwd_port}/metrics") as resp:
            return resp.read().decode()

    def close(self) -> None:
        for proc in self.forwarders + [self.main]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.client.close()
        self.redis.close()


@pytest.fixture
def rig_factory(tmp_path):
    rigs = []

    def make(**kw):
        rig = Rig(tmp_path, **kw)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


def _metric(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {line_start!r} in:\n{text}")


def test_500_tasks_all_succeed_with_their_own_results(rig_factory):
    rig = rig_factory(per_worker=16, delay=0.01)
    rig.start_forwarder()
    ids = rig.submit([{"args": {"n": i}} for i in range(500)])
    res = rig.wait_all(ids)
    for i, task_id in enumerate(ids):
        assert res[task_id]["status"] == t.SUCCESS, res[task_id]
        assert res[task_id]["result"] == {"echo": {"n": i}}
        assert res[task_id]["status_code"] == 200
    stats = rig.stats()
    assert stats["total"] == 500
    assert sorted(stats["by_n"], key=int) == [str(i) for i in range(500)]
    print(f"max concurrency at main: {stats['max_active']} (perWorker 16)")
    assert 1 < stats["max_active"] <= 16
    assert rig.client.xlen(QUEUE) == 0  # acknowledged and deleted: the queue is empty
    text = rig.metrics()
    assert _metric(text, f'{t_metric("tasks")}{{outcome="success"}}') == 500
    assert _metric(text, f"{t_metric('task_duration_seconds')}_count") == 500
    assert _metric(text, t_metric("queue_depth")) == 0


def t_metric(suffix: str) -> str:
    return f"modeltemplate_forwarder_{suffix}" + ("_total" if suffix == "tasks" else "")


def test_kill_9_mid_run_and_restart_loses_nothing(rig_factory):
    rig = rig_factory(per_worker=8, delay=0.05, visibility=2.0)
    fwd = rig.start_forwarder()
    n = 300
    ids = rig.submit([{"args": {"n": i}} for i in range(n)])
    deadline = time.monotonic() + 60
    while rig.done_count(ids) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    in_flight_at_main = rig.stats()["active"]
    fwd.send_signal(signal.SIGKILL)
    fwd.wait()
    done_at_kill = rig.done_count(ids)
    rig.start_forwarder()
    res = rig.wait_all(ids, timeout=120)
    assert [res[i]["status"] for i in ids] == [t.SUCCESS] * n
    assert all(res[task_id]["result"] == {"echo": {"n": i}} for i, task_id in enumerate(ids))
    by_n = rig.stats()["by_n"]
    assert sorted(by_n, key=int) == [str(i) for i in range(n)]  # every task reached main
    duplicates = sum(count - 1 for count in by_n.values())
    print(
        f"kill -9 after {done_at_kill}/{n} done, {in_flight_at_main} in flight at main: "
        f"{n} of {n} completed, 0 lost, {duplicates} duplicate call(s) to main"
    )
    # only tasks held by the killed forwarder can run twice
    assert duplicates <= rig.per_worker
    assert rig.stats()["max_active"] <= rig.per_worker
    assert rig.client.xlen(QUEUE) == 0


def test_sigterm_with_20_in_flight_finishes_them_and_leaves_the_rest(rig_factory):
    rig = rig_factory(per_worker=20, delay=3.0)
    fwd = rig.start_forwarder()
    ids = rig.submit([{"args": {"n": i}} for i in range(25)])
    deadline = time.monotonic() + 20
    while rig.stats()["active"] < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rig.stats()["active"] == 20
    fwd.send_signal(signal.SIGTERM)
    assert fwd.wait(30) == 0
    res = rig.results(ids)
    statuses = [r["status"] for r in res.values()]
    assert statuses.count(t.SUCCESS) == 20, statuses
    assert statuses.count(t.PENDING) == 5  # never taken: still queued for the next worker
    assert rig.client.xlen(QUEUE) == 5
    assert rig.stats()["total"] == 20
    rig.start_forwarder()
    res = rig.wait_all(ids)
    assert all(r["status"] == t.SUCCESS for r in res.values())


def test_bad_parameters_fail_with_the_422_message_and_non_2xx_is_a_result(rig_factory):
    schema = {"parameters": [{"name": "language", "type": "str", "required": True}]}
    rig = rig_factory(per_worker=4, schema=schema)
    rig.start_forwarder()
    bad, wrong_type, good, error = rig.submit(
        [
            {"args": {"n": 1}},
            {"args": {"n": 2, "model_request_parameters": {"language": 3}}},
            {"args": {"n": 3, "model_request_parameters": {"language": "en"}}},
            {"args": {"n": 4, "status": 503, "model_request_parameters": {"language": "en"}}},
        ]
    )
    res = rig.wait_all([bad, wrong_type, good, error])
    assert res[bad]["status"] == t.FAILURE
    assert res[bad]["status_code"] == 422
    assert res[bad]["error"].startswith(
        "invalid model_request_parameters: model_request_parameters.language"
    )
    assert "required" in res[bad]["error"]
    assert res[wrong_type]["status"] == t.FAILURE
    assert "must be of type str, got int" in res[wrong_type]["error"]
    assert res[good]["status"] == t.SUCCESS
    assert res[good]["result"]["echo"]["n"] == 3
    assert res[error]["status"] == t.SUCCESS  # main's answer, whatever its status
    assert res[error]["status_code"] == 503
    assert sorted(rig.stats()["by_n"]) == ["3", "4"]  # the bad ones never reached main


def test_main_unready_takes_no_task(rig_factory):
    rig = rig_factory(per_worker=4)
    _http(rig.main_url + "/control", {"healthy": False})
    rig.start_forwarder()
    ids = rig.submit([{"args": {"n": i}} for i in range(10)])
    time.sleep(3)
    assert {r["status"] for r in rig.results(ids).values()} == {t.PENDING}
    assert rig.client.xlen(QUEUE) == 10
    groups = rig.client.xinfo_groups(QUEUE)  # the group is made with the first read
    assert all(g["pending"] == 0 for g in groups), groups
    assert rig.stats()["total"] == 0
    status, body = _http(f"http://127.0.0.1:{rig.fwd_port}/readyz")
    assert status == 503 and body["status"] == "upstream_not_ready"
    _http(rig.main_url + "/control", {"healthy": True})
    res = rig.wait_all(ids, timeout=30)
    assert all(r["status"] == t.SUCCESS for r in res.values())
    assert _http(f"http://127.0.0.1:{rig.fwd_port}/readyz")[0] == 200


def test_redis_restart_mid_run_reconnects_and_finishes(rig_factory):
    rig = rig_factory(per_worker=8, delay=0.02)
    rig.start_forwarder()
    n = 300
    ids = rig.submit([{"args": {"n": i}} for i in range(n)])
    deadline = time.monotonic() + 60
    while rig.done_count(ids) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    rig.client.close()
    rig.redis.restart(down_seconds=1.0)
    rig.client = redis_sync.Redis.from_url(rig.redis.url, decode_responses=True)
    res = rig.wait_all(ids, timeout=120)
    assert all(r["status"] == t.SUCCESS for r in res.values())
    by_n = rig.stats()["by_n"]
    assert len(by_n) == n
    print(
        f"Redis restarted mid-run: {n} of {n} completed, "
        f"{sum(c - 1 for c in by_n.values())} duplicate call(s)"
    )
    assert rig.client.xlen(QUEUE) == 0


def test_async_mode_needs_broker_and_queue():
    out = subprocess.run(
        [sys.executable, "-m", "modeltemplate_operator.forwarder", "--mode=async"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "FORWARDER_BROKER_URL": ""},
    )
    assert out.returncode == 2
    assert "--broker-url" in out.stderr and "--queue" in out.stderr
