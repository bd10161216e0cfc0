"""Which API failures are retried at once, and the backoff of refused children."""

import asyncio

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from modeltemplate_operator.controller.kube import is_transient, status_message
from modeltemplate_operator.controller.reconciler import REFUSED
from modeltemplate_operator.controller.runtime import TRANSIENT
from modeltemplate_operator.controller.workqueue import Backoff, WorkQueue


def _too_large() -> ApiException:
    """What the API server answers when etcd refuses an object over its size limit."""
    exc = ApiException(status=500, reason="Internal Server Error")
    exc.body = '{"kind":"Status","message":"etcdserver: request is too large","code":500}'
    return exc


@pytest.mark.parametrize(
    "exc, transient",
    [
        (ApiException(status=409), True),
        (ApiException(status=429), True),
        (ApiException(status=500), True),
        (ApiException(status=503), True),
        (_too_large(), False),  # etcd refuses the same object again: terminal (ApplyFailed)
        (ApiException(status=413), False),
        (ApiException(status=403), False),
        (ApiException(status=422), False),
        (ApiException(status=404), False),
        (urllib3.exceptions.ProtocolError("connection reset"), True),
        (ConnectionRefusedError(), True),
        (ValueError("bug"), False),
    ],
)
def test_is_transient(exc, transient):
    assert is_transient(exc) is transient


def test_status_message_prefers_the_status_body():
    exc = ApiException(status=403, reason="Forbidden")
    exc.body = '{"kind":"Status","message":"exceeded quota: q"}'
    assert status_message(exc) == "exceeded quota: q"
    assert (
        status_message(ApiException(status=500, reason="Internal Server Error"))
        == "500 Internal Server Error"
    )


def test_backoffs_double_up_to_their_cap():
    assert [REFUSED.delay(n) for n in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]
    assert [TRANSIENT.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 16, 16]


def test_refused_templates_back_off_and_leave_on_success():
    async def scenario():
        queue, key = WorkQueue(), ("ns", "llm")
        backoff = Backoff(first=0.02, cap=0.08)
        loop = asyncio.get_running_loop()
        assert [queue.retry(key, backoff) for _ in range(4)] == [0.02, 0.04, 0.08, 0.08]
        # Of several pending returns the earliest wins: the key comes back once, after 20 ms.
        started = loop.time()
        assert await queue.get() == key and loop.time() - started >= 0.015
        queue.done(key)
        await asyncio.sleep(0.1)
        assert len(queue) == 0
        queue.forget(key)  # success: the next failure starts from the first delay again
        assert queue.retry(key, backoff) == 0.02
        queue.forget(key)  # and a pending retry is dropped
        await asyncio.sleep(0.05)
        assert len(queue) == 0

    asyncio.run(scenario())
