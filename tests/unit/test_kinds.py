"""The table of kinds: paths, and the operator's RBAC in deploy/ granting exactly what it needs."""

from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from modeltemplate_operator.api import kinds

pytestmark = pytest.mark.unit
RBAC = Path(__file__).resolve().parents[2] / "deploy" / "base" / "rbac.yaml"
#: What the operator may do beyond the kinds it renders and watches, and why.
NOT_KINDS = {
    **{(o.group, f"{o.plural}/status"): {"patch"} for o in kinds.OWNERS},  # status writes
    **{(o.group, f"{o.plural}/finalizers"): {"update"} for o in kinds.OWNERS},  # blockOwnerDel.
    ("", "events"): {"create", "list"},  # list: the FailedCreate Events of a Job without pods
    ("", "configmaps"): {"get"},  # a fine-tuning job's ConfigMap dataset is read to check it
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
    ("kopf.dev", "clusterkopfpeerings"): {"list", "watch", "create", "patch"},
}


def test_object_paths():
    def path(api_version, kind, *args):
        return kinds.for_object({"apiVersion": api_version, "kind": kind}).path(*args)

    assert path("v1", "Service", "ns", "a") == "/api/v1/namespaces/ns/services/a"
    assert path("apps/v1", "Deployment", "ns", "a") == "/apis/apps/v1/namespaces/ns/deployments/a"
    assert (
        path("keda.sh/v1alpha1", "ScaledObject", "ns")
        == "/apis/keda.sh/v1alpha1/namespaces/ns/scaledobjects"
    )
    with pytest.raises(KeyError):
        kinds.for_object({"apiVersion": "v1", "kind": "Pod"})  # watched, never rendered


def _granted() -> dict[tuple[str, str], set[str]]:
    role = next(d for d in yaml.safe_load_all(RBAC.read_text()) if d["kind"] == "ClusterRole")
    granted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted[(group, resource)] |= set(rule["verbs"])
    return granted


def test_rbac_matches_the_table_of_kinds():
    expected: dict[tuple[str, str], set[str]] = dict(NOT_KINDS)
    for kind in kinds.WATCHED:
        expected[(kind.group, kind.plural)] = expected.get((kind.group, kind.plural), set()) | {
            "list",
            "watch",
        }
    for kind in kinds.CHILDREN:
        expected[(kind.group, kind.plural)] |= {"create", "patch", "delete"}
    for owner in kinds.OWNERS:
        expected[(owner.group, owner.plural)] = {"list", "watch"}
    expected[(kinds.MODEL.group, kinds.MODEL.plural)].add("create")  # a fine-tuning job's output
    assert _granted() == expected


def test_user_roles_cover_every_owner_kind():
    """A new owner kind is usable by people as soon as its entry exists: the editor and
    viewer roles name every owner kind's resource (and the tests fail until they do)."""
    roles = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all((RBAC.parent / "user-roles.yaml").read_text())
    }
    plurals = {o.plural for o in kinds.OWNERS}
    for name, verbs in (
        ("modeltemplate-editor", {"get", "list", "watch", "create", "update", "patch", "delete"}),
        ("modeltemplate-viewer", {"get", "list", "watch"}),
    ):
        (rule,) = roles[name]["rules"]
        assert set(rule["resources"]) == plurals and set(rule["verbs"]) == verbs
