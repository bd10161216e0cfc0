"""Point 6: graceful SIGTERM, with the forwarder as a real subprocess; and the configuration."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import aiohttp
import pytest
from forwarder_testkit import Upstream, run, spawn, stop_process

from modeltemplate_operator.forwarder import ConfigError, parse_config
from modeltemplate_operator.forwarder.__main__ import main

pytestmark = pytest.mark.unit


def test_sigterm_during_50_in_flight_requests_and_a_stream_loses_none():
    async def scenario():
        up = Upstream()
        await up.start()
        proc, port = await spawn(
            up,
            "--per-worker",
            "100",
            "--grace-period-seconds",
            "20",
            "--shutdown-delay-seconds",
            "0",
        )
        try:
            up.all_active = asyncio.Event()
            up.expect_active = 51
            url = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

                async def predict(i):
                    r = await s.post(url + "/predict?sleep=1.5", json={"i": i})
                    return r.status, await r.json(), r.headers.get("Connection")

                async def stream():
                    r = await s.post(url + "/stream?n=30&interval=0.05", json={})
                    return r.status, await r.read()

                tasks = [asyncio.create_task(predict(i)) for i in range(50)]
                stream_task = asyncio.create_task(stream())
                await asyncio.wait_for(up.all_active.wait(), 10)
                proc.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.3)
                # No longer accepting: a new connection is refused.
                with pytest.raises(aiohttp.ClientConnectionError):
                    async with aiohttp.ClientSession() as fresh:
                        await fresh.post(url + "/predict", json={})
                results = await asyncio.gather(*tasks)
                status, body = await stream_task
            assert [r[0] for r in results] == [200] * 50
            assert sorted(r[1]["echo"]["i"] for r in results) == list(range(50))
            assert {r[2] for r in results} == {"close"}  # draining: do not reuse
            assert status == 200
            assert body == b"".join(b"data: event %d\n\n" % i for i in range(30))
            assert await asyncio.wait_for(proc.wait(), 10) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await up.stop()

    run(scenario(), timeout=45)


def test_sigterm_keeps_accepting_during_the_shutdown_delay_then_closes_the_listener():
    """Endpoints drop a terminating pod a moment after it got SIGTERM: until then, new
    connections still arrive and must be served, not refused or reset."""

    async def scenario():
        up = Upstream()
        await up.start()
        proc, port = await spawn(up, "--shutdown-delay-seconds", "3")
        url = f"http://127.0.0.1:{port}"
        outcomes: list[tuple[float, object]] = []
        try:
            async with aiohttp.ClientSession() as s:

                async def keep_sending():
                    # a fresh connection per request, as new clients routed here would open
                    for i in range(400):
                        t = time.monotonic()
                        try:
                            async with aiohttp.ClientSession() as fresh:
                                r = await fresh.post(url + "/predict?sleep=0.02", json={"i": i})
                                outcomes.append((t, (r.status, (await r.json())["echo"]["i"])))
                        except aiohttp.ClientError as exc:
                            outcomes.append((t, exc))
                            return

                sender = asyncio.create_task(keep_sending())
                await asyncio.sleep(0.3)
                sigterm_at = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.1)
                assert (await s.get(url + "/readyz")).status == 503  # readiness drops at once
                await asyncio.wait_for(sender, 20)
                assert await asyncio.wait_for(proc.wait(), 10) == 0
        finally:
            await stop_process(proc)
            await up.stop()
        in_delay = [o for t, o in outcomes if sigterm_at <= t < sigterm_at + 1.5]
        print(f"\n{len(in_delay)} requests sent during the first 1.5 s of the 3 s delay")
        assert in_delay and all(isinstance(o, tuple) and o[0] == 200 for o in in_delay)
        ok = [o for _, o in outcomes if isinstance(o, tuple)]
        assert [o[1] for o in ok] == list(range(len(ok)))
        # after the delay the listener is closed: the sender's last request was refused
        assert isinstance(outcomes[-1][1], aiohttp.ClientError)
        assert outcomes[-1][0] >= sigterm_at + 1.5

    run(scenario(), timeout=60)


def test_sigterm_exits_once_the_grace_period_is_over():
    async def scenario():
        up = Upstream()
        await up.start()
        proc, port = await spawn(
            up, "--grace-period-seconds", "0.5", "--shutdown-delay-seconds", "0"
        )
        try:
            up.all_active = asyncio.Event()
            up.expect_active = 1
            async with aiohttp.ClientSession() as s:
                task = asyncio.create_task(
                    s.post(f"http://127.0.0.1:{port}/predict?sleep=30", json={})
                )
                await asyncio.wait_for(up.all_active.wait(), 10)
                t0 = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(proc.wait(), 10) == 0
                assert time.monotonic() - t0 < 5
                with pytest.raises(aiohttp.ClientError):
                    await task
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await up.stop()

    run(scenario(), timeout=30)


def test_flags_win_over_env_which_wins_over_defaults():
    cfg = parse_config([], {})
    assert (cfg.port, cfg.upstream, cfg.protocol, cfg.per_worker) == (
        5000,
        "http://127.0.0.1:5005",
        "SGP",
        10,
    )
    assert (cfg.predict_route, cfg.streaming_predict_route, cfg.healthcheck_route) == (
        "/predict",
        "/generate_streaming",
        "/readyz",
    )
    env = {
        "FORWARDER_PORT": "6000",
        "FORWARDER_PER_WORKER": "7",
        "FORWARDER_PROTOCOL": "vllm",
        "FORWARDER_PREDICT_ROUTE": "/infer",
        "FORWARDER_CONCURRENCY_WAIT_SECONDS": "0.5",
        "FORWARDER_REQUEST_PARAMETERS_SCHEMA": json.dumps(
            {"parameters": [{"name": "n", "type": "integer", "required": True}]}
        ),
    }
    cfg = parse_config(["--port", "7000"], env)
    assert cfg.port == 7000
    assert cfg.per_worker == 7
    assert cfg.protocol == "VLLM"
    assert cfg.predict_route == "/infer"
    assert cfg.concurrency_wait_seconds == 0.5
    assert cfg.request_parameters_schema.parameters[0].type == "int"


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--protocol", "GRPC"], "--protocol / FORWARDER_PROTOCOL"),
        (["--per-worker", "0"], "--per-worker"),
        (["--upstream", "localhost:5005"], "--upstream"),
        (["--predict-route", "predict"], "must start with '/'"),
        (
            ["--request-parameters-schema", '{"parameters": [{"name": "x", "type": "tuple"}]}'],
            "type",
        ),
        (["--request-parameters-schema", "/no/such/file.json"], "neither JSON nor a readable file"),
        (["--request-parameters-schema", '{"parameters": [{"name": "x"'], "invalid JSON"),
    ],
)
def test_bad_configuration_is_a_clear_error(argv, needle, capsys):
    with pytest.raises(ConfigError) as err:
        parse_config(argv, {})
    assert needle in str(err.value)
    assert main(argv) == 2
    assert needle in capsys.readouterr().err
