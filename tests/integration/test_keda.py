"""minWorkers 0: one worker and a False condition without KEDA; a ScaledObject once KEDA's CRD exists."""

from __future__ import annotations

import json

from support.k8s import get_json, wait_for
from support.manifests import KEDA_CRD, tiny_template

from devtools.localcluster.cluster import wait_established

TEMPLATE = tiny_template("scale-to-zero", minWorkers=0, maxWorkers=5, perWorker=4)


def autoscaling(cluster, namespace):
    mt = get_json(cluster, "modeltemplate", "scale-to-zero", "-n", namespace)
    return {c["type"]: c for c in (mt.get("status") or {}).get("conditions") or []}.get(
        "Autoscaling"
    )


def test_scale_to_zero_follows_keda_being_installed(cluster, operator, namespace):
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(TEMPLATE))
    cond = wait_for(lambda: autoscaling(cluster, namespace), what="the Autoscaling condition")
    assert (cond["status"], cond["reason"]) == ("False", "NoScaleToZero")
    assert (
        get_json(cluster, "deployment", "scale-to-zero", "-n", namespace)["spec"]["replicas"] == 1
    )

    cluster.kubectl("apply", "-f", "-", input=json.dumps(KEDA_CRD))
    try:
        wait_established(cluster, "scaledobjects.keda.sh", timeout=30)
        so = wait_for(
            lambda: get_json(cluster, "scaledobjects", "-n", namespace)["items"],
            what="a ScaledObject",
        )[0]
        assert so["spec"]["minReplicaCount"] == 0 and so["spec"]["maxReplicaCount"] == 5
        assert so["spec"]["scaleTargetRef"]["name"] == "scale-to-zero"
        assert so["spec"]["triggers"][0]["metadata"]["threshold"] == "4"
        assert so["metadata"]["ownerReferences"][0]["name"] == "scale-to-zero"
        wait_for(
            lambda: (c := autoscaling(cluster, namespace)) and c["reason"] == "KEDA",
            what="Autoscaling=KEDA",
        )
        assert autoscaling(cluster, namespace)["status"] == "True"
    finally:
        cluster.kubectl("delete", "crd", "scaledobjects.keda.sh", "--wait=true")
    wait_for(
        lambda: (c := autoscaling(cluster, namespace)) and c["reason"] == "NoScaleToZero",
        what="back to one worker without KEDA",
    )
    assert operator.proc.poll() is None, "the operator exited when KEDA's CRD went"
