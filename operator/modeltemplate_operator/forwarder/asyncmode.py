"""``modeltemplate-forwarder --mode async``: the queue-consuming sidecar of ASYNC endpoints.

It consumes the endpoint's task queue (a Redis Stream, see :mod:`modeltemplate_operator.tasks.protocol.protocol`
for the protocol and why), keeps at most ``perWorker`` tasks in flight to ``main``, POSTs each
task's ``args`` to ``main``'s predict route and stores the answer with its HTTP status (a non-2xx
answer is a result, not a failure). A task whose ``model_request_parameters`` fail the template's
schema is a ``FAILURE`` with the 422 message, and ``main`` is not called.

- No task is taken while ``main``'s healthcheck does not answer 200 (``/readyz`` says so).
- A task is acknowledged only with its result stored (one ``MULTI``); the forwarder renews its
  in-flight entries so no other forwarder takes them; entries of dead forwarders are reclaimed
  after ``--visibility-timeout-seconds``.
- SIGTERM: no new task; in-flight tasks get ``--grace-period-seconds`` to finish; what is left
  then goes back to the queue; exit 0.
- Redis going away (restart, failover): every operation is retried until it answers again.

Own HTTP routes on ``--port``: ``/healthz``, ``/readyz``, ``/metrics`` (queue depth, tasks by
outcome, task duration, tasks in flight).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .. import contract as c
from ..tasks import protocol as t
from .config import Config
from .health import UpstreamHealth
from .metrics import CONTENT_TYPE, LATENCY_BUCKETS, Histogram
from .server import listen
from .upstream import UpstreamError, UpstreamPool, UpstreamTimeout, UpstreamUnavailable

log = logging.getLogger("modeltemplate_operator.forwarder.async")

_BROKER_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
_READ_BLOCK_MS = 1000
# Marks the task STARTED unless it is already final (a reclaimed duplicate): one round trip.
_START = """
local s = redis.call('HGET', KEYS[1], 'status')
if s == 'SUCCESS' or s == 'FAILURE' then return s end
redis.call('HSET', KEYS[1], 'status', 'STARTED')
return s or ''
"""
OUTCOMES = ("success", "failure", "returned", "duplicate")


def _log_readiness(ok: bool) -> None:
    log.info("model container %s", "ready" if ok else "not ready: taking no tasks")


class AsyncForwarder:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.stream = config.queue
        self.consumer = config.consumer_name or f"{socket.gethostname()}-{os.getpid()}"
        self.inflight: dict[str, tuple[asyncio.Task, dict]] = {}
        self.stopping = False
        self.port: int | None = None
        self.broker_up = False
        self.queue_depth = 0
        self.outcomes = dict.fromkeys(OUTCOMES, 0)
        self.durations = Histogram(LATENCY_BUCKETS)
        self._slot_freed = asyncio.Event()
        self.health = UpstreamHealth(config, _log_readiness)
        self._group_ready = False
        self._cursor = "0-0"
        prefix = urlsplit(config.upstream).path.rstrip("/")
        self._predict_target = (prefix + config.predict_route).encode()
        self._schema = config.request_parameters_schema
        self._redis: aioredis.Redis | None = None
        self._pool: UpstreamPool | None = None
        self._runner: web.AppRunner | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        self.registry.register(ProcessCollector(registry=None))

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> int:
        cfg = self.config
        self._redis = aioredis.Redis.from_url(
            cfg.broker_url,
            password=cfg.broker_password or None,
            decode_responses=True,
            socket_connect_timeout=5,
            socket_timeout=max(10.0, _READ_BLOCK_MS / 1000 + 5),
            health_check_interval=30,
            # each task in flight holds a connection for a command at a time, plus the
            # blocking read, reclaiming, renewing and the metrics scrape
            max_connections=cfg.per_worker + 8,
        )
        self._start_script = self._redis.register_script(_START)
        self._pool = UpstreamPool(
            cfg.upstream,
            connect_timeout=cfg.upstream_connect_timeout_seconds,
            read_timeout=cfg.upstream_timeout_seconds,
            keepalive=cfg.upstream_keepalive_seconds,
        )
        self.health.pool = self._pool
        app = web.Application()
        app.router.add_get(c.LIVE_PATH, self._healthz)
        app.router.add_get(c.READY_PATH, self._readyz)
        app.router.add_get(c.METRICS_PATH, self._metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self.port = await listen(self._runner, cfg.host, cfg.port)
        log.info(
            "consuming %s as %s -> %s%s (perWorker %s); metrics on :%s",
            self.stream,
            self.consumer,
            cfg.upstream,
            cfg.predict_route,
            cfg.per_worker,
            self.port,
        )
        return self.port

    async def serve_forever(self) -> None:
        await self.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        consume = asyncio.create_task(self.consume())
        renew = asyncio.create_task(self._renew_loop())
        try:
            await stop.wait()
        finally:
            await self.drain(consume, renew)

    async def drain(self, consume: asyncio.Task, renew: asyncio.Task) -> None:
        """Stop taking tasks, give in-flight ones the grace period, return the rest."""
        self.stopping = True
        self._slot_freed.set()
        await consume  # leaves within one blocking read
        running = [task for task, _ in self.inflight.values()]
        log.info(
            "draining: %d task(s) in flight, grace period %ss",
            len(running),
            self.config.grace_period_seconds,
        )
        if running:
            await asyncio.wait(running, timeout=self.config.grace_period_seconds)
        left = dict(self.inflight)
        for task, _ in left.values():
            task.cancel()
        if left:
            await asyncio.gather(*(task for task, _ in left.values()), return_exceptions=True)
            for entry_id, (_, fields) in left.items():
                await self._return(entry_id, fields, forever=False)
            log.info("returned %d unfinished task(s) to the queue", len(left))
        renew.cancel()
        await asyncio.gather(renew, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._pool is not None:
            self._pool.close()
        if self._redis is not None:
            await self._redis.aclose()
        log.info("stopped")

    # -- HTTP -----------------------------------------------------------------------------
    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.stopping:
            return web.json_response({"status": "draining"}, status=503)
        if not await self.health.healthy():
            return web.json_response(
                {"status": "upstream_not_ready", "message": self.health.not_ready_message},
                status=503,
            )
        if not self.broker_up:
            return web.json_response({"status": "broker_unreachable"}, status=503)
        return web.json_response({"status": "ready"})

    async def _metrics(self, request: web.Request) -> web.Response:
        try:
            self.queue_depth = await self._redis.xlen(self.stream)  # type: ignore[union-attr]
        except RedisError:
            pass
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE}
        )

    # -- consuming ------------------------------------------------------------------------
    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self._redis.xgroup_create(  # type: ignore[union-attr]
                self.stream, t.CONSUMER_GROUP, id="0", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def consume(self) -> None:
        r = self._redis
        assert r is not None
        cfg = self.config
        loop = asyncio.get_running_loop()
        reclaim_every = min(cfg.visibility_timeout_seconds / 2, 5.0)
        next_reclaim = 0.0
        backoff = 0.1
        while not self.stopping:
            try:
                if not await self.health.healthy():
                    await asyncio.sleep(max(cfg.health_cache_seconds, 0.2))
                    continue
                free = cfg.per_worker - len(self.inflight)
                if free <= 0:
                    self._slot_freed.clear()
                    try:
                        await asyncio.wait_for(self._slot_freed.wait(), 1.0)
                    except TimeoutError:
                        pass
                    continue
                await self._ensure_group()
                entries: list = []
                if loop.time() >= next_reclaim:
                    entries = await self._reclaim(free)
                    next_reclaim = loop.time() + reclaim_every
                if not entries:
                    got = await r.xreadgroup(
                        t.CONSUMER_GROUP,
                        self.consumer,
                        {self.stream: ">"},
                        count=free,
                        block=_READ_BLOCK_MS,
                    )
                    entries = got[0][1] if got else []
                if not self.broker_up:
                    log.info("broker %s answers", _safe_url(cfg.broker_url))
                self.broker_up = True
                backoff = 0.1
                for entry_id, fields in entries:
                    self._begin(entry_id, fields)
            except _BROKER_DOWN as exc:
                if self.broker_up:
                    log.warning("broker unreachable (%s); retrying", exc)
                self.broker_up = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # the broker lost the stream (restarted empty)
                    self._group_ready = False
                    continue
                log.error("broker refused a read: %s", exc)
                await asyncio.sleep(1.0)

    async def _reclaim(self, count: int) -> list:
        """Entries held longer than the visibility timeout by forwarders that stopped renewing
        them (killed, lost): taken over by this one."""
        got = await self._redis.xautoclaim(  # type: ignore[union-attr]
            self.stream,
            t.CONSUMER_GROUP,
            self.consumer,
            min_idle_time=int(self.config.visibility_timeout_seconds * 1000),
            start_id=self._cursor,
            count=count,
        )
        self._cursor = got[0] or "0-0"
        entries = []
        for entry_id, fields in got[1]:
            if not fields:  # deleted under its pending entry: nothing to run
                await self._redis.xack(self.stream, t.CONSUMER_GROUP, entry_id)  # type: ignore[union-attr]
                continue
            entries.append((entry_id, fields))
        if entries:
            log.info("reclaimed %d stale task(s)", len(entries))
        return entries

    async def _renew_loop(self) -> None:
        """Reset the idle time of this forwarder's in-flight entries well within the visibility
        timeout, so a long task of a live forwarder is never reclaimed by another."""
        every = self.config.visibility_timeout_seconds / 3
        while True:
            await asyncio.sleep(every)
            ids = list(self.inflight)
            if not ids:
                continue
            try:
                await self._redis.xclaim(  # type: ignore[union-attr]
                    self.stream, t.CONSUMER_GROUP, self.consumer, 0, ids, justid=True
                )
            except RedisError as exc:
                log.debug("renewing in-flight tasks failed: %s", exc)

    def _begin(self, entry_id: str, fields: dict) -> None:
        task = asyncio.create_task(self._run(entry_id, fields))
        self.inflight[entry_id] = (task, fields)

    # -- one task -------------------------------------------------------------------------
    async def _run(self, entry_id: str, fields: dict) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        task_id = fields.get(t.F_TASK_ID, "")
        key = t.task_key(task_id)
        returned = False
        try:
            before = await self._retry(lambda: self._start_script(keys=[key]))
            if before in t.FINAL:  # run and stored already; only its acknowledgement was lost
                await self._store(entry_id, key, None)
                self.outcomes["duplicate"] += 1
                return
            try:
                payload = json.loads(fields.get(t.F_PAYLOAD, "null"))
            except ValueError as exc:
                await self._store(
                    entry_id, key, (t.FAILURE, None, 400, f"task payload is not JSON: {exc}")
                )
                self.outcomes["failure"] += 1
                return
            outcome = await self._call_main(t.main_body(payload))
            if outcome is None:  # main went away: the task goes back to the queue
                returned = True
                await self._return(entry_id, fields, forever=True)
                self.outcomes["returned"] += 1
                return
            await self._store(entry_id, key, outcome)
            self.outcomes["success" if outcome[0] == t.SUCCESS else "failure"] += 1
        finally:
            self.inflight.pop(entry_id, None)
            self._slot_freed.set()
            if not returned:
                self.durations.observe(loop.time() - t0)

    async def _call_main(self, body) -> tuple | None:
        """(status, result, status_code, error), or None when main does not take connections."""
        problems = self._schema.check_request(body, require_key=True) if self._schema else []
        if problems:
            names = ", ".join(p["field"] for p in problems)
            detail = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
            return (
                t.FAILURE,
                {"errors": problems},
                422,
                f"invalid model_request_parameters: {names} ({detail})",
            )
        data = json.dumps(body).encode()
        timeout = self.config.upstream_timeout_seconds
        assert self._pool is not None
        try:
            up = await self._pool.request(
                b"POST", self._predict_target, [(b"Content-Type", b"application/json")], data
            )
            try:
                raw = await up.read(timeout)
                status = up.status
            finally:
                up.release()
        except UpstreamUnavailable as exc:
            log.warning("model container refused the connection (%s): task returned", exc)
            self.health.forget()  # check again before taking more
            return None
        except UpstreamTimeout:
            return (t.FAILURE, None, None, f"model container sent nothing for {timeout}s")
        except UpstreamError as exc:
            return (t.FAILURE, None, None, f"model container failed to answer: {exc}")
        try:
            result = json.loads(raw) if raw else None
        except ValueError:
            result = raw.decode("utf-8", "replace")
        return (t.SUCCESS, result, status, None)

    async def _store(self, entry_id: str, key: str, outcome: tuple | None) -> None:
        """The result (when there is one) and the acknowledgement, in one transaction."""

        async def write():
            pipe = self._redis.pipeline(transaction=True)  # type: ignore[union-attr]
            if outcome is not None:
                pipe.hset(key, mapping=t.result_fields(*outcome))
                pipe.expire(key, self.config.result_ttl_seconds)
            pipe.xack(self.stream, t.CONSUMER_GROUP, entry_id)
            pipe.xdel(self.stream, entry_id)
            await pipe.execute()

        await self._retry(write)

    async def _return(self, entry_id: str, fields: dict, *, forever: bool) -> None:
        """Put a task back at the end of the queue (as a new entry) and drop the held one."""

        async def write():
            pipe = self._redis.pipeline(transaction=True)  # type: ignore[union-attr]
            pipe.hset(t.task_key(fields.get(t.F_TASK_ID, "")), t.F_STATUS, t.PENDING)
            pipe.xadd(self.stream, fields)
            pipe.xack(self.stream, t.CONSUMER_GROUP, entry_id)
            pipe.xdel(self.stream, entry_id)
            await pipe.execute()

        try:
            await self._retry(write, attempts=None if forever else 20)
        except _BROKER_DOWN as exc:
            # still held in the group: another forwarder reclaims it after the visibility timeout
            log.warning("could not return task %s (%s)", entry_id, exc)

    async def _retry(self, op, attempts: int | None = None):
        """Run a broker operation until the broker answers (it may be restarting)."""
        backoff = 0.05
        n = 0
        while True:
            try:
                return await op()
            except _BROKER_DOWN:
                n += 1
                if attempts is not None and n >= attempts:
                    raise
                self.broker_up = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)


def _safe_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"


class _Collector:
    def __init__(self, f: AsyncForwarder) -> None:
        self.f = f

    def collect(self):
        f = self.f
        yield GaugeMetricFamily(
            c.QUEUE_DEPTH_METRIC,
            "Tasks in the endpoint's queue, waiting or in flight (XLEN of its stream).",
            value=f.queue_depth,
        )
        yield GaugeMetricFamily(
            c.TASKS_IN_FLIGHT_METRIC,
            "Tasks this forwarder holds (at most perWorker).",
            value=len(f.inflight),
        )
        yield GaugeMetricFamily(
            "modeltemplate_forwarder_per_worker", "Configured perWorker cap.", f.config.per_worker
        )
        yield GaugeMetricFamily(
            "modeltemplate_forwarder_upstream_ready",
            "1 when the model container's healthcheck route last answered 200.",
            value=1 if f.health.ok else 0,
        )
        yield GaugeMetricFamily(
            "modeltemplate_forwarder_broker_up",
            "1 when the last broker operation succeeded.",
            value=1 if f.broker_up else 0,
        )
        counts = CounterMetricFamily(
            c.TASKS_METRIC,
            "Tasks handled, by outcome (success: stored with main's answer whatever its status; "
            "failure: bad parameters or no answer; returned: put back in the queue; duplicate: "
            "already final when taken again).",
            labels=["outcome"],
        )
        for outcome, n in f.outcomes.items():
            counts.add_metric([outcome], n)
        yield counts
        hist = HistogramMetricFamily(
            c.TASK_DURATION_METRIC, "From taking a task to its result stored."
        )
        hist.add_metric([], f.durations.buckets(), f.durations.total)
        yield hist
