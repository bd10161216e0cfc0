"""What the watch caches keep, and which watch events can change a reconcile (caches.py)."""

from __future__ import annotations

import pytest

from modeltemplate_operator.api import kinds
from modeltemplate_operator.controller.caches import Seen, cached, compact

pytestmark = pytest.mark.unit


def deployment(resource_version: str = "1", **status) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "d",
            "namespace": "ns",
            "generation": 1,
            "resourceVersion": resource_version,
            "managedFields": [{"manager": "x"}],
        },
        "spec": {"replicas": 1},
        "status": status,
    }


def test_the_cache_keeps_only_the_status_fields_a_reconcile_reads():
    body = deployment(observedGeneration=1, readyReplicas=1, availableReplicas=1)
    kept = cached(kinds.DEPLOYMENT, body)
    assert kept["status"] == {"observedGeneration": 1, "readyReplicas": 1}
    assert "managedFields" not in kept["metadata"]
    assert kept["metadata"]["resourceVersion"] == "1"  # apply tracks its writes by it
    assert body["metadata"]["managedFields"]  # the watch's object is left alone
    assert "status" not in cached(kinds.PDB, {**body, "kind": "PodDisruptionBudget"})
    pod = {**body, "kind": "Pod", "status": {"phase": "Running", "conditions": []}}
    assert cached(kinds.POD, pod)["status"] == pod["status"]


def test_an_event_that_changes_nothing_read_is_not_a_change():
    seen = Seen()
    key = ("Deployment", "ns", "d")
    first = cached(kinds.DEPLOYMENT, deployment("1", observedGeneration=1))
    assert seen.changed(key, first)
    # A new resourceVersion with only unread status fields changed: nothing to do.
    churn = deployment("2", observedGeneration=1, collisionCount=1)
    assert not seen.changed(key, cached(kinds.DEPLOYMENT, churn))
    assert seen.changed(key, cached(kinds.DEPLOYMENT, deployment("3", observedGeneration=2)))
    seen.forget(key)
    assert seen.changed(key, cached(kinds.DEPLOYMENT, deployment("3", observedGeneration=2)))


def test_a_spec_or_label_change_is_a_change():
    seen = Seen()
    key = ("Deployment", "ns", "d")
    body = deployment()
    assert seen.changed(key, body)
    assert seen.changed(key, {**body, "spec": {"replicas": 2}})
    labelled = {
        **body,
        "spec": {"replicas": 2},
        "metadata": {**body["metadata"], "labels": {"a": "b"}},
    }
    assert seen.changed(key, labelled)
    assert not seen.changed(key, labelled)


def test_cached_objects_share_their_short_strings():
    def decoded():  # as two watch events decode them: equal strings, distinct objects
        return {"".join(["na", "me"]): "".join(["im", "age"]), "long": "x" * 100 + str(len("ab"))}

    a, b = compact(decoded()), compact(decoded())
    assert a == b == decoded()
    assert next(iter(a)) is next(iter(b)) and a["name"] is b["name"]
    assert a["long"] is not b["long"]  # long strings are rarely shared: left as they are


def test_the_cache_drops_kubectls_last_applied_copy_and_what_no_reconcile_reads_of_pods():
    body = deployment()
    body["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": '{"spec": "a whole copy"}',
        "launch.modelops.dev/created-by-user-id": "alice",
    }
    kept = cached(kinds.MODEL_TEMPLATE, {**body, "kind": "ModelTemplate"})
    assert kept["metadata"]["annotations"] == {"launch.modelops.dev/created-by-user-id": "alice"}
    assert "kubectl.kubernetes.io/last-applied-configuration" in body["metadata"]["annotations"]
    pod = {
        **body,
        "kind": "Pod",
        "spec": {"nodeName": "n1", "containers": [{"name": "main", "env": []}]},
        "status": {"phase": "Running", "podIP": "10.0.0.1", "hostIP": "x"},
    }
    kept = cached(kinds.POD, pod)
    assert (kept["spec"], kept["status"]) == ({"nodeName": "n1"}, {"phase": "Running"})
