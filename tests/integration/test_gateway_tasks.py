"""The gateway's async task routes (``/v1/async-tasks``) end to end: the gateway and the
operator with a real Redis as broker, the ASYNC sample applied, and its worker side as local
processes (kwok runs no containers): the async forwarder and a stand-in ``main``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from _helpers_deploy import service_account_kubeconfig
from support.gateway import GatewayProcess
from support.k8s import get_json, wait_for
from support.manifests import tiny_template
from support.operator import OperatorProcess
from test_gateway import GATEWAY_NS, GATEWAY_SA, Account

from devtools.ports import free_port
from devtools.redisserver import RedisServer
from modeltemplate_operator.limits import MAX_DECODED_BODY_BYTES, MAX_TASK_PAYLOAD_BYTES
from modeltemplate_operator.tasks import protocol as tasks

REPO = Path(__file__).resolve().parents[2]
SAMPLE = yaml.safe_load((REPO / "deploy" / "samples" / "transcription-async-a10.yaml").read_text())
NAME = SAMPLE["metadata"]["name"]


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(directory=str(tmp_path_factory.mktemp("redis"))).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def operator(cluster, cluster_prereqs, redis_server):
    log = REPO / "test-artifacts" / "operator-test_gateway_tasks.log"
    log.unlink(missing_ok=True)
    proc = OperatorProcess(
        Path(cluster.kubeconfig), log, env={"MODELTEMPLATE_BROKER_URL": redis_server.url}
    ).start()
    proc.wait_for_log(lambda text: "Activity 'startup' succeeded" in text, timeout=60)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def gateway(cluster, crd_installed, operator, redis_server, tmp_path_factory):
    for name in ("namespace.yaml", "gateway-rbac.yaml", "user-roles.yaml"):
        cluster.kubectl("apply", "--server-side", "-f", str(REPO / "deploy" / "base" / name))
    work = tmp_path_factory.mktemp("gateway")
    kubeconfig = service_account_kubeconfig(
        cluster, work / "kubeconfig", service_account=GATEWAY_SA, namespace=GATEWAY_NS
    )
    log = REPO / "test-artifacts" / "gateway-tasks.log"
    log.unlink(missing_ok=True)
    proc = GatewayProcess(
        kubeconfig, log, "--access-ttl=2", f"--broker-url={redis_server.url}"
    ).start()
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def accounts(cluster):
    made = [Account(cluster, f"gt-{uuid.uuid4().hex[:6]}") for _ in range(2)]
    yield made
    for acc in made:
        cluster.kubectl("delete", "namespace", acc.name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def worker(accounts, redis_server, tmp_path_factory):
    """The endpoint's pod, as local processes: stand-in main + forwarder --mode async."""
    namespace = accounts[0].name
    main_port, fwd_port = free_port(), free_port()
    logs = tmp_path_factory.mktemp("worker")
    main = subprocess.Popen(
        [sys.executable, "-m", "devtools.standin_main", f"--port={main_port}"], cwd=REPO
    )
    fwd = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modeltemplate_operator.forwarder",
            "--mode=async",
            f"--port={fwd_port}",
            f"--upstream=http://127.0.0.1:{main_port}",
            f"--broker-url={redis_server.url}",
            f"--queue={tasks.queue_name(namespace, NAME)}",
            "--per-worker=2",
        ],
        cwd=REPO,
        stderr=open(logs / "forwarder.log", "wb"),  # noqa: SIM115
    )
    yield
    for proc in (fwd, main):
        proc.terminate()
        proc.wait(30)


def call(gateway, method, path, key=None, **kw):
    headers = {"x-api-key": key} if key else {}
    return httpx.request(method, gateway.base_url + path, headers=headers, timeout=10, **kw)


