"""ASYNC endpoints on the local control plane: with a broker in the operator's settings, the
ASYNC sample renders the async workload (main + the queue-consuming forwarder, no Service, a
PDB, 1800 s to terminate), fixed workers without KEDA and a ScaledObject with KEDA's
redis-streams trigger once KEDA's CRD is installed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from support.k8s import get_json, wait_for
from support.manifests import KEDA_CRD
from support.operator import OperatorProcess

from devtools.localcluster.cluster import wait_established
from devtools.redisserver import RedisServer
from modeltemplate_operator.tasks import protocol as tasks

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = yaml.safe_load((ROOT / "deploy" / "samples" / "transcription-async-a10.yaml").read_text())
NAME = SAMPLE["metadata"]["name"]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(directory=str(tmp_path_factory.mktemp("redis"))).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def operator(cluster, cluster_prereqs, redis_server):
    """The operator with the test's Redis as its broker."""
    log = ARTIFACTS / "operator-test_async.log"
    log.unlink(missing_ok=True)
    proc = OperatorProcess(
        Path(cluster.kubeconfig),
        log,
        env={
            "MODELTEMPLATE_BROKER_URL": redis_server.url,
            "MODELTEMPLATE_BROKER_PASSWORD_SECRET": "broker-auth/password",
        },
    ).start()
    proc.wait_for_log(lambda text: "Activity 'startup' succeeded" in text, timeout=60)
    yield proc
    proc.stop()


def conditions(cluster, namespace):
    mt = get_json(cluster, "modeltemplate", NAME, "-n", namespace)
    return {c["type"]: c for c in (mt.get("status") or {}).get("conditions") or []}, mt


def test_async_sample_renders_the_async_workload_with_and_without_keda(
    cluster, operator, namespace, redis_server
):
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(SAMPLE))
    wait_for(
        lambda: conditions(cluster, namespace)[0].get("Ready", {}).get("status") == "True",
        timeout=90,
        what="the ASYNC sample Ready",
    )
    conds, mt = conditions(cluster, namespace)
    queue = tasks.queue_name(namespace, NAME)
    assert mt["status"]["queue"] == queue
    assert (conds["Autoscaling"]["status"], conds["Autoscaling"]["reason"]) == (
        "False",
        "NoQueueScaling",
    )
    dep = get_json(cluster, "deployment", NAME, "-n", namespace)
    assert dep["spec"]["replicas"] == 1  # minWorkers 0 without KEDA: one fixed worker
    pod = dep["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 1800
    fwd = {c["name"]: c for c in pod["containers"]}["http-forwarder"]
    assert "--mode=async" in fwd["args"]
    assert f"--broker-url={redis_server.url}" in fwd["args"]
    assert f"--queue={queue}" in fwd["args"]
    assert "--predict-route=/transcribe" in fwd["args"]
    assert {
        "name": "FORWARDER_BROKER_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "broker-auth", "key": "password"}},
    } in fwd["env"]
    assert get_json(cluster, "services", "-n", namespace)["items"] == []
    assert get_json(cluster, "pdb", NAME, "-n", namespace)["spec"]["maxUnavailable"] == "50%"
    no_keda = cluster.kubectl("get", "scaledobjects.keda.sh", "-n", namespace, check=False)
    assert no_keda.returncode != 0  # KEDA's CRD is not installed yet

    cluster.kubectl("apply", "-f", "-", input=json.dumps(KEDA_CRD))
    try:
        wait_established(cluster, "scaledobjects.keda.sh", timeout=30)
        so = wait_for(
            lambda: get_json(cluster, "scaledobjects", "-n", namespace)["items"],
            what="a ScaledObject",
        )[0]
        assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (0, 10)
        assert so["spec"]["scaleTargetRef"]["name"] == NAME
        (trigger,) = so["spec"]["triggers"]
        host, port = redis_server.url.split("//")[1].split("/")[0].split(":")
        assert trigger == {
            "type": "redis-streams",
            "metadata": {
                "address": f"{host}:{port}",
                "stream": queue,
                "consumerGroup": tasks.CONSUMER_GROUP,
                "streamLength": "2",
                "databaseIndex": "0",
                "passwordFromEnv": "FORWARDER_BROKER_PASSWORD",
            },
        }
        wait_for(
            lambda: conditions(cluster, namespace)[0]["Autoscaling"]["reason"] == "KEDA",
            what="Autoscaling=KEDA",
        )
        assert conditions(cluster, namespace)[0]["Autoscaling"]["status"] == "True"
    finally:
        cluster.kubectl("delete", "crd", "scaledobjects.keda.sh", "--wait=true")
    wait_for(
        lambda: conditions(cluster, namespace)[0]["Autoscaling"]["reason"] == "NoQueueScaling",
        what="back to fixed workers without KEDA",
    )


def test_redis_component_runs_a_broker_and_points_operator_and_gateway_at_it(cluster, tmp_path):
    overlay = tmp_path / "with-redis"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(ROOT / "deploy", overlay)],
                "components": [os.path.relpath(ROOT / "deploy" / "components" / "redis", overlay)],
            }
        )
    )
    out = cluster.kubectl("kustomize", "--load-restrictor=LoadRestrictionsNone", str(overlay))
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out.stdout) if d}
    url = "redis://modeltemplate-redis.modeltemplate-system.svc:6379/0"
    for name in ("modeltemplate-operator", "modeltemplate-gateway"):
        env = docs[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]["env"]
        assert {"name": "MODELTEMPLATE_BROKER_URL", "value": url} in env, name
    redis = docs[("Deployment", "modeltemplate-redis")]
    assert redis["metadata"]["namespace"] == "modeltemplate-system"
    assert docs[("Service", "modeltemplate-redis")]["spec"]["ports"][0]["port"] == 6379
