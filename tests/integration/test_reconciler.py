"""A spec the API server stored but the models reject: Valid=False, children left alone."""

from __future__ import annotations

import copy
import json

from support.k8s import get_json
from support.manifests import tiny_template

from modeltemplate_operator.controller.cluster import KubeCluster
from modeltemplate_operator.controller.reconciler import Reconciler, Related
from modeltemplate_operator.observed import Observed
from modeltemplate_operator.plan.config import OperatorConfig

TEMPLATE = tiny_template("legacy")


def children(cluster, namespace):
    items = get_json(
        cluster,
        "deployments,services,pdb",
        "-n",
        namespace,
        "-l",
        "app.kubernetes.io/instance=legacy",
    )["items"]
    return Observed(objects=items)


def desired_state(cluster, namespace):
    """Generation and spec of each child: what a reconcile could change (not controller status)."""
    return {
        o["kind"]: (o["metadata"].get("generation"), json.dumps(o["spec"], sort_keys=True))
        for o in children(cluster, namespace).objects
    }


def test_invalid_stored_spec_is_reported_and_nothing_is_touched(
    cluster, cluster_prereqs, api_client, namespace
):
    # No operator process runs in this module: the reconciler is driven directly.
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(TEMPLATE))
    reconciler = Reconciler(KubeCluster(api_client), OperatorConfig())
    body = get_json(cluster, "modeltemplate", "legacy", "-n", namespace)
    first = reconciler.reconcile(body, Related(children(cluster, namespace)))
    assert sorted(first.applied.applied) == [
        "Deployment/legacy",
        "PodDisruptionBudget/legacy",
        "Service/legacy",
    ]
    before = desired_state(cluster, namespace)

    # As if stored under an older, looser CRD: the same object with a spec the models refuse.
    body = get_json(cluster, "modeltemplate", "legacy", "-n", namespace)
    stale = copy.deepcopy(body)
    stale["spec"]["vendorConfiguration"]["endpointConfig"]["minWorkers"] = 5
    outcome = reconciler.reconcile(stale, Related(children(cluster, namespace)))

    assert outcome.applied is None and outcome.status_written
    status = get_json(cluster, "modeltemplate", "legacy", "-n", namespace)["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (
        conditions["Valid"]["status"] == "False" and conditions["Valid"]["reason"] == "InvalidSpec"
    )
    assert "minWorkers (5) must be <= maxWorkers (1)" in conditions["Valid"]["message"]
    assert conditions["Ready"]["status"] == "False"
    after = desired_state(cluster, namespace)
    assert after == before  # existing children untouched
    events = [
        e
        for e in get_json(cluster, "events", "-n", namespace)["items"]
        if e["reason"] == "InvalidSpec"
    ]
    assert events and events[0]["type"] == "Warning"
