"""Faults injected while the operator works; the invariants are asserted, and printed as a table.

Every wait is bounded; the figures (times, counts) are printed beside each invariant.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import Counter

import pytest
from chaoskit import TEMPLATES, record
from support.k8s import apply_list, get_json, operator_writes, wait_for
from support.manifests import tiny_template

from devtools.localcluster.cluster import pid_alive

EXPECTED = {"Deployment", "Service", "PodDisruptionBudget"}  # of a fixed-worker SYNC template
PEERING_LIFETIME = 10  # seconds; the replicas of the takeover experiment


@pytest.fixture
def namespace(chaos_cluster):
    name = f"chaos-{uuid.uuid4().hex[:6]}"
    chaos_cluster.kubectl("create", "namespace", name)
    wait_for(
        lambda: (
            chaos_cluster.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0
        ),
        what="default ServiceAccount",
    )
    yield name
    chaos_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def burst(cluster, namespace: str, count: int) -> list[str]:
    """Half the templates with one worker, half scaled to zero: the fake fleet's CPU nodes hold
    about 200 workers (each forwarder asks for a CPU), and both kinds converge differently."""
    names = [f"c{i:03d}" for i in range(count)]
    items = [
        tiny_template(
            n, cpus="0.02", memory="32Mi", storage="64Mi", minWorkers=i % 2, maxWorkers=i % 2
        )
        for i, n in enumerate(names)
    ]
    apply_list(cluster, namespace, items)
    return names


def wait_third_applied(cluster, namespace: str) -> None:
    """Until a third of the burst has its Deployment: the middle of the burst."""
    wait_for(
        lambda: len(get_json(cluster, "deployments", "-n", namespace)["items"]) >= TEMPLATES // 3,
        timeout=120,
        interval=0.2,
        what="a third of the burst applied",
    )


def wait_all_ready(cluster, namespace: str, timeout: int = 240) -> float:
    started = time.monotonic()
    cluster.kubectl(
        "wait",
        "-n",
        namespace,
        "--for=condition=Ready",
        f"--timeout={timeout}s",
        "modeltemplate",
        "--all",
        timeout=timeout + 10,
    )
    return time.monotonic() - started


def managed_children(cluster, namespace: str) -> list[dict]:
    return get_json(
        cluster,
        "deployments,services,pdb,hpa,jobs",
        "-n",
        namespace,
        "-l",
        "app.kubernetes.io/managed-by=modeltemplate-operator",
    )["items"]


def kill(pid: int) -> None:
    os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), timeout=10, what=f"pid {pid} gone")


def test_operator_killed_mid_burst(chaos_cluster, start_operator, namespace):
    cluster = chaos_cluster
    first = start_operator(name="first")
    names = burst(cluster, namespace, TEMPLATES)
    wait_third_applied(cluster, namespace)
    kill(first.proc.pid)
    applied_before = len(get_json(cluster, "deployments", "-n", namespace)["items"])
    start_operator(name="second")
    took = wait_all_ready(cluster, namespace)
    record(
        "kill -9 of the operator mid-burst",
        f"all {TEMPLATES} templates Ready after restart",
        f"yes ({applied_before} had children at the kill; Ready {took:.0f} s after restart)",
    )

    templates = {
        t["metadata"]["name"]: t for t in get_json(cluster, "mt", "-n", namespace)["items"]
    }
    children = managed_children(cluster, namespace)
    by_template = {n: set() for n in names}
    for child in children:
        owners = [r for r in child["metadata"].get("ownerReferences", []) if r.get("controller")]
        assert len(owners) == 1, child["metadata"]["name"]
        owner = owners[0]
        assert owner["uid"] == templates[owner["name"]]["metadata"]["uid"]
        assert child["metadata"]["name"] == owner["name"]
        by_template[owner["name"]].add(child["kind"])
    assert all(kinds == EXPECTED for kinds in by_template.values()), by_template
    record("", "exactly the rendered children, each owned", f"yes ({len(children)} children)")

    ready_events = Counter(
        e["involvedObject"]["name"]
        for e in get_json(cluster, "events", "-n", namespace)["items"]
        if e["reason"] == "Ready" and e["involvedObject"].get("kind") == "ModelTemplate"
    )
    assert set(ready_events) == set(names), sorted(set(names) - set(ready_events))[:5]
    assert max(ready_events.values()) == 1, ready_events.most_common(3)
    record("", "exactly one Ready Event per template", "yes (none lost, none twice)")

    offset = cluster.audit_log.stat().st_size
    time.sleep(10)
    writes = operator_writes(cluster.audit_log, offset)
    assert writes == [], [w["requestURI"] for w in writes]
    record("", "no writes in the 10 s after convergence", "yes (0 writes)")


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_control_plane_outage(chaos_cluster, start_operator, namespace, component):
    cluster = chaos_cluster
    operator = start_operator()
    burst(cluster, namespace, 5)
    wait_all_ready(cluster, namespace)

    kill(cluster.pids[component])
    time.sleep(5)  # an outage the operator's watches and requests run into
    cluster.up(timeout=120)  # restarts the dead component only: same ports, same data

    changed = tiny_template("c000", cpus="0.02", memory="32Mi", storage="64Mi")
    changed["spec"]["vendorConfiguration"]["bundleConfig"]["env"] = {"AFTER_OUTAGE": "1"}
    started = time.monotonic()
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(changed))

    def applied():
        main = get_json(cluster, "deployment", "c000", "-n", namespace)["spec"]["template"]["spec"][
            "containers"
        ][0]
        return {"name": "AFTER_OUTAGE", "value": "1"} in main.get("env", [])

    wait_for(applied, timeout=30, interval=0.2, what="the change made after the outage")
    took = time.monotonic() - started
    assert operator.proc.poll() is None  # the same process: its watches recovered
    record(
        f"{component} killed 5 s, restarted",
        "a change after the outage applied within 30 s, no operator restart",
        f"yes ({took:.1f} s)",
    )


def test_children_deleted_or_edited_are_restored(chaos_cluster, start_operator, namespace):
    cluster = chaos_cluster
    start_operator()
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(tiny_template("drift", cpus="0.02", memory="32Mi", maxWorkers=3)),
    )
    wait_all_ready(cluster, namespace)

    def timed(action, restored, what):
        started = time.monotonic()
        action()
        wait_for(restored, timeout=30, interval=0.1, what=what)
        took = time.monotonic() - started
        record("", f"{what} restored", f"yes ({took:.1f} s)")

    def deleted(kind, name="drift"):
        uid = get_json(cluster, kind, name, "-n", namespace)["metadata"]["uid"]

        def action():
            cluster.kubectl("delete", kind, name, "-n", namespace, "--wait=false")

        def restored():
            found = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
            return found.returncode == 0 and json.loads(found.stdout)["metadata"]["uid"] != uid

        return action, restored

    record("children deleted and edited", "", "")
    for kind in ("service", "poddisruptionbudget", "horizontalpodautoscaler", "deployment"):
        timed(*deleted(kind), what=f"{kind} deleted")

    def patched(patch, check, what):
        def action():
            cluster.kubectl(
                "patch",
                "deployment",
                "drift",
                "-n",
                namespace,
                "--type=json",
                "-p",
                json.dumps(patch),
            )

        def restored():
            return check(get_json(cluster, "deployment", "drift", "-n", namespace))

        timed(action, restored, what)

    main = "/spec/template/spec/containers/0"
    patched(
        [{"op": "replace", "path": f"{main}/image", "value": "evil/image:1"}],
        lambda d: (
            d["spec"]["template"]["spec"]["containers"][0]["image"] == "docker.io/modelops/tiny:1"
        ),
        "image edit",
    )
    patched(
        [{"op": "replace", "path": f"{main}/env/0/value", "value": "6000"}],
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == "5005",
        "env edit",
    )
    patched(
        [{"op": "add", "path": f"{main}/env/-", "value": {"name": "LD_PRELOAD", "value": "/x.so"}}],
        lambda d: all(
            e["name"] != "LD_PRELOAD" for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
        ),
        "env var added by someone else",
    )


def test_active_replica_killed_mid_burst(chaos_cluster, start_operator, namespace):
    cluster = chaos_cluster
    # Start from an empty peering object, as a fresh install does (earlier entries expire late).
    cluster.kubectl("delete", "clusterkopfpeering", "modeltemplate-operator", "--ignore-not-found")

    # Each replica's entry lives PEERING_LIFETIME s without renewal (Kopf's default is 60 s):
    # the standby takes over that long after the kill.
    def replica(name: str, priority: int):
        env = {
            "MODELTEMPLATE_PEERING_PRIORITY": str(priority),
            "MODELTEMPLATE_PEERING_LIFETIME_SECONDS": str(PEERING_LIFETIME),
        }
        return start_operator("--verbose", name=name, env=env)

    low = replica("low", 100)
    high = replica("high", 200)
    high.wait_for_log(lambda log: "Resuming operations" in log, timeout=60)
    low.wait_for_log(
        lambda log: (
            log.rfind("Pausing operations in favour of") >= log.rfind("Resuming operations")
        ),
        timeout=60,
    )
    burst(cluster, namespace, TEMPLATES)
    wait_third_applied(cluster, namespace)
    kill(high.proc.pid)
    killed = time.monotonic()
    # Never two writers: the standby did not touch the burst while the active replica lived.
    assert f"reconciled ModelTemplate {namespace}/" not in low.log()
    low.wait_for_log(
        lambda log: log.rfind("Resuming operations") > log.rfind("Pausing operations in favour of"),
        timeout=120,
    )
    takeover = time.monotonic() - killed
    assert takeover < PEERING_LIFETIME + 15, takeover  # the configured lifetime, not Kopf's 60 s
    took = wait_all_ready(cluster, namespace)
    record(
        "two replicas, the active one kill -9'd mid-burst",
        f"the standby takes over and all {TEMPLATES} become Ready; it never acted before",
        f"yes (took over after {takeover:.0f} s, the peering entry's lifetime; Ready {took:.0f} s later)",
    )
