"""A hostile tenant: one namespace's ordinary rights used to hurt the operator and the others.

The attacker creates what the API server accepts and the operator must survive — objects nested
1,000 and 9,000 levels deep, a 1 MiB creation parameter, NUL bytes and 40,000-character values —
while another namespace's templates converge. Each attack must fail alone: its own object says
why (Valid=False naming the field), the operator never exits, and the other namespace converges
as fast as it does without the attack. The answers, the other namespace's convergence time with
and without the attack and the operator's peak RSS go to the chaos table.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from chaoskit import record
from support.k8s import apply_list, wait_for
from support.manifests import tiny_template
from support.procfs import rss_mb

from devtools.localcluster.cluster import wait_established

REPO = Path(__file__).resolve().parents[2]
VICTIM_TEMPLATES = 20
WHERE = "spec.creationParameters"


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.fixture(scope="module")
def crds(chaos_cluster):
    for name in ("models", "finetuningjobs"):
        chaos_cluster.kubectl(
            "apply", "--server-side", "-f", str(REPO / "crds" / f"launch.modelops.dev_{name}.yaml")
        )
        wait_established(chaos_cluster, f"{name}.launch.modelops.dev")


def new_namespace(cluster, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    return name


def create_raw(cluster, namespace: str, text: str) -> None:
    """``kubectl create`` of JSON text as written: the deep objects never pass Python's json."""
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=text)


def model_text(name: str, param: str, param_json: str) -> str:
    return (
        '{"apiVersion":"launch.modelops.dev/v1alpha1","kind":"Model",'
        f'"metadata":{{"name":"{name}"}},"spec":{{"templateRef":{{"name":"base"}},'
        f'"creationParameters":{{"{param}":{param_json}}}}}}}'
    )


def ftj_text(name: str, hyper_json: str) -> str:
    return (
        '{"apiVersion":"launch.modelops.dev/v1alpha1","kind":"FineTuningJob",'
        f'"metadata":{{"name":"{name}"}},"spec":{{"templateRef":{{"name":"base"}},'
        '"trainingDataset":{"url":"s3://d/train.jsonl"},'
        f'"hyperparameters":{{"x":{hyper_json}}}}}}}'
    )


def ready_of(cluster, namespace: str, resource: str, name: str) -> dict:
    """The object's Valid (else Ready) condition, read without decoding its spec."""
    out = cluster.kubectl(
        "get", resource, name, "-n", namespace, "-o", "jsonpath={.status.conditions}", check=False
    ).stdout
    conditions = json.loads(out) if out.strip() else []
    by_type = {c["type"]: c for c in conditions}
    return by_type.get("Valid") or by_type.get("Ready") or {}


def victims_converge(cluster, namespace: str, during=None) -> float:
    """Seconds until VICTIM_TEMPLATES templates of ``namespace`` are Ready; ``during()`` runs
    right after they are applied (the attack)."""
    started = time.monotonic()
    apply_list(
        cluster,
        namespace,
        [
            tiny_template(f"v{i:02d}", cpus="0.02", memory="32Mi", storage="64Mi")
            for i in range(VICTIM_TEMPLATES)
        ],
    )
    if during is not None:
        during()
    cluster.kubectl(
        "wait",
        "-n",
        namespace,
        "--for=condition=Ready",
        "--timeout=180s",
        "modeltemplate",
        "--all",
        timeout=190,
    )
    return time.monotonic() - started


#: name -> (parameter, its JSON, what the message says of it)
MODEL_ATTACKS = {
    "deep-800": ("x", nested(800), "nested deeper than 32 levels"),
    "deep-1000": ("x", nested(1_000), "nested deeper than 32 levels"),
    "deep-9000": ("x", nested(9_000), "nested deeper than 32 levels"),
    "one-mib": ("s", json.dumps("a" * 1_048_576), "is 1048576 characters"),
    "nul": ("s", json.dumps("a\u0000b"), "contains a NUL character"),
    "long-40k": ("s", json.dumps("a" * 40_000), "is 40000 characters"),
    "long-200k": ("s", json.dumps("a" * 200_000), "is 200000 characters"),
}


def test_a_hostile_tenant_fails_alone(chaos_cluster, start_operator, crds):
    cluster = chaos_cluster
    operator = start_operator(name="hostile")
    calm = victims_converge(cluster, new_namespace(cluster, "victim"))

    attacker = new_namespace(cluster, "attacker")
    base = tiny_template("base", cpus="0.02", memory="32Mi", storage="64Mi")
    base["spec"]["modelCreationParametersSchema"] = {
        "parameters": [{"name": "x", "type": "list"}, {"name": "s", "type": "str"}]
    }
    base["spec"]["vendorConfiguration"]["fineTuningJobBundleConfig"] = {
        "registry": "docker.io",
        "image": "modelops/tune",
        "tag": "1",
    }
    apply_list(cluster, attacker, [base])

    def attack():
        for name, (param, value, _) in MODEL_ATTACKS.items():
            create_raw(cluster, attacker, model_text(name, param, value))
        for levels in (1_000, 9_000):
            create_raw(cluster, attacker, ftj_text(f"ft-deep-{levels}", nested(levels)))

    attacked = victims_converge(cluster, new_namespace(cluster, "victim"), during=attack)

    for name, (param, _, message) in MODEL_ATTACKS.items():
        condition = wait_for(
            lambda name=name: (
                (c := ready_of(cluster, attacker, "model", name)).get("status") == "False" and c
            ),
            timeout=60,
            what=f"model {name} refused",
        )
        assert condition["reason"] == "InvalidParameters", condition
        assert f"{WHERE}.{param}: {message}" in condition["message"], condition
        record(
            f"hostile tenant: Model {name}",
            "refused alone, the field named",
            f"yes ({condition['reason']}: {condition['message'][:70]})",
        )
    for levels in (1_000, 9_000):
        name = f"ft-deep-{levels}"
        condition = wait_for(
            lambda name=name: (
                (c := ready_of(cluster, attacker, "ftj", name)).get("status") == "False" and c
            ),
            timeout=60,
            what=f"fine-tuning job {name} refused",
        )
        assert "spec.hyperparameters.x: nested deeper than 32 levels" in condition["message"]
        assert not cluster.kubectl("get", "jobs", "-n", attacker, "-o", "name").stdout.strip()
        record(
            f"hostile tenant: FineTuningJob hyperparameters {levels} deep",
            "refused alone, no Job",
            f"yes ({condition['reason']}: {condition['message'][:70]})",
        )

    assert operator.proc.poll() is None, "the operator exited"
    assert not cluster.kubectl(
        "get", "deployments", "-n", attacker, "-l", "app.kubernetes.io/name=model", "-o", "name"
    ).stdout.strip(), "a refused model rendered a workload"
    rss = rss_mb(operator.proc.pid, "VmHWM")
    record(
        "hostile tenant: attacks beside another namespace",
        f"{VICTIM_TEMPLATES} templates of another namespace converge as without the attack",
        f"yes ({attacked:.1f} s under attack, {calm:.1f} s without; operator never exited, "
        f"peak RSS {rss:.0f} MB)",
    )

    # A restart reads every poison object again in its first list: it must start and work.
    operator.stop()
    restarted = start_operator(name="hostile-restart")
    after = victims_converge(cluster, new_namespace(cluster, "victim"))
    assert restarted.proc.poll() is None
    record(
        "hostile tenant: operator restarted over the poison objects",
        "starts, lists them, reconciles the others",
        f"yes ({VICTIM_TEMPLATES} templates of a new namespace Ready in {after:.1f} s)",
    )
