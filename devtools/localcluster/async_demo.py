"""The ASYNC part of ``make demo``: a real ``redis-server`` as the task queue broker (the
operator and the gateway are pointed at it), the async sample's worker as local processes (kwok
runs no containers: the forwarder in ``--mode async`` and a stand-in ``main``), and one task
submitted through the gateway and polled until its result."""

from __future__ import annotations

import json
import time
import urllib.request

from devtools.ports import free_port
from devtools.redisserver import RedisServer
from modeltemplate_operator.tasks import protocol as tasks

from .cluster import ClusterError, LocalCluster, pid_alive, spawn_module


def start_redis(cluster: LocalCluster) -> str:
    """The demo's broker, once; returns its URL (``.local-cluster/.../redis.url``)."""
    pid_file, url_file = cluster.root / "redis.pid", cluster.root / "redis.url"
    if pid_file.exists() and url_file.exists() and pid_alive(int(pid_file.read_text())):
        return url_file.read_text()
    server = RedisServer(directory=str(cluster.root / "redis"), detach=True).start()
    assert server.proc is not None
    pid_file.write_text(str(server.proc.pid))
    url_file.write_text(server.url)
    return server.url


def _spawn(cluster: LocalCluster, name: str, args: list[str]) -> int:
    return spawn_module(cluster.root / f"{name}.pid", cluster.logs / f"{name}.log", args)


def start_worker(cluster: LocalCluster, broker_url: str, namespace: str, sample: dict) -> None:
    """What the async sample's pod runs, as local processes against the demo's broker."""
    bundle = sample["spec"]["vendorConfiguration"]["bundleConfig"]
    ec = sample["spec"]["vendorConfiguration"]["endpointConfig"]
    route = bundle.get("predictRoute", "/predict")
    main_port_file = cluster.root / "async-main.port"
    if not (main_port_file.exists() and (cluster.root / "async-main.pid").exists()):
        main_port_file.write_text(str(free_port()))
    main_port = int(main_port_file.read_text())
    _spawn(
        cluster,
        "async-main",
        ["devtools.standin_main", f"--port={main_port}", f"--predict-route={route}", "--delay=0.2"],
    )
    _spawn(
        cluster,
        "async-forwarder",
        [
            "modeltemplate_operator.forwarder",
            "--mode=async",
            f"--port={free_port()}",
            f"--upstream=http://127.0.0.1:{main_port}",
            f"--predict-route={route}",
            f"--broker-url={broker_url}",
            f"--queue={tasks.queue_name(namespace, sample['metadata']['name'])}",
            f"--per-worker={ec.get('perWorker', 1)}",
        ],
    )


def _call(url: str, key: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"x-api-key": key, "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def submit_and_wait(gateway: str, key: str, endpoint: str, timeout: float = 30) -> list[str]:
    """One task through the gateway, polled until it is final; the lines to print."""
    payload = {"args": {"audio_url": "s3://demo-bucket/interview.wav", "language": "en"}}
    submitted = _call(f"{gateway}/v1/async-tasks?model_endpoint_id={endpoint}", key, payload)
    task_id = submitted["task_id"]
    lines = [f"POST {gateway}/v1/async-tasks?model_endpoint_id={endpoint} -> {submitted}"]
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        got = _call(f"{gateway}/v1/async-tasks/{task_id}", key)
        if not seen or seen[-1] != got["status"]:
            seen.append(got["status"])
        if got["status"] in tasks.FINAL:
            break
        if time.monotonic() > deadline:
            raise ClusterError(f"task {task_id} not done in {timeout}s: {got}")
        time.sleep(0.05)
    lines.append(f"GET  {gateway}/v1/async-tasks/{task_id} ({' -> '.join(seen)}):")
    lines.append("  " + json.dumps(got))
    return lines


def broker_env(url: str) -> dict[str, str]:
    return {"MODELTEMPLATE_BROKER_URL": url}


__all__ = ["broker_env", "start_redis", "start_worker", "submit_and_wait"]
