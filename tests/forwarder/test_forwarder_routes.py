"""Point 1 (routes and streaming), 2 (health) and 7 (errors), against real upstream servers."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from forwarder_testkit import Upstream, base, run, stack

from devtools.ports import free_port

pytestmark = pytest.mark.unit


def test_predict_goes_to_the_configured_predict_route_with_body_query_and_headers():
    async def scenario():
        async with stack("--predict-route", "/infer") as (fwd, up):
            async with aiohttp.ClientSession() as s:
                r = await s.post(
                    base(fwd) + "/predict?x=1",
                    json={"prompt": "hi"},
                    headers={"X-Request-Id": "abc"},
                )
                assert r.status == 200
                doc = await r.json()
        assert doc == {"path": "/infer", "query": "x=1", "echo": {"prompt": "hi"}}
        assert up.calls[-1]["headers"]["X-Request-Id"] == "abc"
        assert up.calls[-1]["method"] == "POST"

    run(scenario())


def test_stream_passes_events_through_one_by_one_without_buffering():
    async def scenario():
        async with stack() as (fwd, up):
            async with aiohttp.ClientSession() as s:
                r = await s.post(base(fwd) + "/stream?n=4&hold=1", json={})
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/event-stream")
                # The upstream holds back events 1..3 until we have seen event 0.
                first = await asyncio.wait_for(r.content.readuntil(b"\n\n"), 5)
                assert first == b"data: event 0\n\n"
                up.release_stream.set()
                rest = await asyncio.wait_for(r.content.read(), 5)
        assert rest == b"data: event 1\n\ndata: event 2\n\ndata: event 3\n\n"
        assert up.calls[-1]["path"] == "/generate_streaming"

    run(scenario())


def test_streaming_predict_route_is_configurable():
    async def scenario():
        async with stack("--streaming-predict-route", "/v1/stream-custom") as (fwd, up):
            async with aiohttp.ClientSession() as s:
                r = await s.post(base(fwd) + "/stream?n=3", json={})
                assert await r.read() == b"data: event 0\n\ndata: event 1\n\ndata: event 2\n\n"
        assert up.calls[-1]["path"] == "/v1/stream-custom"

    run(scenario())


def test_client_disconnect_mid_stream_cancels_the_upstream_request():
    async def scenario():
        async with stack() as (fwd, up):
            s = aiohttp.ClientSession()
            r = await s.post(base(fwd) + "/stream?n=1000&interval=0.02", json={})
            await asyncio.wait_for(r.content.readuntil(b"\n\n"), 5)
            r.close()  # the client goes away mid-stream
            await s.close()
            await asyncio.wait_for(up.cancelled.wait(), 5)
            await asyncio.sleep(0.05)
            assert up.active == 0
            assert fwd.metrics.concurrency == 0
            assert fwd.limiter.active == 0

    run(scenario())


def test_client_disconnect_while_waiting_for_predict_cancels_the_upstream_request():
    async def scenario():
        async with stack() as (fwd, up):
            async with aiohttp.ClientSession() as s:
                with pytest.raises(asyncio.TimeoutError):
                    await s.post(
                        base(fwd) + "/predict?sleep=30",
                        json={},
                        timeout=aiohttp.ClientTimeout(total=0.3),
                    )
            await asyncio.wait_for(up.cancelled.wait(), 5)
            await asyncio.sleep(0.05)
            assert fwd.limiter.active == 0

    run(scenario())


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", "/v1/completions"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/embeddings"),
        ("GET", "/v1/models"),
        ("GET", "/health"),
    ],
)
def test_vllm_protocol_routes_go_to_the_same_path(method, path):
    async def scenario():
        async with stack("--protocol", "VLLM") as (fwd, up):
            async with aiohttp.ClientSession() as s:
                r = await s.request(
                    method, base(fwd) + path, json={"model": "m"} if method == "POST" else None
                )
                assert r.status == 200, await r.text()
        assert up.calls[-1]["path"] == path

    run(scenario())


def test_vllm_streaming_completion_passes_through_as_sse():
    async def scenario():
        up = Upstream()
        await up.start()
        try:
            async with stack("--protocol", "vllm", upstream=up) as (fwd, _):
                async with aiohttp.ClientSession() as s:
                    r = await s.post(base(fwd) + "/v1/chat/completions", json={"stream": True})
                    assert r.status == 200
        finally:
            await up.stop()

    run(scenario())


def test_cohere_routes_and_unknown_routes_404_with_a_clear_body():
    async def scenario():
        async with stack("--protocol", "COHERE") as (fwd, up):
            async with aiohttp.ClientSession() as s:
                r = await s.post(base(fwd) + "/v1/chat", json={"message": "hi"})
                assert r.status == 200
                assert up.calls[-1]["path"] == "/v1/chat"
                r = await s.post(base(fwd) + "/v1/completions", json={})
                assert r.status == 404
                doc = await r.json()
                assert doc["error"] == "not_found"
                assert "POST /v1/completions" in doc["message"]
                assert "POST /v1/chat" in doc["routes"]
                assert "POST /predict" in doc["routes"]

    run(scenario())


def test_sgp_protocol_has_only_the_launch_routes_and_wrong_methods_get_405():
    async def scenario():
        async with stack() as (fwd, up):
            async with aiohttp.ClientSession() as s:
                r = await s.post(base(fwd) + "/v1/chat/completions", json={})
                assert r.status == 404
                assert (await r.json())["error"] == "not_found"
                r = await s.get(base(fwd) + "/predict")
                assert r.status == 405
                assert r.headers["Allow"] == "POST"
                assert (await r.json())["error"] == "method_not_allowed"
        assert up.calls == []

    run(scenario())


def test_readyz_follows_the_upstream_healthcheck_and_healthz_is_the_forwarder_itself():
    async def scenario():
        async with stack("--health-cache-seconds", "0", "--healthcheck-route", "/health") as (
            fwd,
            up,
        ):
            async with aiohttp.ClientSession() as s:
                r = await s.get(base(fwd) + "/readyz")
                assert r.status == 200
                assert up.calls[-1]["path"] == "/health"
                up.healthy = False
                r = await s.get(base(fwd) + "/readyz")
                assert r.status == 503
                assert (await r.json())["error"] == "upstream_not_ready"
                assert (await s.get(base(fwd) + "/healthz")).status == 200
                up.healthy = True
                assert (await s.get(base(fwd) + "/readyz")).status == 200
                await up.stop()  # the model container is gone
                r = await s.get(base(fwd) + "/readyz")
                assert r.status == 503
                assert (await s.get(base(fwd) + "/healthz")).status == 200

    run(scenario())


def test_upstream_down_is_503_with_a_clear_body():
    async def scenario():
        up = Upstream()
        up.port = free_port()  # nothing listens there
        async with stack(upstream=up) as (fwd, _):
            async with aiohttp.ClientSession() as s:
                r = await s.post(base(fwd) + "/predict", json={})
                assert r.status == 503
                doc = await r.json()
                assert doc["error"] == "upstream_unavailable"
                assert "not accepting connections" in doc["message"]
                r = await s.get(base(fwd) + "/readyz")
                assert r.status == 503

    run(scenario())


def test_upstream_timeout_is_504():
    async def scenario():
        async with stack("--upstream-timeout-seconds", "0.3", "--predict-route", "/hang") as (
            fwd,
            _,
        ):
            async with aiohttp.ClientSession() as s:
                r = await s.post(base(fwd) + "/predict", json={})
                assert r.status == 504
                assert (await r.json())["error"] == "upstream_timeout"

    run(scenario())


def test_upstream_breaking_the_connection_is_502():
    async def scenario():
        async with stack("--predict-route", "/break") as (fwd, _):
            async with aiohttp.ClientSession() as s:
                r = await s.post(base(fwd) + "/predict", json={})
                assert r.status == 502
                assert (await r.json())["error"] == "upstream_error"

    run(scenario())


def test_malformed_json_is_400_and_no_error_carries_a_stack_trace():
    async def scenario():
        async with stack() as (fwd, up):
            async with aiohttp.ClientSession() as s:
                r = await s.post(
                    base(fwd) + "/predict",
                    data=b'{"prompt": "unterminated',
                    headers={"Content-Type": "application/json"},
                )
                assert r.status == 400
                text = await r.text()
                assert '"malformed_json"' in text
                assert "Traceback" not in text
                assert r.headers["Content-Type"].startswith("application/json")
        assert up.calls == []

    run(scenario())


def test_keep_alive_connections_are_reused_and_stale_ones_retried():
    async def scenario():
        async with stack("--upstream-keepalive-seconds", "30") as (fwd, up):
            async with aiohttp.ClientSession() as s:
                for _ in range(5):
                    assert (await s.post(base(fwd) + "/predict", json={})).status == 200
                assert len(fwd._pool._all) == 1
                # The upstream restarts: the pooled connection is dead; the request still works.
                port = up.port
                await up.stop()
                await up.start(port)
                assert (await s.post(base(fwd) + "/predict", json={})).status == 200

    run(scenario())


def test_expect_100_continue_gets_continue_before_the_body_is_sent():
    async def scenario():
        async with stack() as (fwd, up):
            reader, writer = await asyncio.open_connection("127.0.0.1", fwd.port)
            body = b'{"prompt": "long"}'
            writer.write(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
            )
            line = await asyncio.wait_for(reader.readline(), 5)
            assert line == b"HTTP/1.1 100 Continue\r\n"
            await reader.readline()
            writer.write(body)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200")
            writer.close()
        assert up.calls[-1]["body"] == body
        assert "Expect" not in up.calls[-1]["headers"]

    run(scenario())


def test_large_streamed_body_reaches_a_slow_client_intact():
    async def scenario():
        async with stack("--predict-route", "/big") as (fwd, _):
            async with aiohttp.ClientSession() as s:
                r = await s.post(base(fwd) + "/predict", json={})
                assert r.status == 200
                got = bytearray()
                while True:
                    piece = await r.content.read(100_000)
                    if not piece:
                        break
                    got += piece
                    await asyncio.sleep(0.002)  # slower than the upstream: reading pauses
        assert bytes(got) == b"".join(bytes([i]) * 65536 for i in range(64))

    run(scenario())


def test_non_json_bodies_are_passed_through_unparsed():
    async def scenario():
        async with stack("--predict-route", "/raw") as (fwd, _):
            async with aiohttp.ClientSession() as s:
                for ctype in ("application/x-ndjson", "text/plain"):
                    r = await s.post(
                        base(fwd) + "/predict", data=b"{not json", headers={"Content-Type": ctype}
                    )
                    assert r.status == 200
                    assert (await r.json())["echo"] == "{not json"

    run(scenario())


def test_a_stream_that_stalls_past_the_upstream_timeout_is_cut_not_ended_cleanly():
    async def scenario():
        async with stack("--upstream-timeout-seconds", "0.3") as (fwd, up):
            async with aiohttp.ClientSession() as s:
                r = await s.post(base(fwd) + "/stream?n=3&hold=1", json={})
                assert r.status == 200
                assert await r.content.readuntil(b"\n\n") == b"data: event 0\n\n"
                # the upstream never sends event 1: the client must not see a clean end
                with pytest.raises(aiohttp.ClientPayloadError):
                    await asyncio.wait_for(r.content.read(), 5)
            await asyncio.wait_for(up.cancelled.wait(), 5)

    run(scenario())
