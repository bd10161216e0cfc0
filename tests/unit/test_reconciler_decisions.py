"""The reconciler's decisions, table-driven: given the owner, what the caches show of its children
and related owners, and what the API server answers → the writes, the status conditions, the
Events and the retry. The API server is a recording :class:`FakeCluster`; the same decisions
against the real one are in tests/integration (test_reconciler.py, test_operator.py,
test_model_lifecycle.py, test_fine_tuning.py)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException
from support.fake_cluster import FakeCluster, api_error
from support.manifests import tiny_template

from modeltemplate_operator.api import kinds
from modeltemplate_operator.controller import reconciler as rec
from modeltemplate_operator.controller.reconciler import (
    JOB_WITHOUT_PODS,
    REFUSED,
    SETTLE,
    TERMINATING,
    Reconciler,
    Related,
)
from modeltemplate_operator.controller.workqueue import Backoff
from modeltemplate_operator.observed import Observed
from modeltemplate_operator.plan.config import OperatorConfig

pytestmark = pytest.mark.unit
SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
NS = "team"
NOW = "2026-01-02T00:00:00Z"
T, M, D, F = (k.kind for k in kinds.OWNERS)


class Clock:
    """The reconciler's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def reconciler_over(cluster: FakeCluster, clock: Clock | None = None) -> Reconciler:
    return Reconciler(cluster, OperatorConfig(), now=lambda: NOW, monotonic=clock or Clock())


def _named(body: dict[str, Any], name: str, status: dict | None = None) -> dict[str, Any]:
    body["metadata"].update(
        name=name,
        namespace=NS,
        uid=f"uid-{name}",
        generation=1,
        creationTimestamp="2026-01-01T00:00:00Z",
    )
    body["status"] = status or {}
    return body


def template(name: str = "llm", **endpoint: Any) -> dict[str, Any]:
    return _named(tiny_template(name, **endpoint), name)


def owner(kind: kinds.OwnerKind, name: str, status: dict | None = None, **spec: Any) -> dict:
    body = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {}, "spec": spec}
    return _named(body, name, status)


def model(name: str = "m", template_name: str = "llm", **spec: Any) -> dict[str, Any]:
    return owner(kinds.MODEL, name, templateRef={"name": template_name}, **spec)


def finetunable() -> dict[str, Any]:
    doc = yaml.safe_load((SAMPLES / "finetunable-llm-a100.yaml").read_text())
    return _named(doc, "ft-llm")


def ftj(status: dict | None = None, **spec: Any) -> dict[str, Any]:
    spec = {
        "templateRef": {"name": "ft-llm"},
        "trainingDataset": {"inline": [{"input": "a", "output": "b"}]},
        **spec,
    }
    return owner(kinds.FINE_TUNING_JOB, "tune", status, **spec)


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


def ready_reason(status: dict[str, Any]) -> str:
    return conditions(status)["Ready"][1]


# -- dispatch: every owner kind through the registry ----------------------------------------------
def test_every_owner_kind_has_one_registered_reconcile():
    assert set(rec._RECONCILES) == {k.kind for k in kinds.OWNERS}


@pytest.mark.parametrize(
    "body, related, children",
    [
        (template(), Related(), ["Deployment/llm", "Service/llm", "PodDisruptionBudget/llm"]),
        (
            model("m"),
            Related(refs={T: template()}),
            ["Deployment/m", "Service/m", "PodDisruptionBudget/m"],
        ),
        (
            owner(kinds.MODEL_DEPLOYMENT, "m-large", modelRef={"name": "m"}, maxWorkers=2),
            Related(refs={M: model("m"), T: template()}),
            [
                "Deployment/m-large",
                "Service/m-large",
                "HorizontalPodAutoscaler/m-large",
                "PodDisruptionBudget/m-large",
            ],
        ),
        (ftj(), Related(refs={T: finetunable(), M: None}), ["ConfigMap/tune", "Job/tune"]),
    ],
    ids=[T, M, D, F],
)
def test_each_owner_kind_dispatches_to_its_reconcile(body, related, children):
    cluster = FakeCluster()
    reconciler_over(cluster).reconcile_owner(body, related)
    assert cluster.child_writes() == [("apply", c) for c in children]
    owner_kind = kinds.OWNER_BY_KIND[body["kind"]]
    for child in cluster.stored.values():
        # Owned by, and labelled as, the owner it was dispatched for.
        assert child["metadata"]["ownerReferences"][0]["kind"] == body["kind"]
        assert child["metadata"]["labels"][kinds.NAME_LABEL] == kinds.app_name(owner_kind)


