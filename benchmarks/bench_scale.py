"""Operator convergence vs the API server accepting the same objects: ``make bench-scale``.

On a fresh local control plane:

1. direct  — every ModelTemplate of the run and every child the operator would render for it
             are server-side applied straight to the API server by a client with the operator's
             concurrency (32 threads). The time to accept them all is the floor any operator
             pays.
2. operator — the same number of templates (new names) are applied in one request and the
             operator, started beforehand, renders and applies their children and writes their
             status; the clock stops when every child exists and every template's status
             describes its current generation. (Ready also waits for the Deployment controller,
             which is not the operator's time.)

Templates have fixed zero workers, so no pods are scheduled: the run measures the operator's
work (watch, render, apply, status), not the scheduler's or kwok's. The operator's peak RSS is
sampled from /proc every 100 ms. Ratios come from the one run.

Usage: python benchmarks/bench_scale.py [--templates N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes import config as k8s_config

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # devtools/ and the test support

from support.manifests import tiny_template  # noqa: E402
from support.operator import OperatorProcess  # noqa: E402

from modeltemplate_operator.apply import Applier  # noqa: E402
from modeltemplate_operator.config import OperatorConfig  # noqa: E402
from devtools.localcluster import LocalCluster  # noqa: E402
from modeltemplate_operator.render import render  # noqa: E402
from modeltemplate_operator.resolution import plan_for  # noqa: E402
from modeltemplate_operator.validation import parse_manifest  # noqa: E402

THREADS = 32
PREREQS = [
    REPO / "deploy" / "base" / "priorityclasses.yaml",
    REPO / "deploy" / "base" / "kopf-peering-crds.yaml",
]


def templates(prefix: str, count: int, namespace: str) -> list[dict]:
    out = []
    for i in range(count):
        m = tiny_template(f"{prefix}-{i:04d}", minWorkers=0, maxWorkers=0)
        m["metadata"]["namespace"] = namespace
        out.append(m)
    return out


def direct(cluster: LocalCluster, namespace: str, count: int) -> tuple[float, int]:
    api = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    api.configuration.connection_pool_maxsize = THREADS
    applier = Applier(api, field_manager="bench-direct")
    objects = []
    for manifest in templates("direct", count, namespace):
        objects.append(manifest)
        meta = manifest["metadata"] | {"uid": "00000000-0000-0000-0000-000000000000"}
        plan = plan_for(parse_manifest(manifest | {"metadata": meta}), OperatorConfig(), False)
        for child in render(plan):
            child["metadata"].pop("ownerReferences")  # no owner exists for them to point at
            objects.append(child)
    start = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(applier.apply, objects))
    return time.monotonic() - start, len(objects)


def converged(cluster: LocalCluster, namespace: str, prefix: str, count: int) -> bool:
    """Every template's children exist and its status describes its current generation."""
    items = json.loads(
        cluster.kubectl("get", "modeltemplates", "-n", namespace, "-o", "json").stdout
    )["items"]
    observed = sum(
        1
        for mt in items
        if mt["metadata"]["name"].startswith(prefix)
        and (mt.get("status") or {}).get("observedGeneration") == mt["metadata"]["generation"]
    )
    children = cluster.kubectl(
        "get",
        "deployments,services,pdb",
        "-n",
        namespace,
        "-o",
        "name",
        "-l",
        "app.kubernetes.io/managed-by=modeltemplate-operator",
    ).stdout.split()
    ours = [c for c in children if c.split("/", 1)[1].startswith(prefix)]
    return observed == count and len(ours) == 3 * count


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self) -> None:
        while self.running:
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.peak = max(self.peak, int(line.split()[1]) * 1024)
            except OSError:
                return
            time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--templates", type=int, default=1000)
    args = parser.parse_args()
    n = args.templates
    cluster = LocalCluster(root=REPO / ".local-cluster" / f"bench-scale-{os.getpid()}")
    try:
        cluster.up()
        crds = sorted(f for f in (REPO / "crds").glob("*.yaml") if f.name != "kustomization.yaml")
        cluster.kubectl("apply", "--server-side", *[f"-f={f}" for f in crds + PREREQS])
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        cluster.kubectl("create", "namespace", "bench")

        t_direct, objects = direct(cluster, "bench", n)
        print(
            f"direct:   {objects} objects ({n} templates + their children) accepted in {t_direct:6.1f} s "
            f"({objects / t_direct:.0f} objects/s, {THREADS} threads)"
        )

        log = REPO / "test-artifacts" / "bench-scale-operator.log"
        log.unlink(missing_ok=True)
        operator = OperatorProcess(cluster.kubeconfig, log, "--standalone").start()
        rss = RssSampler(operator.proc.pid)
        rss.start()
        operator.wait_for_log(lambda text: "Activity 'startup' succeeded" in text)
        time.sleep(2)  # initial listings done: the direct objects are not the operator's
        manifests = {"apiVersion": "v1", "kind": "List", "items": templates("op", n, "bench")}
        start = time.monotonic()
        cluster.kubectl(
            "apply", "--server-side", "-f", "-", input=json.dumps(manifests), timeout=600
        )
        while not converged(cluster, "bench", "op-", n):
            if time.monotonic() - start > 1800:
                print("operator: not converged after 30 min", file=sys.stderr)
                return 1
            time.sleep(1)
        t_operator = time.monotonic() - start
        rss.running = False
        cpu = cpu_seconds(operator.proc.pid)
        operator.stop()
        print(
            f"operator: {n} templates converged (children applied, status written) in {t_operator:6.1f} s"
        )
        print(f"ratio operator / direct: {t_operator / t_direct:.2f} (target <= 1.3)")
        print(
            f"operator CPU: {cpu:.1f} s in those {t_operator:.1f} s (2 cores shared with the control plane)"
        )
        print(f"operator peak RSS: {rss.peak / 2**20:.0f} MB (target <= 150)")
        return 0
    finally:
        cluster.down()
        shutil.rmtree(cluster.root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
