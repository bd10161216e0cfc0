"""Two operator replicas with peering: one acts, the other takes over when it leaves."""

from __future__ import annotations

import json
from pathlib import Path

from support.k8s import get_json, wait_for
from support.manifests import tiny_template
from support.operator import OperatorProcess

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_only_the_highest_priority_replica_acts(cluster, cluster_prereqs, namespace):
    replicas = {
        prio: OperatorProcess(
            Path(cluster.kubeconfig),
            ARTIFACTS / f"operator-peer-{prio}.log",
            "--verbose",
            env={"MODELTEMPLATE_PEERING_PRIORITY": str(prio)},
        )
        for prio in (100, 200)
    }
    # Peers registered by earlier runs (their entries live on until they expire) would outrank
    # both replicas; start from an empty peering object, as a fresh install does.
    cluster.kubectl("delete", "clusterkopfpeering", "modeltemplate-operator", "--ignore-not-found")
    # Every kind served before the replicas start: a list the API server refuses while a CRD's
    # storage (re)initializes is retried, and Kopf dispatches what it lists even when that lands
    # after the replica paused (seen in a parallel run: the low replica reconciled one template).
    wait_for(
        lambda: (
            cluster.kubectl(
                "get", "modeltemplates,models,modeldeployments,finetuningjobs", "-A", check=False
            ).returncode
            == 0
        ),
        what="the CRDs served",
    )
    for proc in replicas.values():
        proc.log_path.unlink(missing_ok=True)
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