def test_submit_and_poll_a_task_through_the_gateway(cluster, gateway, accounts, worker):
    acc, other = accounts
    cluster.kubectl("apply", "-n", acc.name, "-f", "-", input=json.dumps(SAMPLE))
    cluster.kubectl("apply", "-n", acc.name, "-f", "-", input=json.dumps(tiny_template("sync")))
    uid = get_json(cluster, "mt", NAME, "-n", acc.name)["metadata"]["uid"]
    wait_for(
        lambda: (
            call(gateway, "GET", f"/v4/model-templates/{uid}", acc.keys["reader"]).status_code
            == 200
        ),
        what="the gateway's cache to hold the template",
    )
    key = acc.keys["editor"]
    ids = {}
    for endpoint in (f"{acc.name}/{NAME}", uid):
        resp = call(
            gateway,
            "POST",
            "/v1/async-tasks",
            key,
            params={"model_endpoint_id": endpoint},
            json={"args": {"n": endpoint, "audio": "s3://bucket/a.wav"}},
        )
        assert resp.status_code == 200, resp.text
        ids[endpoint] = resp.json()["task_id"]
    for endpoint, task_id in ids.items():
        deadline = time.monotonic() + 30
        while True:
            got = call(gateway, "GET", f"/v1/async-tasks/{task_id}", key)
            assert got.status_code == 200, got.text
            body = got.json()
            if body["status"] in ("SUCCESS", "FAILURE") or time.monotonic() > deadline:
                break
            assert body["status"] in ("PENDING", "STARTED")
            time.sleep(0.1)
        assert body == {
            "task_id": task_id,
            "status": "SUCCESS",
            "result": {"echo": {"n": endpoint, "audio": "s3://bucket/a.wav"}},
            "traceback": None,
            "status_code": 200,
            "error": None,
        }
    # a reader of the namespace may read the task; a caller of another namespace may not
    task_id = ids[uid]
    assert call(gateway, "GET", f"/v1/async-tasks/{task_id}", acc.keys["reader"]).status_code == 200
    # ... and finds it as an unknown task (reproduced: 403 naming the account, an oracle)
    denied = call(gateway, "GET", f"/v1/async-tasks/{task_id}", other.keys["editor"])
    unknown = call(gateway, "GET", f"/v1/async-tasks/{'0' * 32}", other.keys["editor"])
    assert denied.status_code == unknown.status_code == 200, denied.text
    assert denied.json()["status"] == unknown.json()["status"] == "UNDEFINED"
    assert acc.name not in denied.text
    refused = call(
        gateway,
        "POST",
        "/v1/async-tasks",
        other.keys["editor"],
        params={"model_endpoint_id": f"{acc.name}/{NAME}"},
        json={"args": {}},
    )
    assert refused.status_code == 404 and acc.name in refused.json()["detail"]  # its own words
    refused = call(
        gateway,
        "POST",
        "/v1/async-tasks",
        other.keys["editor"],
        params={"model_endpoint_id": uid},
        json={"args": {}},
    )
    assert refused.status_code == 404, refused.text


def test_task_route_errors(cluster, gateway, accounts):
    acc = accounts[0]
    key = acc.keys["editor"]
    assert call(gateway, "GET", f"/v1/async-tasks/{'0' * 32}").status_code == 401
    assert (
        call(gateway, "POST", "/v1/async-tasks", "not-a-token", params={"model_endpoint_id": "x"})
    ).status_code == 401
    unknown = call(gateway, "GET", f"/v1/async-tasks/{'0' * 32}", key).json()
    assert unknown["status"] == "UNDEFINED"
    missing = call(
        gateway, "POST", "/v1/async-tasks", key, params={"model_endpoint_id": f"{acc.name}/nope"}
    )
    assert missing.status_code == 404
    no_param = call(gateway, "POST", "/v1/async-tasks", key, json={})
    assert no_param.status_code == 422
    cluster.kubectl(
        "apply", "-n", acc.name, "-f", "-", input=json.dumps(tiny_template("sync-only"))
    )
    wait_for(
        lambda: (
            call(
                gateway,
                "POST",
                "/v1/async-tasks",
                key,
                params={"model_endpoint_id": f"{acc.name}/sync-only"},
                json={},
            ).status_code
            == 422
        ),
        what="a SYNC endpoint refused",
    )
    sync = call(
        gateway,
        "POST",
        "/v1/async-tasks",
        key,
        params={"model_endpoint_id": f"{acc.name}/sync-only"},
        json={},
    ).json()
    assert "is SYNC, not ASYNC" in json.dumps(sync)
    bad = call(
        gateway,
        "POST",
        "/v1/async-tasks",
        key,
        params={"model_endpoint_id": f"{acc.name}/{NAME}"},
        content=b"{not json",
    )
    assert bad.status_code == 422


def test_task_payloads_are_bounded(cluster, gateway, accounts):
    """A payload is read after the key, under MAX_TASK_PAYLOAD_BYTES, its depth checked on the
    text; one over MAX_DECODED_BODY_BYTES is queued as its text, not decoded."""
    acc = accounts[0]
    key = acc.keys["editor"]
    params = {"model_endpoint_id": f"{acc.name}/{NAME}"}
    big = b" " * (MAX_TASK_PAYLOAD_BYTES + 1)
    refused = call(gateway, "POST", "/v1/async-tasks", "not-a-token", params=params, content=big)
    assert refused.status_code == 401  # the key first, whatever the body
    over = call(gateway, "POST", "/v1/async-tasks", key, params=params, content=big)
    assert over.status_code == 413, over.text

    def chunks():
        for _ in range(MAX_TASK_PAYLOAD_BYTES // (1 << 20) + 2):
            yield b" " * (1 << 20)

    assert (
        call(gateway, "POST", "/v1/async-tasks", key, params=params, content=chunks()).status_code
        == 413
    )
    deep = call(
        gateway, "POST", "/v1/async-tasks", key, params=params, content="[" * 1000 + "]" * 1000
    )
    assert deep.status_code == 422 and "nests deeper" in deep.text
    large = json.dumps({"args": {"values": [1.5] * ((MAX_DECODED_BODY_BYTES * 2) // 5)}})
    assert len(large) > MAX_DECODED_BODY_BYTES
    queued = call(gateway, "POST", "/v1/async-tasks", key, params=params, content=large)
    assert queued.status_code == 200 and "task_id" in queued.json(), queued.text
