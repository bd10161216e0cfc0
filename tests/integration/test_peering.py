"""Two operator replicas with peering: one acts, the other takes over when it leaves."""

from __future__ import annotations

import json
import time
from pathlib import Path

from support.k8s import apply_quota, get_json, wait_for
from support.manifests import tiny_template
from support.operator import OperatorProcess

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _replicas(cluster, *priorities: int) -> dict[int, OperatorProcess]:
    """Operator replicas with peering, each of a pinned priority (not started), over an empty
    peering object and every kind served."""
    # Peers registered by earlier runs (their entries live on until they expire) would outrank
    # the replicas; start from an empty peering object, as a fresh install does.
    cluster.kubectl("delete", "clusterkopfpeering", "modeltemplate-operator", "--ignore-not-found")
    # Every kind served before the replicas start: a list the API server refuses while a CRD's
    # storage (re)initializes is retried, and Kopf dispatches what it lists even when that lands
    # after the replica paused (its work queue holds it now; before, the low replica once
    # reconciled a template so).
    wait_for(
        lambda: (
            cluster.kubectl(
                "get", "modeltemplates,models,modeldeployments,finetuningjobs", "-A", check=False
            ).returncode
            == 0
        ),
        what="the CRDs served",
    )
    replicas = {}
    for prio in priorities:
        replicas[prio] = OperatorProcess(
            Path(cluster.kubeconfig),
            ARTIFACTS / f"operator-peer-{prio}.log",
            "--verbose",
            env={"MODELTEMPLATE_PEERING_PRIORITY": str(prio)},
        )
        replicas[prio].log_path.unlink(missing_ok=True)
    return replicas


def test_only_the_highest_priority_replica_acts(cluster, cluster_prereqs, namespace):
    replicas = _replicas(cluster, 100, 200)
    for proc in replicas.values():
        proc.start()
    try:
        low, high = replicas[100], replicas[200]
        # Kopf starts every replica paused; only the highest-priority one resumes.
        high.wait_for_log(lambda log: "Resuming operations" in log, timeout=60)
        # The low one may have acted alone before the high one registered; it pauses once it sees it.
        low.wait_for_log(
            lambda log: (
                log.rfind("Pausing operations in favour of") >= log.rfind("Resuming operations")
            ),
            timeout=60,
        )
        cluster.kubectl(
            "apply", "-n", namespace, "-f", "-", input=json.dumps(tiny_template("leader"))
        )
        high.wait_for_log(lambda log: f"reconciled ModelTemplate {namespace}/leader" in log)
        cluster.kubectl(
            "wait",
            "-n",
            namespace,
            "--for=condition=Ready",
            "--timeout=60s",
            "modeltemplate/leader",
        )
        assert f"reconciled ModelTemplate {namespace}/leader" not in low.log()

        # The leader leaves; the other replica resumes and serves new templates.
        high.stop()
        low.wait_for_log(lambda log: "Resuming operations" in log, timeout=90)
        cluster.kubectl(
            "apply", "-n", namespace, "-f", "-", input=json.dumps(tiny_template("follower"))
        )
        low.wait_for_log(lambda log: f"reconciled ModelTemplate {namespace}/follower" in log)
        wait_for(
            lambda: get_json(cluster, "deployment", "follower", "-n", namespace),
            what="the Deployment",
        )
    finally:
        for proc in replicas.values():
            proc.stop()


def test_a_paused_replica_writes_nothing_and_resumes_where_the_leader_left(
    cluster, cluster_prereqs, namespace
):
    """A replica retrying refused templates is paused by a replica of higher priority: its
    retry comes due while paused and waits. One template is deleted meanwhile. Once the other
    replica leaves, the first resumes: it learns of the deletion its watch missed, and retries
    the template it held."""
    apply_quota(cluster, namespace, "no-deployments", {"count/deployments.apps": "0"})
    low, high = _replicas(cluster, 100, 200).values()
    retried = f"reconcile of ModelTemplate {namespace}/refused again in"
    try:
        low.start()
        low.wait_for_log(lambda log: "Resuming operations" in log, timeout=60)
        for name in ("refused", "gone"):
            cluster.kubectl(
                "apply", "-n", namespace, "-f", "-", input=json.dumps(tiny_template(name))
            )
        low.wait_for_log(lambda log: f"{retried} 10 s" in log)  # refused: again in 10 s
        low.wait_for_log(lambda log: f"ModelTemplate {namespace}/gone again in" in log)
        high.start()
        pausing = "Pausing operations in favour of"
        low.wait_for_log(lambda log: pausing in log)
        high.wait_for_log(lambda log: retried in log)  # the other replica has the template
        cluster.kubectl("delete", "modeltemplate", "gone", "-n", namespace, "--wait=true")
        time.sleep(12)  # the low replica's retries came due meanwhile
        since_pause = low.log().split(pausing, 1)[1]
        assert "reconcile of " not in since_pause and "reconciled " not in since_pause

        high.stop()
        fresh = "caches listed again after the pause"
        low.wait_for_log(lambda log: fresh in log.split(pausing, 1)[1], timeout=90)
        resumed = low.log().split(pausing, 1)[1]
        # The deletion came while its watch was closed: the listing revealed it.
        assert f"forgetting ModelTemplate {namespace}/gone: deleted" in resumed
        assert "deleted while the watch was closed" in resumed
        low.wait_for_log(lambda log: retried in log.split(fresh, 1)[1])  # the key it held
    finally:
        for proc in (low, high):
            proc.stop()