# -- what renders nothing: said in the status, children left alone --------------------------------
EXISTING = Observed(
    objects=[
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "llm",
                "namespace": NS,
                "ownerReferences": [{"uid": "uid-llm", "controller": True}],
            },
            "spec": {"replicas": 1},
        }
    ]
)


@dataclass
class Case:
    id: str
    body: dict[str, Any]
    related: Related = field(default_factory=Related)
    fail: dict[str, ApiException] = field(default_factory=dict)
    #: The writes to children, in order.
    writes: list[tuple[str, str]] = field(default_factory=list)
    #: Conditions of the status written, by type: (status, reason); None: no status written.
    status: dict[str, tuple[str, str]] | None = None
    events: list[tuple[str, str]] = field(default_factory=list)
    retry: Any = None
    #: Other fields of the status written, as they must be.
    fields: dict[str, Any] = field(default_factory=dict)


QUOTA = api_error(403, 'deployments.apps "llm" is forbidden: exceeded quota: gpus')
TERMINATING_NS = api_error(
    403,
    "unable to create new content in namespace team because it is being terminated",
    causes=[{"reason": "NamespaceTerminating"}],
)
STALLED_SPEC = {
    "Valid": ("False", "InvalidSpec"),
    "Ready": ("False", "InvalidSpec"),
    "Stalled": ("True", "InvalidSpec"),
}


def _missing(reason: str) -> dict[str, tuple[str, str]]:
    return {"Valid": ("False", reason), "Ready": ("False", reason), "Stalled": ("True", reason)}


def _on(generation: int, ready: str, name: str) -> dict[str, Any]:
    """A model running its template's ``generation``, Ready or not."""
    status = {
        "observedGeneration": 1,
        "templateGeneration": generation,
        "conditions": [{"type": "Ready", "status": ready, "reason": "x"}],
    }
    return {**model(name), "status": status}


#: A template at generation 2: model a on it and not Ready yet, b still on generation 1.
TEMPLATE_2 = {**template(), "metadata": {**template()["metadata"], "generation": 2}}
FAMILY = [_on(2, "False", "a"), _on(1, "True", "b")]


