"""Point 3 (perWorker cap, 429), 4 (request parameters, 422) and 5 (metrics)."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest
from forwarder_testkit import base, run, stack

from modeltemplate_operator.forwarder.limiter import ConcurrencyLimiter

pytestmark = pytest.mark.unit

SCHEMA = json.dumps(
    {
        "parameters": [
            {"name": "max_tokens", "type": "int", "description": "tokens", "required": True},
            {"name": "temperature", "type": "float", "description": "t", "required": False},
            {"name": "stop", "type": "list", "description": "stops", "required": False},
            {"name": "lora", "type": "str", "description": "adapter", "required": False},
        ]
    }
)


def test_per_worker_cap_holds_under_a_burst_of_10x_and_the_excess_gets_429_retry_after():
    async def scenario():
        async with stack(
            "--per-worker", "4", "--concurrency-wait-seconds", "0.2", "--retry-after-seconds", "3"
        ) as (fwd, up):
            # The first four hold their slots for 2 s; every other request gives up after
            # 0.2 s, long before a slot frees, even if it reaches the forwarder late.
            up.delay = 2.0
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

                async def one():
                    r = await s.post(base(fwd) + "/predict", json={})
                    return r.status, r.headers.get("Retry-After"), await r.json()

                results = await asyncio.gather(*(one() for _ in range(40)))
        statuses = [r[0] for r in results]
        assert up.max_active == 4
        assert statuses.count(200) == 4
        assert statuses.count(429) == 36
        rejected = [r for r in results if r[0] == 429]
        assert all(r[1] == "3" for r in rejected)
        assert rejected[0][2]["error"] == "too_many_requests"

    run(scenario())


def test_requests_wait_for_a_slot_within_the_bounded_wait_and_never_exceed_the_cap():
    async def scenario():
        async with stack("--per-worker", "5", "--concurrency-wait-seconds", "10") as (fwd, up):
            up.delay = 0.05
            async with aiohttp.ClientSession() as s:

                async def one():
                    r = await s.post(base(fwd) + "/predict", json={})
                    await r.read()
                    return r.status

                statuses = await asyncio.gather(*(one() for _ in range(50)))
        assert statuses == [200] * 50
        assert up.max_active == 5
        assert fwd.limiter.active == 0 and fwd.limiter.waiting == 0

    run(scenario())


def test_limiter_is_fifo_expires_waiters_and_survives_cancellation():
    async def scenario():
        lim = ConcurrencyLimiter(1, 5)
        assert await lim.acquire()
        order = []

        async def waiter(name):
            ok = await lim.acquire()
            order.append((name, ok))
            if ok:
                lim.release()

        tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
        await asyncio.sleep(0.01)
        tasks[1].cancel()
        await asyncio.sleep(0.01)
        lim.release()
        await asyncio.gather(tasks[0], tasks[2])
        assert order == [(0, True), (2, True)]
        assert lim.active == 0 and lim.waiting == 0
        short = ConcurrencyLimiter(1, 0.05)
        assert await short.acquire()
        assert not await short.acquire()
        assert short.waiting == 0
        none = ConcurrencyLimiter(1, 0)
        assert await none.acquire()
        assert not await none.acquire()

    run(scenario())


def test_bad_model_request_parameters_get_422_naming_each_bad_field_and_never_reach_main():
    async def scenario():
        async with stack("--request-parameters-schema", SCHEMA) as (fwd, up):
            async with aiohttp.ClientSession() as s:
                r = await s.post(
                    base(fwd) + "/predict",
                    json={"model_request_parameters": {"temperature": "hot", "stop": "x"}},
                )
                assert r.status == 422
                doc = await r.json()
                fields = {e["field"] for e in doc["errors"]}
                assert fields == {
                    "model_request_parameters.max_tokens",
                    "model_request_parameters.temperature",
                    "model_request_parameters.stop",
                }
                assert "model_request_parameters.max_tokens" in doc["message"]
                problems = {e["field"]: e["problem"] for e in doc["errors"]}
                assert "missing" in problems["model_request_parameters.max_tokens"]
                assert "float" in problems["model_request_parameters.temperature"]
                # bool is not an int
                r = await s.post(
                    base(fwd) + "/stream",
                    json={"model_request_parameters": {"max_tokens": True}},
                )
                assert r.status == 422
                assert [e["field"] for e in (await r.json())["errors"]] == [
                    "model_request_parameters.max_tokens"
                ]
                # no body at all: the required parameter is named
                r = await s.post(base(fwd) + "/predict")
                assert r.status == 422
                assert "max_tokens" in (await r.json())["message"]
                assert up.calls == []
                # a good body goes through; an int is a fine float; unknown keys pass
                good = {"model_request_parameters": {"max_tokens": 8, "temperature": 1, "extra": 1}}
                r = await s.post(base(fwd) + "/predict", json=good)
                assert r.status == 200
                assert (await r.json())["echo"] == good

    run(scenario())


def test_request_parameters_schema_from_a_file_and_env(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text(SCHEMA)

    async def scenario():
        env = {"FORWARDER_REQUEST_PARAMETERS_SCHEMA": str(path)}
        async with stack(env=env) as (fwd, up):
            async with aiohttp.ClientSession() as s:
                r = await s.post(
                    base(fwd) + "/predict", json={"model_request_parameters": {"max_tokens": "8"}}
                )
                assert r.status == 422
                assert "max_tokens" in (await r.json())["message"]

    run(scenario())


def test_protocol_routes_check_parameters_only_when_the_body_carries_them():
    async def scenario():
        async with stack("--protocol", "VLLM", "--request-parameters-schema", SCHEMA) as (fwd, _):
            async with aiohttp.ClientSession() as s:
                r = await s.post(base(fwd) + "/v1/completions", json={"prompt": "p"})
                assert r.status == 200
                r = await s.post(
                    base(fwd) + "/v1/completions",
                    json={"prompt": "p", "model_request_parameters": {"lora": 3}},
                )
                assert r.status == 422

    run(scenario())


def _sample(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else "") + r" (\S+)"
    m = re.search(r"^" + pattern + "$", text, re.M)
    assert m, f"{name}{{{labels}}} not in metrics"
    return float(m.group(1))


def test_metrics_in_flight_gauge_requests_by_route_and_status_latency_and_ttfb():
    async def scenario():
        async with stack("--per-worker", "10") as (fwd, up):
            async with aiohttp.ClientSession() as s:
                up.all_active = asyncio.Event()
                up.expect_active = 6
                up.delay = 0.5
                pending = [
                    asyncio.create_task(s.post(base(fwd) + "/predict", json={})) for _ in range(6)
                ]
                await asyncio.wait_for(up.all_active.wait(), 5)
                text = await (await s.get(base(fwd) + "/metrics")).text()
                assert _sample(text, "modeltemplate_forwarder_requests_in_flight") == 6
                assert _sample(text, "modeltemplate_forwarder_upstream_in_flight") == 6
                assert _sample(text, "modeltemplate_forwarder_per_worker") == 10
                for r in await asyncio.gather(*pending):
                    assert r.status == 200
                up.delay = 0
                await (await s.post(base(fwd) + "/stream?n=3", json={})).read()
                await s.post(
                    base(fwd) + "/predict",
                    data=b"{bad",
                    headers={"Content-Type": "application/json"},
                )
                r = await s.get(base(fwd) + "/metrics")
                assert r.headers["Content-Type"].startswith("text/plain")
                text = await r.text()
        assert _sample(text, "modeltemplate_forwarder_requests_in_flight") == 0
        assert (
            _sample(text, "modeltemplate_forwarder_requests_total", 'route="/predict",status="200"')
            == 6
        )
        assert (
            _sample(text, "modeltemplate_forwarder_requests_total", 'route="/predict",status="400"')
            == 1
        )
        assert (
            _sample(text, "modeltemplate_forwarder_requests_total", 'route="/stream",status="200"')
            == 1
        )
        # six requests of ~0.5 s each were in flight together: ~3 request-seconds
        assert 2.5 < _sample(text, "modeltemplate_forwarder_requests_in_flight_seconds_total") < 10
        assert (
            _sample(
                text, "modeltemplate_forwarder_request_duration_seconds_count", 'route="/predict"'
            )
            == 7
        )
        assert (
            _sample(
                text,
                "modeltemplate_forwarder_request_duration_seconds_bucket",
                'le="0.25",route="/predict"',
            )
            == 1
        )
        assert (
            _sample(
                text, "modeltemplate_forwarder_time_to_first_byte_seconds_count", 'route="/stream"'
            )
            == 1
        )
        assert _sample(text, "process_resident_memory_bytes") > 0

    run(scenario())


def test_requests_still_sending_their_head_or_body_are_not_counted_as_load():
    """50 clients stalled mid-request held the in-flight gauge (the HPA's metric) at 50 while the
    model was idle; only complete requests waiting for or holding a slot count."""

    async def scenario():
        async with stack("--per-worker", "2") as (fwd, up):
            stalled = []
            for i in range(50):
                reader, writer = await asyncio.open_connection("127.0.0.1", fwd.port)
                head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                if i % 2:
                    writer.write(head + b'Content-Length: 100\r\n\r\n{"partial": ')
                else:
                    writer.write(head + b"Content-Len")
                await writer.drain()
                stalled.append(writer)
            up.all_active = asyncio.Event()
            up.expect_active = 2
            up.delay = 0.5
            async with aiohttp.ClientSession() as s:
                busy = [
                    asyncio.create_task(s.post(base(fwd) + "/predict", json={})) for _ in range(3)
                ]
                await asyncio.wait_for(up.all_active.wait(), 5)
                text = await (await s.get(base(fwd) + "/metrics")).text()
                # two holding a slot, one waiting for it; none of the 50 stalled ones
                assert _sample(text, "modeltemplate_forwarder_requests_in_flight") == 3
                assert [r.status for r in await asyncio.gather(*busy)] == [200, 200, 200]
                text = await (await s.get(base(fwd) + "/metrics")).text()
                assert _sample(text, "modeltemplate_forwarder_requests_in_flight") == 0
            for writer in stalled:
                writer.close()

    run(scenario())


def test_body_bytes_are_given_back_whatever_the_answer():
    async def scenario():
        async with stack("--request-parameters-schema", SCHEMA, "--max-body-bytes", "64") as (
            fwd,
            up,
        ):
            async with aiohttp.ClientSession() as s:
                for data, expected in (
                    (b'{"model_request_parameters": {"max_tokens": 1}}', 200),
                    (b"{bad", 400),
                    (b'{"model_request_parameters": {"max_tokens": "x"}}', 422),
                    (b"{" + b" " * 100 + b"}", 413),
                ):
                    r = await s.post(
                        base(fwd) + "/predict",
                        data=data,
                        headers={"Content-Type": "application/json"},
                    )
                    assert r.status == expected
                    assert fwd.body_budget.held == 0
        assert len(up.calls) == 1

    run(scenario())
