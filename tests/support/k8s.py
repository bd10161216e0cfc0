"""Small helpers for tests that talk to the cluster through kubectl."""

from __future__ import annotations

import json
import time
from pathlib import Path

#: The user agents of the operator's requests: its own client, and Kopf's.
OPERATOR_AGENTS = ("modeltemplate-operator/", "kopf/")


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


def apply_quota(cluster, namespace: str, name: str, hard: dict[str, str]) -> None:
    """A ResourceQuota, once the quota controller has counted it (only then is it enforced)."""
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name},
        "spec": {"hard": hard},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(quota))
    wait_for(
        lambda: (
            get_json(cluster, "resourcequota", name, "-n", namespace).get("status", {}).get("hard")
        ),
        timeout=30,
        what=f"the quota {name} to be in force",
    )


def apply_list(cluster, namespace: str, items: list[dict]) -> None:
    """``kubectl apply`` of several objects at once, as one List."""
    body = {"apiVersion": "v1", "kind": "List", "items": items}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))


def audit_events(audit_log: Path | str, offset: int = 0) -> list[dict]:
    """The events of the local control plane's audit log (writes, access reviews) from byte
    ``offset`` on."""
    with Path(audit_log).open("rb") as f:
        f.seek(offset)
        lines = f.read().decode(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def operator_writes(audit_log: Path, offset: int, namespace: str | None = None) -> list[dict]:
    """The operator's requests in the API server's audit log (which records writes only) from
    byte ``offset`` on; with ``namespace``, those to objects of that namespace."""
    return [
        e
        for e in audit_events(audit_log, offset)
        if e.get("userAgent", "").startswith(OPERATOR_AGENTS)
        and (namespace is None or (e.get("objectRef") or {}).get("namespace") == namespace)
    ]