CASES = [
    Case(
        "invalid spec: status, no child write",
        template(minWorkers=5, maxWorkers=1),
        Related(observed=EXISTING),
        status=STALLED_SPEC,
        events=[("Warning", "InvalidSpec")],
    ),
    Case(
        "model: template missing",
        model(),
        Related(observed=EXISTING, refs={T: None}),
        status=_missing("TemplateMissing"),
        events=[("Warning", "TemplateMissing")],
    ),
    Case(
        "model: template being deleted is missing",
        model(),
        Related(refs={T: {**template(), "metadata": {"deletionTimestamp": NOW}}}),
        status=_missing("TemplateMissing"),
        events=[("Warning", "TemplateMissing")],
    ),
    Case(
        "model: template invalid",
        model(),
        Related(refs={T: template(minWorkers=5, maxWorkers=1)}),
        status=_missing("TemplateInvalid"),
        events=[("Warning", "TemplateInvalid")],
    ),
    Case(
        "model: modelType contradicts the template",
        model(modelType="EMBEDDING"),
        Related(refs={T: template()}),
        status=_missing("InvalidParameters"),
        events=[("Warning", "InvalidParameters")],
    ),
    Case(
        "deployment: model missing",
        owner(kinds.MODEL_DEPLOYMENT, "m-large", modelRef={"name": "m"}),
        Related(refs={M: None, T: None}),
        status=_missing("ModelMissing"),
        events=[("Warning", "ModelMissing")],
    ),
    Case(
        "fine-tuning job: template missing, looked for again",
        ftj(),
        Related(refs={T: None, M: None}),
        status={"Valid": ("False", "TemplateMissing"), "Ready": ("False", "TemplateMissing")},
        events=[("Warning", "TemplateMissing")],
        retry=REFUSED,
    ),
    Case(
        "fine-tuning job: its model missing",
        owner(
            kinds.FINE_TUNING_JOB,
            "tune",
            modelRef={"name": "gone"},
            trainingDataset={"url": "s3://data/train.jsonl"},
        ),
        Related(refs={M: None, T: None}),
        status={"Valid": ("False", "TemplateMissing"), "Ready": ("False", "TemplateMissing")},
        events=[("Warning", "TemplateMissing")],
        retry=REFUSED,
    ),
    Case(
        "child refused (terminal): ApplyFailed, stalled, retried on the long backoff",
        template(),
        fail={"apply": QUOTA},
        writes=[("apply", "Deployment/llm")],
        status={"Valid": ("True", "Valid"), "Ready": ("False", "ApplyFailed")}
        | {"Stalled": ("True", "ApplyFailed")},
        events=[("Warning", "ApplyFailed")],
        retry=REFUSED,
    ),
    Case(
        "namespace terminating: quiet, looked at later",
        template(),
        fail={"apply": TERMINATING_NS},
        writes=[("apply", "Deployment/llm")],
        retry=TERMINATING,
    ),
    Case(
        "staged rollout: a model waits for its turn, its workload left as it is",
        FAMILY[1],
        Related(refs={T: TEMPLATE_2}, siblings=FAMILY),
        status={"UpToDate": ("False", "WaitingForRollout")},
        fields={"templateGeneration": 1},
    ),
    Case(
        "children just written: the status waits for them to settle",
        template(),
        writes=[("apply", c) for c in ("Deployment/llm", "Service/llm", "PodDisruptionBudget/llm")],
        retry=SETTLE,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decisions(case: Case):
    cluster = FakeCluster(case.fail)
    outcome = reconciler_over(cluster).reconcile_owner(case.body, case.related)
    assert cluster.child_writes() == case.writes
    statuses = cluster.statuses()
    if case.status is None:
        assert statuses == [] and not outcome.status_written
    else:
        [status] = statuses
        assert outcome.status_written
        found = conditions(status)
        assert {t: found.get(t) for t in case.status} == case.status, found
        assert {k: status.get(k) for k in case.fields} == case.fields
    assert cluster.events() == case.events
    assert outcome.retry == case.retry


def test_an_owner_being_deleted_is_left_to_garbage_collection():
    for body in (template(), model(), ftj()):
        body["metadata"]["deletionTimestamp"] = NOW
        cluster = FakeCluster()
        related = Related(refs={T: template(), M: None})
        assert reconciler_over(cluster).reconcile_owner(body, related) is None
        assert cluster.writes == [] and cluster.reads == []


@pytest.mark.parametrize(
    "exc", [api_error(503, "etcd leader changed"), api_error(429), api_error(409, "conflict")]
)
def test_transient_api_errors_propagate_for_the_runtime_to_retry(exc):
    """Retried at once by the runtime (its TRANSIENT backoff): no status says anything."""
    cluster = FakeCluster({"apply": exc})
    with pytest.raises(ApiException):
        reconciler_over(cluster).reconcile_owner(template(), Related())
    assert cluster.statuses() == [] and cluster.events() == []


def test_an_object_too_large_to_store_is_terminal():
    too_large = api_error(500, "etcdserver: request is too large")
    cluster = FakeCluster({"apply": too_large})
    outcome = reconciler_over(cluster).reconcile_owner(template(), Related())
    assert ready_reason(cluster.statuses()[0]) == "ApplyFailed" and outcome.retry == REFUSED


# -- converged and drifted ------------------------------------------------------------------------
def converged(body: dict[str, Any], related: Related) -> tuple[dict[str, Any], list[dict]]:
    """The owner with the status it converges to, and its children as the API server stored
    them: what the caches show once everything settled."""
    cluster, clock = FakeCluster(), Clock()
    reconciler = reconciler_over(cluster, clock)
    reconciler.reconcile_owner(body, related)
    children = list(cluster.stored.values())
    clock.t += SETTLE.first
    settled = replace_observed(related, children)
    outcome = reconciler.reconcile_owner(body, settled)
    assert outcome.status_written and not cluster.child_writes()[3:]
    return {**body, "status": outcome.status}, children


def replace_observed(related: Related, children: list[dict]) -> Related:
    return Related(Observed(objects=children), related.refs, related.referrers, related.siblings)


def _edit_image(children: list[dict]) -> list[dict]:
    children = copy.deepcopy(children)
    deployment = next(c for c in children if c["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "docker.io/evil:latest"
    return children


def _drop(kind: str):
    return lambda children: [c for c in children if c["kind"] != kind]


def _add_hpa(children: list[dict]) -> list[dict]:
    hpa = copy.deepcopy(next(c for c in children if c["kind"] == "Service"))
    hpa.update(apiVersion="autoscaling/v2", kind="HorizontalPodAutoscaler", spec={})
    return [*children, hpa]


@pytest.mark.parametrize(
    "body, related, drift, writes",
    [
        (template(), Related(), lambda c: c, []),
        (model(), Related(refs={T: template()}), lambda c: c, []),
        (template(), Related(), _edit_image, [("apply", "Deployment/llm")]),
        (model(), Related(refs={T: template()}), _edit_image, [("apply", "Deployment/m")]),
        (template(), Related(), _drop("Service"), [("apply", "Service/llm")]),
        (template(), Related(), _add_hpa, [("delete", "HorizontalPodAutoscaler/llm")]),
    ],
    ids=[
        "template converged",
        "model converged",
        "template: a manual edit",
        "model: a manual edit",
        "child deleted",
        "child no longer rendered",
    ],
)
def test_converged_writes_nothing_and_drift_one_write(body, related, drift, writes):
    body, children = converged(body, related)
    cluster = FakeCluster()
    outcome = reconciler_over(cluster).reconcile_owner(
        body, replace_observed(related, drift(children))
    )
    assert cluster.child_writes() == writes
    assert cluster.events() == []
    if writes:  # the status waits for the write to show in the caches
        assert outcome.settling and outcome.retry == SETTLE and cluster.statuses() == []
    else:
        assert cluster.writes == [] and not outcome.status_written and outcome.retry is None


def test_a_template_counts_its_models():
    status, _ = converged(TEMPLATE_2, Related(referrers={M: FAMILY}))
    assert status["status"]["models"] == {
        "total": 2,
        "updated": 1,
        "ready": 0,
        "outdated": ["b"],
    }


def test_a_status_waits_at_most_the_settle_time():
    clock, cluster = Clock(), FakeCluster()
    reconciler = reconciler_over(cluster, clock)
    assert reconciler.reconcile_owner(template(), Related()).settling
    clock.t += SETTLE.first - 1
    # Still settling: the cache has not shown the writes (pending), nothing is written again.
    assert reconciler.reconcile_owner(template(), Related()).settling
    assert len(cluster.child_writes()) == 3
    clock.t += 1
    outcome = reconciler.reconcile_owner(template(), Related())
    assert outcome.status_written and not outcome.settling


# -- fine-tuning jobs: the run's phases -----------------------------------------------------------
def job(status: dict[str, Any], deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "tune",
        "namespace": NS,
        "uid": "job-uid",
        "ownerReferences": [{"uid": "uid-tune", "controller": True}],
    }
    if deleting:
        meta["deletionTimestamp"] = NOW
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "status": status}


def pod(phase: str) -> dict[str, Any]:
    return {"metadata": {"name": "tune-abc", "namespace": NS}, "status": {"phase": phase}}


CONFIG_MAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {
        "name": "tune",
        "namespace": NS,
        "ownerReferences": [{"uid": "uid-tune", "controller": True}],
    },
}
MARKED = {"phase": "Running", "jobName": "tune", "startTime": "2026-01-01T00:00:00Z"}
COMPLETE = {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}
FAILED = {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}


def _lost() -> dict[str, Any]:
    """The status of a run whose Job was lost (what the JobLost case writes)."""
    cluster = FakeCluster()
    reconciler_over(cluster).reconcile_owner(ftj(MARKED), Related(refs={T: finetunable(), M: None}))
    return {**MARKED, **cluster.statuses()[-1]}


@dataclass
class Run:
    id: str
    body: dict[str, Any]
    objects: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    #: What a list of the run's Job by name answers (the cache shows none).
    listed: list[dict[str, Any]] = field(default_factory=list)
    writes: list[tuple[str, str]] = field(default_factory=list)
    #: (phase, Ready reason) of each status written, in order.
    phases: list[tuple[str, str]] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)
    #: What was asked of the API server besides the caches.
    reads: list[tuple[str, str, str]] = field(default_factory=list)
    #: When the run is looked at again without an event of its own.
    retry: Backoff | None = None


ASK_FOR_JOB = [("list", "Job", "metadata.name=tune")]
RUNS = [
    Run(
        "new: marked, then created",
        ftj(),
        writes=[("apply", "ConfigMap/tune"), ("apply", "Job/tune")],
        phases=[("Pending", "CreatingJob"), ("Pending", "Pending")],
        retry=JOB_WITHOUT_PODS,
    ),
    Run(
        "running",
        ftj(MARKED),
        objects=[CONFIG_MAP, job({"active": 1})],
        pods=[pod("Running")],
        phases=[("Running", "Running")],
    ),
    Run(
        "its Job without pods yet: its refusals read, looked at again soon",
        ftj(MARKED),
        objects=[CONFIG_MAP, job({})],
        phases=[("Pending", "Pending")],
        reads=[("list", "Event", "involvedObject.uid=job-uid,reason=FailedCreate")],
        retry=JOB_WITHOUT_PODS,
    ),
    Run(
        "job lost: Failed JobLost, never created again",
        ftj(MARKED),
        phases=[("Failed", "JobLost")],
        events=[("Warning", "JobLost")],
        reads=ASK_FOR_JOB,
    ),
    Run("job lost, later: nothing at all", ftj(_lost())),
    Run(
        "the cache lags behind the create: not lost",
        ftj({"phase": "Pending", "jobName": "tune"}),
        listed=[job({"active": 1})],
        phases=[("Pending", "Pending")],
        reads=ASK_FOR_JOB,
    ),
    Run(
        "job deleted while running: lost",
        ftj(MARKED),
        objects=[job({"active": 1}, deleting=True)],
        phases=[("Failed", "JobLost")],
        events=[("Warning", "JobLost")],
    ),
    Run(
        "failed",
        ftj(MARKED),
        objects=[job(FAILED)],
        phases=[("Failed", "JobFailed")],
        events=[("Warning", "JobFailed")],
    ),
    Run(
        "succeeded: the output Model made once",
        ftj(MARKED, outputModelName="tuned"),
        objects=[job(COMPLETE)],
        writes=[("create", "Model/tuned")],
        phases=[("Succeeded", "Succeeded")],
        events=[("Normal", "Ready")],
    ),
    Run(
        "cancelled: its children deleted",
        ftj(MARKED, cancelled=True),
        objects=[CONFIG_MAP, job({"active": 1})],
        writes=[("delete", "Job/tune"), ("delete", "ConfigMap/tune")],
        phases=[("Cancelled", "Cancelled")],
    ),
]


@pytest.mark.parametrize("run", RUNS, ids=[r.id for r in RUNS])
def test_fine_tuning_phases(run: Run):
    cluster = FakeCluster()
    cluster.listed[kinds.JOB.kind] = run.listed
    related = Related(
        Observed(objects=run.objects, pods=run.pods), refs={T: finetunable(), M: None}
    )
    outcome = reconciler_over(cluster).reconcile_owner(run.body, related)
    assert cluster.child_writes() == run.writes
    assert [(s.get("phase"), ready_reason(s)) for s in cluster.statuses()] == run.phases
    assert cluster.events() == run.events
    assert cluster.reads == run.reads
    assert outcome.retry == run.retry


def test_one_log_line_per_transition_naming_the_object(caplog):
    """A reconcile that writes children or moves the Ready condition logs one INFO line for
    each, naming the object (kind, namespace, name; Kopf's JSON format writes ``object``); a
    converged reconcile logs nothing at INFO."""
    caplog.set_level("INFO", logger=rec.__name__)
    cluster, clock = FakeCluster(), Clock()
    reconciler = reconciler_over(cluster, clock)
    body = template()
    reconciler.reconcile_owner(body, Related())  # children written: settling
    children = list(cluster.stored.values())
    clock.t += SETTLE.first
    outcome = reconciler.reconcile_owner(body, Related(Observed(objects=children)))
    lines = [(r.getMessage(), r.k8s_ref) for r in caplog.records if r.levelname == "INFO"]
    ref = {"apiVersion": body["apiVersion"], "kind": T, "name": "llm", "namespace": NS}
    assert [line for line, _ in lines] == [
        f"{T} {NS}/llm: applied ['Deployment/llm', 'Service/llm', 'PodDisruptionBudget/llm'] "
        "pruned []",
        f"{T} {NS}/llm: Ready -/- -> {ready_line(outcome.status)}",
    ]
    assert all({k: v for k, v in r.items() if k != "uid"} == ref for _, r in lines)
    caplog.clear()
    settled = {**body, "status": outcome.status}
    reconciler.reconcile_owner(settled, Related(Observed(objects=children)))
    assert [r for r in caplog.records if r.levelno >= 20] == []


def ready_line(status: dict[str, Any]) -> str:
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    return f"{ready['status']}/{ready['reason']}: {ready['message']}"
