"""``make demo``: the local control plane, the CRD, the operator, the SGP API gateway and every
sample, then a table and how to call the API.

The operator and the gateway run as background processes of the local cluster (``make
cluster-down`` stops them with the rest); their logs are ``.local-cluster/logs/operator.log``
and ``gateway.log``. The gateway listens on 127.0.0.1:8000 (``MODELTEMPLATE_GATEWAY_PORT``
moves it; a free port is taken when it is busy).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from devtools import endpoints
from devtools.ports import free_port

from . import async_demo
from .cluster import (
    REPO_ROOT,
    ClusterError,
    LocalCluster,
    spawn_module,
    stop_process,
    wait_established,
)

NAMESPACE = "modeltemplate-demo"
SAMPLES = REPO_ROOT / "deploy" / "samples"
MODELS = SAMPLES / "models"
CLUSTER_FILES = [
    REPO_ROOT / "deploy" / "base" / "priorityclasses.yaml",
    REPO_ROOT / "deploy" / "base" / "kopf-peering-crds.yaml",
    REPO_ROOT / "deploy" / "base" / "user-roles.yaml",
]
#: The ServiceAccount whose token the demo's API calls use (bound to modeltemplate-editor).
API_USER = "sgp-user"


def install_crds(cluster: LocalCluster) -> None:
    crds = sorted(f for f in (REPO_ROOT / "crds").glob("*.yaml") if f.name != "kustomization.yaml")
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", *[f"-f={f}" for f in crds + CLUSTER_FILES]
    )
    wait_established(cluster)


def _start(cluster: LocalCluster, pid_file: Path, log_name: str, *args: str) -> int:
    """``python -m ARGS`` against the local cluster; returns its pid. A process left by an
    earlier demo is stopped first (it may run older code or settings). The broker of ASYNC
    endpoints is the demo's Redis (``MODELTEMPLATE_BROKER_URL``)."""
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "MODELTEMPLATE_LOG_FORMAT": "json",
        **async_demo.broker_env(async_demo.start_redis(cluster)),
    }
    return spawn_module(pid_file, cluster.logs / log_name, list(args), env)


def start_operator(cluster: LocalCluster) -> int:
    """The operator against the local cluster, once; returns its pid."""
    return _start(cluster, cluster.operator_pid_file, "operator.log", "modeltemplate_operator")


def _gateway_port() -> int:
    wanted = int(os.environ.get("MODELTEMPLATE_GATEWAY_PORT", "8000"))
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", wanted))
        except OSError:
            return free_port()
        return s.getsockname()[1]


