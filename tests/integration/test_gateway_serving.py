"""Inference through SGP's API, with real processes end to end: SGP's official client (strict)
→ the gateway → a real forwarder process started with the flags the operator rendered for the
endpoint → a stand-in model server speaking the template's protocol (SGP, VLLM, COHERE).

kwok's pods run nothing, so each endpoint's forwarder runs here as a local process and the
gateway is told where with its ``--endpoint-addresses`` file (the one seam; a cluster uses the
Service's DNS name)."""

from __future__ import annotations

import copy
import json
import subprocess
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import scale_gp
from _helpers_deploy import service_account_kubeconfig
from support.gateway import GatewayProcess
from support.k8s import apply_list, get_json
from support.manifests import tiny_template
from test_gateway import ACCESS_TTL, GATEWAY_NS, GATEWAY_SA, REPO, Account

from devtools.endpoints import start_forwarder, start_standin, stop, wait_ready, write_addresses

pytestmark = pytest.mark.integration

REQUEST_SCHEMA = {"parameters": [{"name": "temperature_scale", "type": "float", "required": False}]}
#: (endpoint name, protocol, model type, endpoint type)
ENDPOINTS = [
    ("sgp-chat", "SGP", "CHAT_COMPLETION", "STREAMING"),
    ("vllm-chat", "VLLM", "CHAT_COMPLETION", "STREAMING"),
    ("vllm-embed", "VLLM", "EMBEDDING", "SYNC"),
    ("vllm-rerank", "VLLM", "RERANKING", "SYNC"),
    ("cohere-chat", "COHERE", "CHAT_COMPLETION", "STREAMING"),
    ("cohere-embed", "COHERE", "EMBEDDING", "SYNC"),
    ("cohere-rerank", "COHERE", "RERANKING", "SYNC"),
]


def _template(name: str, protocol: str, model_type: str, endpoint_type: str) -> dict:
    doc = tiny_template(f"{name}-t", endpoint_type)
    doc["spec"]["endpointProtocol"] = protocol
    doc["spec"]["modelType"] = model_type
    doc["spec"]["modelRequestParametersSchema"] = REQUEST_SCHEMA
    if endpoint_type == "STREAMING":
        bundle = doc["spec"]["vendorConfiguration"]["bundleConfig"]
        bundle["command"] = ["serve"]
        bundle["streamingCommand"] = ["serve", "--stream"]
    return doc


def _model(name: str) -> dict:
    return {
        "apiVersion": "launch.modelops.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {"templateRef": {"name": f"{name}-t"}},
    }


@pytest.fixture(scope="module")
def served(cluster, crd_installed, operator, tmp_path_factory):
    """The account, its Models Ready on the fake fleet, a stand-in per protocol, a forwarder per
    endpoint with its rendered flags, and a gateway that knows where they are."""
    for name in ("namespace.yaml", "gateway-rbac.yaml", "user-roles.yaml"):
        cluster.kubectl("apply", "--server-side", "-f", str(REPO / "deploy" / "base" / name))
    account = Account(cluster, "gw-serving")
    apply_list(cluster, account.name, [_template(*e) for e in ENDPOINTS])
    apply_list(cluster, account.name, [_model(e[0]) for e in ENDPOINTS])
    wait_ready(cluster, account.name, *(f"mdl/{e[0]}" for e in ENDPOINTS))
    procs: list[subprocess.Popen] = []
    addresses: dict[str, str] = {}
    standins: dict[str, str] = {}
    try:
        for protocol in ("SGP", "VLLM", "COHERE"):
            proc, standins[protocol] = start_standin(protocol)
            procs.append(proc)
        for name, protocol, *_ in ENDPOINTS:
            proc, url = start_forwarder(cluster, account.name, name, standins[protocol])
            procs.append(proc)
            addresses[f"{account.name}/{name}"] = url
        work = tmp_path_factory.mktemp("gateway-serving")
        table = work / "endpoints.json"
        write_addresses(table, addresses)
        kubeconfig = service_account_kubeconfig(
            cluster, work / "kubeconfig", service_account=GATEWAY_SA, namespace=GATEWAY_NS
        )
        gateway = GatewayProcess(
            kubeconfig,
            REPO / "test-artifacts" / "gateway-serving.log",
            f"--access-ttl={ACCESS_TTL}",
            f"--endpoint-addresses={table}",
        ).start()
        try:
            ids = {
                name: get_json(cluster, "mdl", name, "-n", account.name)["metadata"]["uid"]
                for name, *_ in ENDPOINTS
            }
            yield gateway.wait_ready(), account, ids, standins
        finally:
            gateway.stop()
    finally:
        stop(procs)
        cluster.kubectl("delete", "namespace", account.name, "--wait=false", check=False)


