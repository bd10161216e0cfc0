"""The runtime's decisions from the watch caches, table-driven: what a reconcile reads besides
the owner (its related owners) and who looks again after a change (its dependents).

The caches are Kopf indices (plain mappings here, as Kopf hands them to the handlers); the
runtime's work queue and workers play no part in these decisions.
"""

from __future__ import annotations

import pytest

from modeltemplate_operator.api import kinds
from modeltemplate_operator.controller.runtime import Runtime, index_name, refs_index_name

pytestmark = pytest.mark.unit
NS = "team-a"


def owner(kind: kinds.OwnerKind, name: str, status=None, **spec) -> dict:
    return {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": {"name": name, "namespace": NS, "generation": 1, "uid": name},
        "spec": spec,
        "status": status or {},
    }


def waiting(name: str, template: str) -> dict:
    status = {
        "conditions": [{"type": "UpToDate", "status": "False", "reason": "WaitingForRollout"}]
    }
    return owner(kinds.MODEL, name, status, templateRef={"name": template})


def runtime_over(*bodies: dict) -> Runtime:
    """A runtime whose caches hold ``bodies`` (and no children)."""
    indices: dict[str, dict] = {index_name(k): {} for k in (*kinds.OWNERS, *kinds.WATCHED)}
    for k in kinds.OWNERS:
        indices[refs_index_name(k)] = {}
    for body in bodies:
        kind = kinds.OWNER_BY_KIND[body["kind"]]
        key = (kind.kind, NS, body["metadata"]["name"])
        indices[index_name(kind)][key] = [body]
        for ref in kind.refs:
            if ref.name_in(body):
                named = (ref.kind, NS, ref.name_in(body))
                indices[refs_index_name(kind)].setdefault(named, []).append(key[2])
    runtime = Runtime.__new__(Runtime)  # no queue, no workers: only the decisions
    runtime._indices = indices
    return runtime


T = kinds.MODEL_TEMPLATE.kind
M = kinds.MODEL.kind
F = kinds.FINE_TUNING_JOB.kind
CACHE = (
    owner(kinds.MODEL_TEMPLATE, "vllm"),
    owner(kinds.MODEL, "a", templateRef={"name": "vllm"}),
    waiting("b", "vllm"),
    owner(kinds.MODEL, "c", templateRef={"name": "other"}),
    owner(kinds.FINE_TUNING_JOB, "ft-of-template", templateRef={"name": "vllm"}),
    owner(kinds.FINE_TUNING_JOB, "ft-of-model", modelRef={"name": "a"}),
    owner(kinds.MODEL_DEPLOYMENT, "a-large", modelRef={"name": "a"}),
)
D = kinds.MODEL_DEPLOYMENT.kind


@pytest.mark.parametrize(
    "key, status_only, expected",
    [
        # a template's change: its models and fine-tuning jobs, and those reading it through
        # a model (a deployment, a fine-tuning job of a model)
        (
            (T, NS, "vllm"),
            False,
            {
                (M, NS, "a"),
                (M, NS, "b"),
                (F, NS, "ft-of-template"),
                (F, NS, "ft-of-model"),
                (D, NS, "a-large"),
            },
        ),
        # its own status written: nobody reads it
        ((T, NS, "vllm"), True, set()),
        # a model's change: its template (counts it), a waiting sibling, the jobs and
        # deployments naming it
        (
            (M, NS, "a"),
            False,
            {(T, NS, "vllm"), (M, NS, "b"), (F, NS, "ft-of-model"), (D, NS, "a-large")},
        ),
        # a deployment's change: nobody reads it
        ((D, NS, "a-large"), False, set()),
        ((M, NS, "a"), True, {(T, NS, "vllm"), (M, NS, "b")}),
        # a waiting model wakes its template, not itself
        ((M, NS, "b"), True, {(T, NS, "vllm")}),
        # a model of a template that does not exist: the name is still woken (it may appear)
        ((M, NS, "c"), True, {(T, NS, "other")}),
        # a fine-tuning job: its template does not count it
        ((F, NS, "ft-of-template"), False, set()),
    ],
)
def test_dependents(key, status_only, expected):
    runtime = runtime_over(*CACHE)
    body = runtime._cached_owner(key)
    assert set(runtime.dependents(key, body, status_only=status_only)) == expected


def test_related_of_a_template_counts_its_models_only():
    runtime = runtime_over(*CACHE)
    key = (T, NS, "vllm")
    related = runtime.related(key, runtime._cached_owner(key))
    assert {m["metadata"]["name"] for m in related.referrers[M]} == {"a", "b"}
    assert {j["metadata"]["name"] for j in related.referrers[F]} == {"ft-of-template"}
    assert related.refs == {} and related.siblings == []


def test_related_of_a_model_names_its_template_and_family():
    runtime = runtime_over(*CACHE)
    key = (M, NS, "a")
    related = runtime.related(key, runtime._cached_owner(key))
    assert related.refs[T]["metadata"]["name"] == "vllm"
    assert {m["metadata"]["name"] for m in related.siblings} == {"a", "b"}


@pytest.mark.parametrize(
    "job, template, model",
    [
        ("ft-of-template", "vllm", None),
        ("ft-of-model", "vllm", "a"),  # the model's template, followed through the model
    ],
)
def test_related_of_a_fine_tuning_job_follows_references(job, template, model):
    runtime = runtime_over(*CACHE)
    key = (F, NS, job)
    related = runtime.related(key, runtime._cached_owner(key))
    assert (related.refs[T] or {}).get("metadata", {}).get("name") == template
    assert (related.refs.get(M) or {}).get("metadata", {}).get("name") == model


def test_a_missing_template_is_none_not_absent():
    runtime = runtime_over(owner(kinds.MODEL, "lonely", templateRef={"name": "gone"}))
    key = (M, NS, "lonely")
    related = runtime.related(key, runtime._cached_owner(key))
    assert related.refs == {T: None}


def test_related_of_a_deployment_reaches_the_template_through_its_model():
    runtime = runtime_over(*CACHE)
    key = (D, NS, "a-large")
    related = runtime.related(key, runtime._cached_owner(key))
    assert related.refs[M]["metadata"]["name"] == "a"
    assert related.refs[T]["metadata"]["name"] == "vllm"
    assert related.siblings == []
