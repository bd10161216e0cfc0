"""render -> async forwarder -> KEDA: the ASYNC sample's forwarder takes exactly the arguments
render gives it, consumes the queue the ScaledObject's trigger watches, and serves its probes
and metrics on the ports the pod spec names (a real redis-server as broker)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
import yaml
from aiohttp import web
from forwarder_testkit import run

from devtools.redisserver import RedisServer
from modeltemplate_operator import contract as c
from modeltemplate_operator.api.validation import parse_manifest
from modeltemplate_operator.forwarder import parse_config
from modeltemplate_operator.forwarder.asyncmode import AsyncForwarder
from modeltemplate_operator.plan.config import OperatorConfig
from modeltemplate_operator.plan.resolution import plan_for
from modeltemplate_operator.render.workloads import render
from modeltemplate_operator.tasks import protocol as t
from modeltemplate_operator.tasks import queue as taskqueue

pytestmark = pytest.mark.unit
SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "samples" / "transcription-async-a10.yaml"


@pytest.fixture
def redis_server(tmp_path):
    with RedisServer(directory=str(tmp_path / "redis")) as server:
        yield server


def test_async_forwarder_consumes_the_queue_render_and_keda_name(redis_server):
    manifest = yaml.safe_load(SAMPLE.read_text())
    manifest["metadata"].update(namespace="ns", uid="uid-1")
    plan = plan_for(
        parse_manifest(manifest), OperatorConfig(broker_url=redis_server.url), keda_installed=True
    )
    children = {o["kind"]: o for o in render(plan)}
    pod = children["Deployment"]["spec"]["template"]["spec"]
    containers = {ct["name"]: ct for ct in pod["containers"]}
    forwarder, main = containers["http-forwarder"], containers["main"]
    config = parse_config(forwarder["args"], environ={})  # exactly render's arguments
    assert config.mode == c.MODE_ASYNC and config.broker_url == redis_server.url
    trigger = children["ScaledObject"]["spec"]["triggers"][0]["metadata"]
    assert trigger["stream"] == config.queue == t.queue_name("ns", plan.name)
    assert trigger["consumerGroup"] == t.CONSUMER_GROUP
    assert int(trigger["streamLength"]) == config.per_worker == plan.workers.per_worker
    assert config.port == forwarder["readinessProbe"]["httpGet"]["port"]
    assert config.upstream == f"http://127.0.0.1:{main['ports'][0]['containerPort']}"
    assert config.grace_period_seconds < pod["terminationGracePeriodSeconds"]
    bundle = plan.spec.bundle_config

    async def scenario():
        paths = []

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            paths.append(request.path)
            return web.json_response({"text": "hello", "got": body.decode()})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        fwd = AsyncForwarder(
            dataclasses.replace(
                config, host="127.0.0.1", port=0, upstream=f"http://127.0.0.1:{port}"
            )
        )
        await fwd.start()
        consume = asyncio.create_task(fwd.consume())
        renew = asyncio.create_task(asyncio.sleep(3600))
        r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        base = f"http://127.0.0.1:{fwd.port}"
        try:
            task_id = await taskqueue.submit(
                r, "ns", plan.name, {"args": {"audio": "a.wav"}}, result_ttl_seconds=60
            )
            for _ in range(200):
                got = await taskqueue.get(r, task_id)
                if got["status"] in t.FINAL:
                    break
                await asyncio.sleep(0.05)
            assert got["status"] == t.SUCCESS, got
            assert got["result"] == {"text": "hello", "got": '{"audio": "a.wav"}'}
            assert paths[-1] == bundle.predict_route == "/transcribe"
            async with aiohttp.ClientSession() as http:
                async with http.get(base + forwarder["readinessProbe"]["httpGet"]["path"]) as resp:
                    assert resp.status == 200, await resp.text()
                async with http.get(base + forwarder["livenessProbe"]["httpGet"]["path"]) as resp:
                    assert resp.status == 200
                async with http.get(base + c.METRICS_PATH) as resp:
                    text = await resp.text()
            assert f"{c.QUEUE_DEPTH_METRIC} 0.0" in text
            assert f'{c.TASKS_METRIC}{{outcome="success"}} 1.0' in text
        finally:
            await fwd.drain(consume, renew)
            await r.aclose()
            await runner.cleanup()

    run(scenario())
