"""Which API failures are retried at once, and the backoff of refused children."""

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from modeltemplate_operator.kube import is_transient, status_message
from modeltemplate_operator.reconciler import RetrySchedule


@pytest.mark.parametrize(
    "exc, transient",
    [
        (ApiException(status=409), True),
        (ApiException(status=429), True),
        (ApiException(status=500), True),
        (ApiException(status=503), True),
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


def test_refused_templates_back_off_and_leave_on_success():
    schedule = RetrySchedule(first_delay=10, max_delay=40)
    key = ("ns", "llm")
    schedule.failed(key, now=0)
    assert schedule.due(9) == [] and schedule.due(10) == [key]
    schedule.failed(key, now=10)  # second failure: 20 s
    assert schedule.due(29) == [] and schedule.due(30) == [key]
    schedule.failed(key, now=30)
    schedule.failed(key, now=70)  # capped at 40 s
    assert schedule.due(109) == [] and schedule.due(110) == [key]
    schedule.succeeded(key)
    assert schedule.due(1000) == []
