"""A fine-tuning run is started once: the reconciler's calls, in order, against a recording
cluster (the same runs against the real API server are in tests/integration/test_fine_tuning.py;
the run's phases in tests/unit/test_reconciler_decisions.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes.client.exceptions import ApiException
from support.fake_cluster import FakeCluster, api_error

from modeltemplate_operator.controller.reconciler import Reconciler, Related
from modeltemplate_operator.observed import Observed
from modeltemplate_operator.plan.config import OperatorConfig
from modeltemplate_operator.status import finetuning as fts

pytestmark = pytest.mark.unit
SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
ASK_FOR_JOB = ("list", "Job", "metadata.name=tune")


def template() -> dict:
    doc = yaml.safe_load((SAMPLES / "finetunable-llm-a100.yaml").read_text())
    doc["metadata"].update(name="llm", namespace="team", uid="t-uid", generation=1)
    return doc


def ftj(status: dict | None = None) -> dict:
    return {
        "apiVersion": "launch.modelops.dev/v1alpha1",
        "kind": "FineTuningJob",
        "metadata": {"name": "tune", "namespace": "team", "uid": "j-uid", "generation": 1},
        "spec": {
            "templateRef": {"name": "llm"},
            "trainingDataset": {"inline": [{"input": "a", "output": "b"}]},
        },
        "status": status or {},
    }


def reconcile(cluster: FakeCluster, body: dict, observed: Observed | None = None):
    reconciler = Reconciler(cluster, OperatorConfig())
    return reconciler.reconcile_fine_tuning(
        body, Related(observed or Observed(), refs={"ModelTemplate": template(), "Model": None})
    )


def ready_of(status: dict) -> dict:
    return next(c for c in status["conditions"] if c["type"] == "Ready")


def test_the_job_is_marked_in_the_status_before_it_is_created():
    cluster = FakeCluster()
    reconcile(cluster, ftj())
    order = [w[0] if w[0] == "status" else w for w in cluster.writes if w[0] != "event"]
    assert order == ["status", ("apply", "ConfigMap/tune"), ("apply", "Job/tune"), "status"]
    mark = cluster.statuses()[0]
    assert mark["jobName"] == "tune" and mark["phase"] == "Pending"
    assert ready_of(mark)["reason"] == "CreatingJob"
    assert cluster.statuses()[-1]["phase"] == "Pending"
    # One call more than before per run, once: the mark. No Event is read for a Job just
    # created (its pods come with the next watch events), nothing is read at all.
    assert cluster.reads == []


def test_a_refused_create_takes_the_mark_back():
    quota = api_error(403, 'jobs.batch "tune" is forbidden: exceeded quota')
    cluster = FakeCluster({"apply Job": quota})
    outcome = reconcile(cluster, ftj())
    first, last = cluster.statuses()[0], cluster.statuses()[-1]
    assert first["jobName"] == "tune"
    assert last["jobName"] is None and last["phase"] == "Pending"
    assert ready_of(last)["reason"] == "ApplyFailed"
    assert outcome.retry is not None  # tried again on the refused backoff


def test_a_marked_run_without_its_job_fails_and_creates_nothing():
    cluster = FakeCluster()
    marked = {"phase": "Running", "jobName": "tune", "startTime": "2026-01-01T00:00:00Z"}
    reconcile(cluster, ftj(marked))
    assert cluster.reads == [ASK_FOR_JOB]
    assert cluster.child_writes() == []
    [status] = cluster.statuses()
    assert status["phase"] == "Failed" and "not restarted by itself" in status["message"]
    assert ready_of(status)["reason"] == "JobLost"
    assert status["completionTime"]
    # Finished: the next reconcile changes nothing and asks nothing.
    cluster = FakeCluster()
    reconcile(cluster, ftj({**marked, **status}))
    assert cluster.writes == [] and cluster.reads == []


def test_a_marked_run_whose_job_the_cache_does_not_show_yet_goes_on():
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "tune",
            "namespace": "team",
            "uid": "uid-tune",
            "ownerReferences": [{"uid": "j-uid", "controller": True}],
        },
        "status": {"active": 1},
    }
    cluster = FakeCluster()
    cluster.listed["Job"] = [job]
    reconcile(cluster, ftj({"phase": "Pending", "jobName": "tune"}))
    assert cluster.reads == [ASK_FOR_JOB] and cluster.child_writes() == []
    assert all(s.get("phase") != "Failed" for s in cluster.statuses())


def test_statuses_of_earlier_versions_naming_a_refused_job_are_not_marks():
    def status(valid: str, reason: str) -> dict:
        return {
            "jobName": "tune",
            "conditions": [
                {"type": "Valid", "status": valid, "reason": "x"},
                {"type": "Ready", "status": "False", "reason": reason},
            ],
        }

    assert fts.marked_job(status("True", "Running")) == "tune"
    assert fts.marked_job(status("True", "CreatingJob")) == "tune"
    assert fts.marked_job(status("True", "ApplyFailed")) is None
    assert fts.marked_job(status("False", "TemplateMissing")) is None
    assert fts.marked_job({}) is None
    # Such a run is created (not failed) by this version.
    cluster = FakeCluster()
    reconcile(cluster, ftj(status("True", "ApplyFailed")))
    assert ("apply", "Job/tune") in cluster.child_writes()


def test_a_create_that_failed_transiently_takes_the_mark_back_only_if_no_job_exists():
    cluster = FakeCluster({"apply Job": api_error(429, "too many requests")})
    with pytest.raises(ApiException):
        reconcile(cluster, ftj())  # the runtime retries it
    first, last = cluster.statuses()[0], cluster.statuses()[-1]
    assert first["jobName"] == "tune" and last["jobName"] is None
    assert cluster.reads == [ASK_FOR_JOB]

    timeout = api_error(504, "the request did not complete in time")
    cluster = FakeCluster({"apply Job": timeout})
    cluster.listed["Job"] = [{"metadata": {"name": "tune", "ownerReferences": [{"uid": "j-uid"}]}}]
    with pytest.raises(ApiException):
        reconcile(cluster, ftj())  # it was created after all
    [mark] = cluster.statuses()
    assert mark["jobName"] == "tune"  # stays: a Job exists
