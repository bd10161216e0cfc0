"""A resync of converged templates writes nothing (counted in the API server's audit log)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from support.k8s import operator_writes
from support.manifests import tiny_template
from support.operator import OperatorProcess

from devtools.localcluster import LocalCluster

TEMPLATES = 100
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def tiny(name: str, index: int) -> dict:
    """Half autoscaled (HPA, 1..3 workers), half fixed at one worker."""
    return tiny_template(
        name, cpus="0.05", memory="64Mi", storage="256Mi", maxWorkers=3 if index % 2 == 0 else 1
    )


def wait_until_quiet(audit_log: Path, offset: int, seconds: float, timeout: float) -> None:
    """Until the operator has made no write request for ``seconds``."""
    deadline = time.monotonic() + timeout
    count = len(operator_writes(audit_log, offset))
    while time.monotonic() < deadline:
        time.sleep(seconds)
        now = len(operator_writes(audit_log, offset))
        if now == count:
            return
        count = now
    raise AssertionError(f"the operator still writes after {timeout} s")


def reconciled(log: str, namespace: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in re.findall(
        rf"reconciled ModelTemplate {namespace}/(\S+): applied=\[\] pruned=\[\] status_written=False",
        log,
    ):
        counts[name] = counts.get(name, 0) + 1
    return counts


def test_resync_of_converged_templates_writes_nothing(cluster, cluster_prereqs, namespace):
    if not isinstance(cluster, LocalCluster):
        pytest.skip("counts writes in the local control plane's audit log")
    first = OperatorProcess(Path(cluster.kubeconfig), ARTIFACTS / "operator-writes-first.log")
    first.log_path.unlink(missing_ok=True)
    start = cluster.audit_log.stat().st_size
    first.start()
    try:
        manifests = {
            "apiVersion": "v1",
            "kind": "List",
            "items": [tiny(f"m{i:03d}", i) for i in range(TEMPLATES)],
        }
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifests))
        cluster.kubectl(
            "wait",
            "-n",
            namespace,
            "--for=condition=Ready",
            "modeltemplate",
            "--all",
            "--timeout=240s",
            timeout=260,
        )
        # Converged: the operator has stopped writing (events that change nothing a reconcile
        # reads, like its own status patches coming back, no longer wake a reconcile).
        wait_until_quiet(cluster.audit_log, start, seconds=5, timeout=120)
    finally:
        first.stop()

    # The audit log does see the operator's writes: creating the templates took many.
    creating = operator_writes(cluster.audit_log, start)
    applied = {w["objectRef"]["resource"] for w in creating if w["verb"] == "patch"}
    assert {
        "deployments",
        "services",
        "horizontalpodautoscalers",
        "poddisruptionbudgets",
    } <= applied

    offset = cluster.audit_log.stat().st_size
    second = OperatorProcess(Path(cluster.kubeconfig), ARTIFACTS / "operator-writes-resync.log")
    second.log_path.unlink(missing_ok=True)
    second.start()
    try:
        # The restart lists every template and every child: each template is reconciled again.
        log = second.wait_for_log(
            lambda log: (
                (counts := reconciled(log, namespace))
                and len(counts) == TEMPLATES
                and min(counts.values()) >= 1
            ),
            timeout=120,
        )
    finally:
        second.stop()
    writes = operator_writes(cluster.audit_log, offset)
    summary = [
        (w["verb"], w["objectRef"].get("resource"), w["objectRef"].get("name")) for w in writes
    ]
    print(
        f"\nresync of {TEMPLATES} converged templates: {sum(reconciled(log, namespace).values())} "
        f"reconciles, {len(writes)} write requests"
    )
    assert summary == []