@pytest.mark.parametrize("protocol", ["SGP", "VLLM", "COHERE"])
def test_chat_completion_and_its_stream(served, protocol):
    gateway, account, ids, _ = served
    client = account.client(gateway)
    chat = ids[f"{protocol.lower()}-chat"]
    history = [{"role": "system", "content": "be brief"}]
    answer = client.models.chat_completions.create(
        chat, chat_history=history, prompt="hello there", max_tokens=8
    )
    assert isinstance(answer, scale_gp.types.CompletionResponse)
    assert answer.completions == [["hello there", ["echo: hello there"]]]
    chunks = list(
        client.models.chat_completions.create(chat, chat_history=[], prompt="a b c", stream=True)
    )
    assert len(chunks) >= 3 and all(
        isinstance(c, scale_gp.types.CompletionResponse) for c in chunks
    )
    text = "".join(c.completions[0][1][0] for c in chunks)
    assert text.split() == ["echo:", "a", "b", "c"], text


@pytest.mark.parametrize("protocol", ["VLLM", "COHERE"])
def test_completion_embeddings_rerankings(served, protocol):
    gateway, account, ids, _ = served
    client = account.client(gateway)
    p = protocol.lower()
    done = client.models.completions.create(ids[f"{p}-chat"], prompt="once upon")
    assert done.completions == [["once upon", ["echo: once upon"]]]
    vectors = client.models.embeddings.create(ids[f"{p}-embed"], texts=["ab", "abcd"])
    assert isinstance(vectors, scale_gp.types.EmbeddingResponse)
    assert vectors.embeddings == [["ab", [2.0, 1.0, 0.0]], ["abcd", [4.0, 1.0, 0.0]]]
    ranked = client.models.rerankings.create(
        ids[f"{p}-rerank"], query="red apple", chunks=["green pear", "red apple pie", "red car"]
    )
    assert isinstance(ranked, scale_gp.types.RerankingResponse)
    assert ranked.chunk_scores == [0.0, 1.0, 0.5]


def test_wrong_calls_and_parameters_are_named(served):
    gateway, account, ids, _ = served
    client = account.client(gateway)
    with pytest.raises(scale_gp.UnprocessableEntityError) as caught:
        client.models.embeddings.create(ids["vllm-chat"], texts=["x"])  # a chat model
    assert "serves no embeddings" in str(caught.value.body)
    with pytest.raises(scale_gp.UnprocessableEntityError) as caught:
        client.models.chat_completions.create(
            ids["vllm-chat"],
            chat_history=[],
            prompt="x",
            model_request_parameters={"bindings": {"temperature_scale": "hot"}},
        )
    [problem] = caught.value.body["detail"]
    assert problem["loc"] == ["body", "model_request_parameters", "temperature_scale"], problem
    # another account's key: the deployment does not exist for it
    other = Account.__new__(Account)
    other.name, other.keys = account.name, {"editor": "not-a-token"}
    with pytest.raises(scale_gp.AuthenticationError):
        other.client(gateway).models.embeddings.create(ids["vllm-embed"], texts=["x"])
    with pytest.raises(scale_gp.NotFoundError):
        client.models.embeddings.create("no-such-deployment", texts=["x"])


