"""The SGP gateway's list vs the API server's own list of the same page: ``make bench-gateway``.

On a fresh local control plane with N ModelTemplates (default 1000) in one namespace, the
gateway runs as a process with deploy/'s gateway ServiceAccount token; callers use the token of
a ServiceAccount bound to ``modeltemplate-viewer`` in that namespace, for both sides:

- gateway:    ``GET /v4/model-templates?page=1&limit=100`` (x-api-key, x-selected-account-id)
- API server: ``GET /apis/launch.modelops.dev/v1alpha1/namespaces/NS/modeltemplates?limit=100``
              (what ``kubectl get --raw`` sends; the caller's bearer token, TLS)

Latency: one keep-alive connection, requests one after another, the two sides alternating in
rounds. Throughput: CONCURRENCY connections for a fixed time per side, alternating. The load
generator (aiohttp) runs on the same 2 cores as the control plane and the gateway. The
gateway's RSS is sampled from /proc during the run. Figures are printed beside their targets.

Serving (the second part): one Model of a VLLM chat template, made Ready by the operator; its
forwarder runs as a process with the rendered flags in front of the stand-in model
(``devtools.standin_model``), and the gateway reaches it through ``--endpoint-addresses``.
The same chat completion is sent both ways:

- gateway:   ``POST /v4/models/{id}/chat-completions`` (SGP's body, the caller's key)
- direct:    ``POST /v1/chat/completions`` on the forwarder (the OpenAI body the gateway sends)

Figures: the latency the gateway adds (p50, p99 of sequential requests), throughput at
SERVING_CONCURRENCY clients (gateway / direct), and the time to the first event of a stream.

Usage: python benchmarks/bench_gateway.py [--templates N] [--requests R] [--seconds S]
                                          [--serving-requests R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import ssl
import statistics
import sys
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "integration")]

from _helpers_deploy import service_account_kubeconfig  # noqa: E402
from support.gateway import GatewayProcess  # noqa: E402
from support.manifests import tiny_template  # noqa: E402
from support.operator import OperatorProcess  # noqa: E402
from support.procfs import rss_mb  # noqa: E402

from devtools.endpoints import start_forwarder, start_standin, stop, wait_ready, write_addresses  # noqa: E402
from devtools.localcluster import LocalCluster  # noqa: E402
from devtools.localcluster.cluster import wait_established  # noqa: E402

NAMESPACE = "bench"
LIMIT = 100
CONCURRENCY = 16
SERVING_CONCURRENCY = 64
CHAT = {"chat_history": [{"role": "system", "content": "be brief"}], "prompt": "hello there"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(session: aiohttp.ClientSession, url: str, headers: dict) -> tuple[float, int]:
    start = time.perf_counter()
    async with session.get(url, headers=headers) as response:
        body = await response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}: {response.status} {body[:300]!r}")
    return time.perf_counter() - start, len(json.loads(body)["items"])


async def latency(sides: dict, requests: int, expected: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in sides}
    sessions = {
        name: aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_ctx, limit=1))
        for name, (_, _, ssl_ctx) in sides.items()
    }
    try:
        for name, (url, headers, _) in sides.items():  # warm-up: connections, caches
            for _ in range(20):
                await timed(sessions[name], url, headers)
        for _ in range(requests // 50):
            for name, (url, headers, _) in sides.items():
                for _ in range(50):
                    elapsed, items = await timed(sessions[name], url, headers)
                    assert items == min(LIMIT, expected), (name, items)
                    out[name].append(elapsed)
    finally:
        for session in sessions.values():
            await session.close()
    return out


async def throughput(url: str, headers: dict, ssl_ctx, seconds: float) -> tuple[int, float]:
    done = 0
    connector = aiohttp.TCPConnector(ssl=ssl_ctx, limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def worker():
            nonlocal done
            while time.perf_counter() < deadline:
                await timed(session, url, headers)
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return done, time.perf_counter() - start


def setup(cluster: LocalCluster, n: int, work: Path) -> tuple[GatewayProcess, str]:
    crds = sorted(f for f in (REPO / "crds").glob("*.yaml") if f.name != "kustomization.yaml")
    base = REPO / "deploy" / "base"
    files = crds + [
        base / name
        for name in (
            "namespace.yaml",
            "gateway-rbac.yaml",
            "user-roles.yaml",
            "priorityclasses.yaml",
        )
    ]
    cluster.kubectl("apply", "--server-side", *[f"-f={f}" for f in files])
    wait_established(cluster)
    cluster.kubectl("create", "namespace", NAMESPACE)
    for start in range(0, n, 250):
        items = [tiny_template(f"t-{i:04d}") for i in range(start, min(n, start + 250))]
        body = {"apiVersion": "v1", "kind": "List", "items": items}
        cluster.kubectl(
            "create", "-n", NAMESPACE, "-f", "-", "-o", "name", input=json.dumps(body), timeout=300
        )
    cluster.kubectl("create", "serviceaccount", "reader", "-n", NAMESPACE)
    cluster.kubectl(
        "create",
        "rolebinding",
        "reader",
        "-n",
        NAMESPACE,
        "--clusterrole=modeltemplate-viewer",
        f"--serviceaccount={NAMESPACE}:reader",
    )
    token = cluster.kubectl("create", "token", "reader", "-n", NAMESPACE).stdout.strip()
    kubeconfig = service_account_kubeconfig(
        cluster, work / "gateway.kubeconfig", "modeltemplate-gateway", "modeltemplate-system"
    )
    gateway = GatewayProcess(
        kubeconfig,
        work / "gateway.log",
        "--log-level=warning",
        f"--endpoint-addresses={work / 'endpoints.json'}",
    ).start()
    gateway.wait_ready(timeout=120)
    return gateway, token


async def post_timed(session, url: str, headers: dict, body: dict, stream: bool) -> float:
    """Seconds to the whole answer (``stream``: to the first event)."""
    start = time.perf_counter()
    async with session.post(url, headers=headers, json=body) as response:
        if response.status != 200:
            raise RuntimeError(f"{url}: {response.status} {(await response.read())[:300]!r}")
        if stream:
            async for line in response.content:
                if line.startswith(b"data:"):
                    elapsed = time.perf_counter() - start
                    break
            await response.read()
            return elapsed
        await response.read()
    return time.perf_counter() - start


async def serving_latency(sides: dict, requests: int, stream: bool) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in sides}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4)) as session:
        for url, headers, body in sides.values():  # warm-up
            for _ in range(20):
                await post_timed(session, url, headers, body | {"stream": stream}, stream)
        for _ in range(max(1, requests // 25)):
            for name, (url, headers, body) in sides.items():
                for _ in range(25):
                    out[name].append(
                        await post_timed(session, url, headers, body | {"stream": stream}, stream)
                    )
    return out


async def serving_throughput(
    url: str, headers: dict, body: dict, seconds: float
) -> tuple[int, float]:
    done = 0
    connector = aiohttp.TCPConnector(limit=SERVING_CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def worker():
            nonlocal done
            while time.perf_counter() < deadline:
                await post_timed(session, url, headers, body, False)
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(SERVING_CONCURRENCY)))
        return done, time.perf_counter() - start


def serving(cluster: LocalCluster, gateway: GatewayProcess, token: str, args) -> None:
    """The serving part: gateway -> forwarder -> stand-in vs forwarder -> stand-in."""
    work = cluster.root
    operator = OperatorProcess(cluster.kubeconfig, work / "operator.log").start()
    procs = []
    try:
        doc = tiny_template("chat-t", "STREAMING", perWorker=1000)
        doc["spec"]["endpointProtocol"] = "VLLM"
        doc["spec"]["modelType"] = "CHAT_COMPLETION"
        bundle = doc["spec"]["vendorConfiguration"]["bundleConfig"]
        bundle["command"], bundle["streamingCommand"] = ["serve"], ["serve", "--stream"]
        model = {
            "apiVersion": "launch.modelops.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "chat"},
            "spec": {"templateRef": {"name": "chat-t"}},
        }
        body = {"apiVersion": "v1", "kind": "List", "items": [doc, model]}
        cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(body))
        wait_ready(cluster, NAMESPACE, "mdl/chat")
        uid = json.loads(
            cluster.kubectl("get", "mdl", "chat", "-n", NAMESPACE, "-o", "json").stdout
        )["metadata"]["uid"]
        proc, standin = start_standin("VLLM")
        procs.append(proc)
        proc, forwarder = start_forwarder(cluster, NAMESPACE, "chat", standin)
        procs.append(proc)
        write_addresses(work / "endpoints.json", {f"{NAMESPACE}/chat": forwarder})
        direct_body = {
            "model": "chat",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hello there"},
            ],
        }
        sides = {
            "gateway": (
                f"{gateway.base_url}/v4/models/{uid}/chat-completions",
                {"x-api-key": token},
                CHAT,
            ),
            "direct": (f"{forwarder}/v1/chat/completions", {}, direct_body),
        }
        lat = asyncio.run(serving_latency(sides, args.serving_requests, False))
        ttfb = asyncio.run(serving_latency(sides, max(50, args.serving_requests // 4), True))
        rates = {}
        for name, (url, headers, sent) in [*sides.items(), *sides.items()]:
            done, elapsed = asyncio.run(serving_throughput(url, headers, sent, args.seconds / 2))
            total_done, total_time = rates.get(name, (0, 0.0))
            rates[name] = (total_done + done, total_time + elapsed)
        ms = 1000
        p = {n: (percentile(v, 0.5), percentile(v, 0.99)) for n, v in lat.items()}
        first = {n: percentile(v, 0.5) for n, v in ttfb.items()}
        print(
            f"serving: a chat completion, {len(lat['gateway'])} sequential requests per side; "
            f"streams: {len(ttfb['gateway'])} per side; throughput: {SERVING_CONCURRENCY} "
            f"clients, {args.seconds:.0f} s per side"
        )
        for name in sides:
            done, elapsed = rates[name]
            print(
                f"  {name:8}  p50 {p[name][0] * ms:6.2f} ms  p99 {p[name][1] * ms:6.2f} ms  "
                f"first event p50 {first[name] * ms:6.2f} ms  "
                f"{done / elapsed:7.0f} req/s ({done} requests)"
            )
        added50 = (p["gateway"][0] - p["direct"][0]) * ms
        added99 = (p["gateway"][1] - p["direct"][1]) * ms
        share = (rates["gateway"][0] / rates["gateway"][1]) / (
            rates["direct"][0] / rates["direct"][1]
        )
        print(
            f"gateway adds p50 {added50:.2f} ms (target <= 1), p99 {added99:.2f} ms (target <= 5)"
        )
        print(
            f"gateway throughput / direct at {SERVING_CONCURRENCY} clients: {share:.0%} (target >= 90%)"
        )
        print(
            f"gateway adds to the first event of a stream: "
            f"{(first['gateway'] - first['direct']) * ms:.2f} ms (target <= 2)"
        )
        print(f"gateway peak RSS after serving: {rss_mb(gateway.proc.pid, 'VmHWM'):.0f} MB")
    except Exception:
        log = (work / "operator.log").read_text()
        print("\n".join(x for x in log.splitlines() if "chat" in x)[-4000:], file=sys.stderr)
        raise
    finally:
        stop(procs)
        operator.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--templates", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=1000, help="per side, latency phase")
    parser.add_argument("--seconds", type=float, default=10, help="per side, throughput phase")
    parser.add_argument(
        "--serving-requests", type=int, default=1000, help="per side, serving latency phase"
    )
    args = parser.parse_args()
    cluster = LocalCluster(root=REPO / ".local-cluster" / f"bench-gateway-{os.getpid()}")
    gateway = None
    try:
        cluster.up()
        t0 = time.monotonic()
        gateway, token = setup(cluster, args.templates, cluster.root)
        print(
            f"{args.templates} templates created, gateway synced in {time.monotonic() - t0:.1f} s"
        )
        ca = ssl.create_default_context(cafile=str(cluster.ca_path))
        sides = {
            "gateway": (
                f"{gateway.base_url}/v4/model-templates?page=1&limit={LIMIT}",
                {"x-api-key": token, "x-selected-account-id": NAMESPACE},
                None,
            ),
            "api-server": (
                f"{cluster.server}/apis/launch.modelops.dev/v1alpha1/namespaces/{NAMESPACE}"
                f"/modeltemplates?limit={LIMIT}",
                {"Authorization": f"Bearer {token}", "Accept": "application/json"},
                ca,
            ),
        }
        lat = asyncio.run(latency(sides, args.requests, args.templates))
        rates = {}
        for name, (url, headers, ssl_ctx) in [*sides.items(), *sides.items()]:
            done, elapsed = asyncio.run(throughput(url, headers, ssl_ctx, args.seconds / 2))
            total_done, total_time = rates.get(name, (0, 0.0))
            rates[name] = (total_done + done, total_time + elapsed)
        peak_mb = rss_mb(gateway.proc.pid, "VmHWM")  # the kernel's own high-water mark
        p = {name: (percentile(v, 0.5), percentile(v, 0.99)) for name, v in lat.items()}
        ms = 1000
        print(
            f"list of page 1, limit={LIMIT}, of {args.templates} templates; latency: "
            f"{len(lat['gateway'])} sequential requests per side; throughput: {CONCURRENCY} "
            f"connections, {args.seconds:.0f} s per side"
        )
        for name in sides:
            done, elapsed = rates[name]
            print(
                f"  {name:10}  p50 {p[name][0] * ms:6.2f} ms  p99 {p[name][1] * ms:6.2f} ms  "
                f"mean {statistics.mean(lat[name]) * ms:6.2f} ms  "
                f"{done / elapsed:7.0f} req/s ({done} requests)"
            )
        ratio = p["gateway"][1] / p["api-server"][1]
        rate = rates["gateway"][0] / rates["gateway"][1]
        print(f"gateway p99 / API server p99: {ratio:.2f} (target <= 2)")
        print(f"gateway list throughput: {rate:.0f} req/s (target >= 500)")
        print(f"gateway peak RSS: {peak_mb:.0f} MB at {args.templates} templates (target <= 120)")
        serving(cluster, gateway, token, args)
        return 0
    finally:
        if gateway is not None:
            gateway.stop()
        cluster.down()
        shutil.rmtree(cluster.root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
