"""A fine-tuning run is started once: the reconciler's requests, in order, against a recording
stand-in for the API server (the same runs against the real one are in
tests/integration/test_fine_tuning.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from modeltemplate_operator.controller.cluster import KubeCluster
from modeltemplate_operator.controller.reconciler import Reconciler, Related
from modeltemplate_operator.observed import Observed
from modeltemplate_operator.plan.config import OperatorConfig
from modeltemplate_operator.status import finetuning as fts

pytestmark = pytest.mark.unit
SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
STATUS = "/apis/launch.modelops.dev/v1alpha1/namespaces/team/finetuningjobs/tune/status"
JOBS = "/apis/batch/v1/namespaces/team/jobs"


class Response:
    def __init__(self, status: int, body: object):
        self.status, self.reason, self.data = status, "", json.dumps(body).encode()
        self.headers: dict = {}

    def read(self) -> bytes:
        return self.data

    def getheaders(self) -> dict:
        return {}


class Server:
    """Records every request; answers with what ``answer`` says (default: echoes the body)."""

    def __init__(self, answer=None):
        self.requests: list[tuple[str, str, object]] = []
        self.answer = answer or (lambda method, path, body: None)

    def param_serialize(self, method, resource_path, query_params, header_params, body, **_):
        query = "&".join(f"{k}={v}" for k, v in query_params)
        return method, resource_path + (f"?{query}" if query else ""), header_params, body, None

    def call_api(self, method, url, header_params=None, body=None):
        decoded = json.loads(body) if isinstance(body, bytes | str) else body
        self.requests.append((method, url, decoded))
        answer = self.answer(method, url, decoded)
        if answer is not None:
            return answer
        if method == "PATCH" and isinstance(decoded, dict) and "metadata" in decoded:
            stored = json.loads(json.dumps(decoded))
            stored["metadata"].update(uid=f"uid-{stored['metadata']['name']}", resourceVersion="1")
            return Response(200, stored)
        if method == "GET":
            return Response(200, {"items": []})
        return Response(200, {})

    def paths(self, method: str) -> list[str]:
        return [url for m, url, _ in self.requests if m == method]


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


def reconcile(server: Server, body: dict, observed: Observed | None = None):
    reconciler = Reconciler(KubeCluster(server), OperatorConfig())
    return reconciler.reconcile_fine_tuning(
        body, Related(observed or Observed(), refs={"ModelTemplate": template(), "Model": None})
    )


def status_patches(server: Server) -> list[dict]:
    return [b["status"] for m, url, b in server.requests if m == "PATCH" and url == STATUS]


def ready_of(status: dict) -> dict:
    return next(c for c in status["conditions"] if c["type"] == "Ready")


def test_the_job_is_marked_in_the_status_before_it_is_created():
    server = Server()
    reconcile(server, ftj())
    order = [(m, url.split("?")[0]) for m, url, _ in server.requests if m == "PATCH"]
    mark = order.index(("PATCH", STATUS))
    create = order.index(("PATCH", f"{JOBS}/tune"))
    assert mark < create, order
    mark = status_patches(server)[0]
    assert mark["jobName"] == "tune" and mark["phase"] == "Pending"
    assert ready_of(mark)["reason"] == "CreatingJob"
    assert status_patches(server)[-1]["phase"] == "Pending"
    # One request more than before per run, once: the mark. No Event is read for a Job just
    # created (its pods come with the next watch events).
    assert not [url for url in server.paths("GET") if "/events" in url]


def test_a_refused_create_takes_the_mark_back():
    def refuse(method, url, body):
        if method == "PATCH" and url.startswith(f"{JOBS}/tune"):
            return Response(403, {"message": 'jobs.batch "tune" is forbidden: exceeded quota'})
        return None

    server = Server(refuse)
    outcome = reconcile(server, ftj())
    first, last = status_patches(server)[0], status_patches(server)[-1]
    assert first["jobName"] == "tune"
    assert last["jobName"] is None and last["phase"] == "Pending"
    assert ready_of(last)["reason"] == "ApplyFailed"
    assert outcome.retry is not None  # tried again on the refused backoff


def test_a_marked_run_without_its_job_fails_and_creates_nothing():
    server = Server()
    marked = {"phase": "Running", "jobName": "tune", "startTime": "2026-01-01T00:00:00Z"}
    reconcile(server, ftj(marked))
    assert f"{JOBS}?fieldSelector=metadata.name=tune" in server.paths("GET")
    assert not [url for url in server.paths("PATCH") if url.startswith(JOBS)]
    [status] = status_patches(server)
    assert status["phase"] == "Failed" and "not restarted by itself" in status["message"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "JobLost"
    assert status["completionTime"]
    # Finished: the next reconcile changes nothing and asks nothing.
    server.requests.clear()
    reconcile(server, ftj({**marked, **status}))
    assert not [r for r in server.requests if r[0] != "POST"]


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

    def found(method, url, body):
        if method == "GET" and url.startswith(JOBS):
            return Response(200, {"items": [job]})
        return None

    server = Server(found)
    reconcile(server, ftj({"phase": "Pending", "jobName": "tune"}))
    assert not [url for url in server.paths("PATCH") if url.startswith(JOBS)]
    assert all(s.get("phase") != "Failed" for s in status_patches(server))


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
    server = Server()
    reconcile(server, ftj(status("True", "ApplyFailed")))
    assert f"{JOBS}/tune" in [url.split("?")[0] for url in server.paths("PATCH")]


def test_a_create_that_failed_transiently_takes_the_mark_back_only_if_no_job_exists():
    def throttled(method, url, body):
        if method == "PATCH" and url.startswith(f"{JOBS}/tune"):
            return Response(429, {"message": "too many requests"})
        return None

    server = Server(throttled)
    with pytest.raises(ApiException):
        reconcile(server, ftj())  # the runtime retries it
    first, last = status_patches(server)[0], status_patches(server)[-1]
    assert first["jobName"] == "tune" and last["jobName"] is None
    assert f"{JOBS}?fieldSelector=metadata.name=tune" in server.paths("GET")

    job = {"metadata": {"name": "tune", "ownerReferences": [{"uid": "j-uid"}]}}

    def lost_answer(method, url, body):
        if method == "PATCH" and url.startswith(f"{JOBS}/tune"):
            return Response(504, {"message": "the request did not complete in time"})
        if method == "GET" and url.startswith(JOBS):
            return Response(200, {"items": [job]})  # it was created after all
        return None

    server = Server(lost_answer)
    with pytest.raises(ApiException):
        reconcile(server, ftj())
    [mark] = status_patches(server)
    assert mark["jobName"] == "tune"  # stays: a Job exists