def test_execute_and_launch_tasks(served):
    gateway, account, ids, _ = served
    client = account.client(gateway)
    sgp = ids["sgp-chat"]
    result = client.models.deployments.execute(
        sgp, model_instance_id=sgp, extra_body={"args": {"x": 1}}
    )
    assert result == {"echo": {"args": {"x": 1}}}
    headers = {"x-api-key": account.keys["editor"]}
    with httpx.Client(base_url=gateway.base_url, headers=headers, timeout=30) as http:
        sync = http.post(
            "/v1/sync-tasks",
            params={"model_endpoint_id": f"{account.name}/sgp-chat"},
            json={"args": {"y": 2}},
        )
        assert sync.status_code == 200, sync.text
        assert sync.json() == {
            "status": "SUCCESS",
            "result": {"echo": {"args": {"y": 2}}},
            "traceback": None,
            "status_code": 200,
        }
        with http.stream(
            "POST",
            "/v1/streaming-tasks",
            params={"model_endpoint_id": f"{account.name}/sgp-chat"},
            json={"args": {}},
        ) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = [
                json.loads(line[5:]) for line in stream.iter_lines() if line.startswith("data:")
            ]
        assert [e["result"] for e in events] == [{"token": 0}, {"token": 1}, {"token": 2}]
        assert all(e["status"] == "SUCCESS" for e in events)


def test_a_stream_the_client_leaves_is_cut_upstream(served):
    gateway, account, ids, standins = served
    before = json.loads(urllib.request.urlopen(standins["VLLM"] + "/stats").read())["streams_cut"]
    long_prompt = " ".join(["word"] * 400)  # 400 events, 10 ms apart at the stand-in
    headers = {"x-api-key": account.keys["editor"]}
    with httpx.Client(base_url=gateway.base_url, headers=headers, timeout=30) as http:
        with http.stream(
            "POST",
            f"/v4/models/{ids['vllm-chat']}/chat-completions",
            json={"chat_history": [], "prompt": long_prompt, "stream": True},
        ) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    break  # the first event arrived; leave
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stats = json.loads(urllib.request.urlopen(standins["VLLM"] + "/stats").read())
        if stats["streams_cut"] > before:
            break
        time.sleep(0.2)
    assert stats["streams_cut"] > before, stats


def test_a_not_ready_endpoint_answers_503_with_its_reason(cluster, served):
    gateway, account, ids, _ = served
    doc = copy.deepcopy(_template("late", "VLLM", "EMBEDDING", "SYNC"))
    doc["spec"]["vendorConfiguration"]["endpointConfig"]["gpuType"] = "nvidia-ampere-a100e"
    doc["spec"]["vendorConfiguration"]["endpointConfig"]["gpus"] = 64  # no node has 64 GPUs
    apply_list(cluster, account.name, [doc, _model("late")])
    uid = get_json(cluster, "mdl", "late", "-n", account.name)["metadata"]["uid"]
    client = account.client(gateway, max_retries=0)
    with pytest.raises(scale_gp.APIStatusError) as caught:
        client.models.embeddings.create(uid, texts=["x"])
    assert caught.value.status_code == 503
    assert "is not ready" in str(caught.value.body)


def test_usage_statistics_count_what_was_served(served):
    gateway, account, ids, _ = served
    client = account.client(gateway)
    now = datetime.now(UTC)
    window = {"start_date": now - timedelta(hours=1), "end_date": now + timedelta(hours=1)}
    before = client.models.usage_statistics.retrieve("vllm-chat", chunks=2, **window)
    answer = client.models.chat_completions.create(
        ids["vllm-chat"], chat_history=[], prompt="count these words"
    )
    after = client.models.usage_statistics.retrieve("vllm-chat", chunks=2, **window)
    assert isinstance(after, scale_gp.types.shared.ModelUsage) and len(after.data) == 2
    grown = sum(p.summary_tokens for p in after.data) - sum(p.summary_tokens for p in before.data)
    assert grown == answer.prompt_tokens + answer.response_tokens > 0
    embedded = client.models.deployments.usage_statistics.retrieve(
        ids["vllm-embed"], chunks=1, **window
    )
    assert embedded.data[0].prompt_tokens >= 2  # the embeddings of the earlier test
    metrics = httpx.get(f"{gateway.base_url}/metrics").text
    assert "modeltemplate_gateway_inference_requests_total{" in metrics
    assert f'endpoint="vllm-chat",namespace="{account.name}"' in metrics
    with pytest.raises(scale_gp.NotFoundError):
        client.models.usage_statistics.retrieve("no-such-model", chunks=1, **window)
