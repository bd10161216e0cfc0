"""The gateway's endpoint client against a real forwarder process and a real stand-in model:
a busy forwarder's 429 is retried within the budget, then answered 429 with Retry-After."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from forwarder_testkit import run

from devtools.endpoints import start_standin, stop, wait_http
from devtools.ports import free_port
from modeltemplate_operator.api.parameters import ParameterSchema
from modeltemplate_operator.serving import Call, EndpointClient, ServingError, Target, serve

pytestmark = pytest.mark.integration

TARGET = Target(
    namespace="ns",
    name="ep",
    protocol="SGP",
    model_type="GENERIC",
    endpoint_type="SYNC",
    request_schema=ParameterSchema.parse(None),
    model="ep",
)


@pytest.fixture(scope="module")
def busy_forwarder():
    """A forwarder that takes one request at a time (perWorker 1, no wait for a slot) in front
    of a model that takes 0.6 s per answer."""
    model, upstream = start_standin("SGP", "--delay", "0.6")
    port = free_port()
    forwarder = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modeltemplate_operator.forwarder",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--upstream={upstream}",
            "--protocol=SGP",
            "--per-worker=1",
            "--concurrency-wait-seconds=0",
            "--retry-after-seconds=1",
            "--healthcheck-route=/health",
        ]
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/readyz")
    yield url
    stop([forwarder, model])


def test_a_busy_endpoint_is_retried_then_answered_429(busy_forwarder):
    async def main():
        patient = EndpointClient(retry_budget_seconds=5)
        hasty = EndpointClient(retry_budget_seconds=0.5)
        try:
            body = {"args": {"n": 1}}
            first = asyncio.create_task(serve(Call.EXECUTE, body, TARGET, busy_forwarder, patient))
            await asyncio.sleep(0.1)  # the first call holds the one slot for 0.6 s
            # within its budget, the second waits out the Retry-After and is served
            waited = await serve(Call.EXECUTE, body, TARGET, busy_forwarder, patient)
            assert waited.status_code == 200 and (await first).status_code == 200
            # past its budget, a call is answered 429 with the forwarder's Retry-After
            blocker = asyncio.create_task(
                serve(Call.EXECUTE, body, TARGET, busy_forwarder, patient)
            )
            await asyncio.sleep(0.1)
            with pytest.raises(ServingError) as caught:
                await serve(Call.EXECUTE, body, TARGET, busy_forwarder, hasty)
            assert (caught.value.status, caught.value.retry_after) == (429, 1)
            await blocker
        finally:
            await patient.close()
            await hasty.close()

    run(main())
