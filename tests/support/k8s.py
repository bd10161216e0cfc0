"""Small helpers for tests that talk to the cluster through kubectl."""

from __future__ import annotations

import json
import time


def wait_for(predicate, timeout: float = 60, interval: float = 0.5, what: str = "condition"):
    """Poll until ``predicate()`` is truthy and return its value; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def get_json(cluster, *args):
    return json.loads(cluster.kubectl("get", "-o", "json", *args).stdout)
