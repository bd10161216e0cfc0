"""The reconciler's I/O: each :class:`KubeCluster` call is the one REST request it stands for
(against a recording stand-in for the client's connection), and the recording cluster of the
decision tests offers exactly the calls of the :class:`Cluster` protocol."""

from __future__ import annotations

import inspect
import json

import pytest
from kubernetes.client.exceptions import ApiException
from support.fake_cluster import FakeCluster

from modeltemplate_operator.api import kinds
from modeltemplate_operator.controller.cluster import Cluster, KubeCluster

pytestmark = pytest.mark.unit


class Response:
    def __init__(self, status: int, body: object):
        self.status, self.reason, self.data = status, "", json.dumps(body).encode()
        self.headers: dict = {}

    def read(self) -> bytes:
        return self.data

    def getheaders(self) -> dict:
        return {}


class Client:
    """The part of the kubernetes ApiClient that ``kube.request`` uses; records each request
    as (method, path?query, content type, decoded body) and answers ``status`` with ``{}``."""

    def __init__(self, status: int = 200):
        self.status = status
        self.requests: list[tuple[str, str, str, object]] = []

    def param_serialize(self, method, resource_path, query_params, header_params, body, **_):
        query = "&".join(f"{k}={v}" for k, v in query_params)
        return method, resource_path + (f"?{query}" if query else ""), header_params, body, None

    def call_api(self, method, url, header_params=None, body=None):
        decoded = json.loads(body) if isinstance(body, bytes | str) else body
        self.requests.append((method, url, header_params["Content-Type"], decoded))
        return Response(self.status, {"items": [{"kind": "Job"}]} if method == "GET" else {})


DEPLOYMENT = kinds.DEPLOYMENT.object({"name": "llm", "namespace": "team"}, {"replicas": 1})
D_PATH = "/apis/apps/v1/namespaces/team/deployments/llm"
JSON, MERGE, APPLY = (
    "application/json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
)


@pytest.mark.parametrize(
    "call, sent",
    [
        (
            lambda c: c.apply(DEPLOYMENT),
            (
                "PATCH",
                f"{D_PATH}?fieldManager=modeltemplate-operator&force=true",
                APPLY,
                DEPLOYMENT,
            ),
        ),
        (
            lambda c: c.replace_lists(DEPLOYMENT),
            (
                "PATCH",
                f"{D_PATH}?fieldManager=modeltemplate-operator",
                MERGE,
                {"spec": DEPLOYMENT["spec"]},
            ),
        ),
        (
            lambda c: c.delete(DEPLOYMENT),
            ("DELETE", D_PATH, JSON, {"propagationPolicy": "Background"}),
        ),
        (
            lambda c: c.get(kinds.CONFIG_MAP, "team", "data"),
            ("GET", "/api/v1/namespaces/team/configmaps/data", JSON, None),
        ),
        (
            lambda c: c.list(kinds.JOB, "team", "metadata.name=tune"),
            (
                "GET",
                "/apis/batch/v1/namespaces/team/jobs?fieldSelector=metadata.name=tune",
                JSON,
                None,
            ),
        ),
        (
            lambda c: c.create(kinds.MODEL, "team", {"metadata": {"name": "m"}}),
            (
                "POST",
                "/apis/launch.modelops.dev/v1alpha1/namespaces/team/models",
                JSON,
                {"metadata": {"name": "m"}},
            ),
        ),
        (
            lambda c: c.patch_status(kinds.MODEL_TEMPLATE, "team", "llm", {"phase": None}),
            (
                "PATCH",
                "/apis/launch.modelops.dev/v1alpha1/namespaces/team/modeltemplates/llm/status",
                MERGE,
                {"status": {"phase": None}},
            ),
        ),
        (
            lambda c: c.post_event("team", {"reason": "Ready"}),
            ("POST", "/api/v1/namespaces/team/events", JSON, {"reason": "Ready"}),
        ),
    ],
    ids=["apply", "replace_lists", "delete", "get", "list", "create", "patch_status", "post_event"],
)
def test_each_call_is_one_request(call, sent):
    client = Client()
    call(KubeCluster(client))
    assert client.requests == [sent]


def test_list_answers_the_items():
    assert KubeCluster(Client()).list(kinds.JOB, "team", "x=y") == [{"kind": "Job"}]


def test_a_child_already_gone_is_deleted():
    KubeCluster(Client(404)).delete(DEPLOYMENT)
    with pytest.raises(ApiException):
        KubeCluster(Client(403)).delete(DEPLOYMENT)


def test_another_field_manager():
    client = Client()
    KubeCluster(client, field_manager="bench").apply(DEPLOYMENT)
    assert "fieldManager=bench&" in client.requests[0][1]


def _calls(cls: type) -> dict[str, list[str]]:
    return {
        name: list(inspect.signature(member).parameters)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_the_recording_cluster_offers_the_protocol_s_calls():
    protocol = _calls(Cluster)
    assert protocol and _calls(KubeCluster) == protocol
    fake = _calls(FakeCluster)
    assert {name: fake.get(name) for name in protocol} == protocol