def start_gateway(cluster: LocalCluster) -> str:
    """The SGP API gateway on loopback (a new one); returns its URL when its cache has synced."""
    url_file = cluster.root / "gateway.url"
    if cluster.gateway_pid_file.exists():
        stop_process(int(cluster.gateway_pid_file.read_text()))  # frees its port too
    port = _gateway_port()
    _start(
        cluster,
        cluster.gateway_pid_file,
        "gateway.log",
        "modeltemplate_operator.gateway",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--endpoint-addresses={cluster.root / 'endpoints.json'}",
    )
    url = f"http://127.0.0.1:{port}"
    url_file.write_text(url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                return url
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise ClusterError(f"the gateway did not answer on {url} (log: {cluster.logs / 'gateway.log'})")


def add_api_user(cluster: LocalCluster) -> None:
    """A ServiceAccount allowed to use templates in the demo namespace (its tokens are keys)."""
    for args in (
        ("create", "serviceaccount", API_USER, "-n", NAMESPACE),
        (
            "create",
            "rolebinding",
            API_USER,
            "-n",
            NAMESPACE,
            "--clusterrole=modeltemplate-editor",
            f"--serviceaccount={NAMESPACE}:{API_USER}",
        ),
    ):
        cluster.kubectl(*args, check=False)  # already there on a second run


def api_check(cluster: LocalCluster, gateway: str) -> str:
    """One list call through the gateway with a fresh key of the demo's API user."""
    key = cluster.kubectl("create", "token", API_USER, "-n", NAMESPACE).stdout.strip()
    request = urllib.request.Request(
        f"{gateway}/v4/model-templates?limit=100",
        headers={"x-api-key": key, "x-selected-account-id": NAMESPACE},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        page = json.loads(response.read())
    names = ", ".join(t["name"] for t in page["items"])
    return f"GET {gateway}/v4/model-templates: {page['total_item_count']} templates ({names})"


def _samples() -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted(SAMPLES.glob("*.yaml"))]


def _sample_models() -> list[dict]:
    return [d for p in sorted(MODELS.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())]


def wait_for_samples(cluster: LocalCluster, timeout: float = 180) -> None:
    names = [f"modeltemplate/{s['metadata']['name']}" for s in _samples()]
    names += [f"model/{m['metadata']['name']}" for m in _sample_models()]
    deadline = time.monotonic() + timeout
    for name in names:
        left = max(1, int(deadline - time.monotonic()))
        cluster.kubectl(
            "wait",
            "-n",
            NAMESPACE,
            "--for=condition=Ready",
            f"--timeout={left}s",
            name,
            timeout=left + 10,
        )


def _items(cluster: LocalCluster, resource: str) -> list[dict]:
    out = cluster.kubectl("get", resource, "-n", NAMESPACE, "-o", "json").stdout
    return json.loads(out)["items"]


def table(cluster: LocalCluster) -> str:
    templates = _items(cluster, "modeltemplates")
    by_name = {t["metadata"]["name"]: t for t in templates}
    pods = _items(cluster, "pods")
    rows = [("NAME", "KIND", "TYPE", "GPU", "READY", "REASON", "WORKERS ON NODES")]
    for obj in [*templates, *_items(cluster, "models")]:
        name, kind = obj["metadata"]["name"], obj["kind"]
        template = (
            obj if kind == "ModelTemplate" else by_name.get(obj["spec"]["templateRef"]["name"])
        )
        spec = (template or {}).get("spec") or {}
        ec = (spec.get("vendorConfiguration") or {}).get("endpointConfig") or {}
        gpu = f"{ec.get('gpuType')} x{ec.get('gpus')}" if ec.get("gpus") else "cpu only"
        ready = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}.get(
            "Ready"
        ) or {}
        nodes = sorted(
            p["spec"].get("nodeName") or "(pending)"
            for p in pods
            if p["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == name
            and p["metadata"]["labels"].get("app.kubernetes.io/name") == kind.lower()
        )
        rows.append(
            (
                name,
                kind,
                spec.get("endpointType", "?"),
                gpu,
                ready.get("status", "?"),
                ready.get("reason", ""),
                ", ".join(nodes) or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def async_check(cluster: LocalCluster, gateway: str) -> list[str]:
    """The async sample's worker as local processes, and one task through the gateway."""
    sample = next(s for s in _samples() if s["spec"]["endpointType"] == "ASYNC")
    broker = async_demo.start_redis(cluster)
    async_demo.start_worker(cluster, broker, NAMESPACE, sample)
    key = cluster.kubectl("create", "token", API_USER, "-n", NAMESPACE).stdout.strip()
    endpoint = f"{NAMESPACE}/{sample['metadata']['name']}"
    lines = [
        f"ASYNC: broker {broker}; {sample['metadata']['name']}'s worker runs as local processes "
        f"(forwarder --mode async + a stand-in main; logs {cluster.logs}/async-*.log)"
    ]
    return lines + async_demo.submit_and_wait(gateway, key, endpoint)


def _model_id(cluster: LocalCluster, name: str) -> str:
    found = cluster.kubectl("get", "mdl", name, "-n", NAMESPACE, "-o", "json")
    return json.loads(found.stdout)["metadata"]["uid"]


def _serve(cluster: LocalCluster, name: str, protocol: str, addresses: dict) -> None:
    """A stand-in model and the endpoint's forwarder (its rendered flags) as local processes."""
    standin, upstream = endpoints.start_standin(
        protocol, log=cluster.logs / f"serving-{name}-model.log"
    )
    (cluster.root / f"serving-{name}-model.pid").write_text(str(standin.pid))
    forwarder, url = endpoints.start_forwarder(
        cluster, NAMESPACE, name, upstream, log=cluster.logs / f"serving-{name}.log"
    )
    (cluster.root / f"serving-{name}.pid").write_text(str(forwarder.pid))
    addresses[f"{NAMESPACE}/{name}"] = url
    endpoints.write_addresses(cluster.root / "endpoints.json", addresses)


def serving_check(cluster: LocalCluster, gateway: str) -> list[str]:
    """A model made through SGP's API and called through it, with SGP's client: a chat
    completion and a stream on the vLLM sample Model, embeddings on a Model made now from the
    embedding sample template. The endpoints' pods run nothing on the fake nodes, so each runs
    as local processes: its forwarder with the rendered flags and a stand-in model."""
    from scale_gp import SGPClient

    key = cluster.kubectl("create", "token", API_USER, "-n", NAMESPACE).stdout.strip()
    client = SGPClient(base_url=gateway, api_key=key, account_id=NAMESPACE, timeout=60)
    template = next(t for t in client.model_templates.list() if t.name == "bge-base-embeddings-t4")
    if not any(m.name == "bge-base-demo" for m in client.models.list()):
        client.models.create(
            account_id=NAMESPACE,
            name="bge-base-demo",
            model_type="EMBEDDING",
            model_template_id=template.id,
        )
    endpoints.wait_ready(cluster, NAMESPACE, "mdl/bge-base-demo")
    addresses: dict[str, str] = {}
    _serve(cluster, "llama-3-1-8b-instruct", "VLLM", addresses)
    _serve(cluster, "bge-base-demo", "SGP", addresses)
    time.sleep(1)  # the gateway reads the addresses file again (twice a second)
    chat = _model_id(cluster, "llama-3-1-8b-instruct")
    answer = client.models.chat_completions.create(chat, chat_history=[], prompt="Hello there")
    streamed = "".join(
        c.completions[0][1][0]
        for c in client.models.chat_completions.create(
            chat, chat_history=[], prompt="Stream me a few words", stream=True
        )
    )
    vectors = client.models.embeddings.create(_model_id(cluster, "bge-base-demo"), texts=["hi"])
    return [
        "Serving through SGP's API (the endpoints' forwarders and stand-in models run as local "
        f"processes; logs {cluster.logs}/serving-*.log):",
        f"  chat completion  llama-3-1-8b-instruct: {answer.completions[0][1][0]!r}",
        f"  stream           llama-3-1-8b-instruct: {streamed!r}",
        f"  embeddings       bge-base-demo (made through the API): {vectors.embeddings[0]!r}",
    ]


def run(cluster: LocalCluster) -> int:
    cluster.up()
    print(f"local control plane: {cluster.server}")
    print(f"task queue broker (redis-server): {async_demo.start_redis(cluster)}")
    install_crds(cluster)
    pid = start_operator(cluster)
    print(f"operator running (pid {pid}, log {cluster.logs / 'operator.log'})")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(namespace))
    add_api_user(cluster)
    gateway = start_gateway(cluster)
    print(f"SGP API gateway at {gateway} (log {cluster.logs / 'gateway.log'})")
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", str(SAMPLES))
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", str(MODELS))
    print(
        f"applied {len(_samples())} sample ModelTemplates and {len(_sample_models())} Models made "
        f"from them to namespace {NAMESPACE}; waiting for Ready ..."
    )
    try:
        wait_for_samples(cluster)
    except ClusterError as err:
        print(f"not every sample became Ready: {err}", file=sys.stderr)
        print(table(cluster))
        return 1
    print()
    print(table(cluster))
    print(f"\n{api_check(cluster, gateway)}")
    print()
    print("\n".join(async_check(cluster, gateway)))
    print()
    print("\n".join(serving_check(cluster, gateway)))
    print(f"""
Explore:
  export KUBECONFIG={cluster.kubeconfig}
  kubectl get modeltemplates,models -n {NAMESPACE}
  kubectl describe model -n {NAMESPACE} llama-3-1-8b-instruct
  kubectl describe modeltemplate -n {NAMESPACE} llama-3-1-8b-instruct-vllm
  kubectl get deploy,svc,hpa,pdb,job,pods -n {NAMESPACE} -o wide
The SGP API (account = namespace, API key = a Kubernetes token; docs at {gateway}/docs):
  export SGP_API_KEY=$(kubectl create token {API_USER} -n {NAMESPACE}) SGP_ACCOUNT_ID={NAMESPACE}
  curl -s -H "x-api-key: $SGP_API_KEY" -H "x-selected-account-id: $SGP_ACCOUNT_ID" \\
    '{gateway}/v4/model-templates?limit=2'
  curl -s -H "x-api-key: $SGP_API_KEY" -X POST -d '{{"args": {{"audio_url": "s3://b/a.wav"}}}}' \\
    '{gateway}/v1/async-tasks?model_endpoint_id={NAMESPACE}/whisper-large-v3-async'
  .venv/bin/python -c 'from scale_gp import SGPClient
  for t in SGPClient(base_url="{gateway}").model_templates.list(): print(t.id, t.name)'
Clean up:
  kubectl delete namespace {NAMESPACE}   # templates and every child they own
  make cluster-down{" " * (len(NAMESPACE) + 11)}# the gateway, the operator, Redis, the control plane""")
    return 0
