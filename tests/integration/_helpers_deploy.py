"""Helpers of test_deploy.py: render deploy/, mint a ServiceAccount kubeconfig, run the operator."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from support.k8s import wait_for  # noqa: F401 - re-exported for test_deploy
from support.operator import OperatorProcess

from devtools.ports import free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SAMPLES = sorted((DEPLOY / "samples").glob("*.yaml"))
ASYNC_SAMPLE = "whisper-large-v3-async"
NAMESPACE = "modeltemplate-system"
SERVICE_ACCOUNT = "modeltemplate-operator"
SA_USER = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
#: Lines of an operator log that mean a call was refused.
FORBIDDEN = re.compile(r"\b403\b|forbidden|Not enough permissions", re.IGNORECASE)
#: A refusal by the authorizer (RBAC) names the user and what it cannot do.
RBAC_DENIAL = re.compile(r"cannot [a-z]+ resource|Not enough permissions|is forbidden: User ")


def kustomize(cluster, path: Path) -> list[dict[str, Any]]:
    out = cluster.kubectl("kustomize", str(path)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def ready_condition(obj: dict) -> dict:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), {})


def templates_in(cluster, namespace: str) -> dict[str, dict]:
    items = json.loads(
        cluster.kubectl("get", "modeltemplates", "-n", namespace, "-o", "json").stdout
    )["items"]
    return {t["metadata"]["name"]: t for t in items}


def wait_for_samples(cluster, namespace: str, operator, timeout: float = 90) -> dict[str, dict]:
    """Every sample of deploy/samples (applied in ``namespace``) settled for its generation:
    Ready=True, the ASYNC one Ready=False/BrokerNotConfigured. Returns the templates."""
    names = {yaml.safe_load(s.read_text())["metadata"]["name"] for s in SAMPLES}
    assert ASYNC_SAMPLE in names and len(names) == len(SAMPLES)

    def waiting():
        if operator.exited():
            raise AssertionError(f"{operator.exited()}:\n{operator.tail()}")
        templates = templates_in(cluster, namespace)
        out = {name: "missing" for name in names - set(templates)}
        for name, template in templates.items():
            ready = ready_condition(template)
            if name == ASYNC_SAMPLE:
                ok = (ready.get("status"), ready.get("reason")) == ("False", "BrokerNotConfigured")
            else:
                ok = ready.get("status") == "True"
            observed = template.get("status", {}).get("observedGeneration")
            if not ok or observed != template["metadata"]["generation"]:
                out[name] = (ready.get("status"), ready.get("reason"), ready.get("message"))
        return out

    try:
        wait_for(lambda: not waiting(), timeout=timeout, what="every sample Ready")
    except AssertionError as err:
        raise AssertionError(
            f"{err}\nwaiting: {waiting()}\n--- operator log tail ---\n{operator.tail()}"
        ) from None
    return templates_in(cluster, namespace)


PEERED_CRDS = ("modeltemplates.launch.modelops.dev", "clusterkopfpeerings.kopf.dev")


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    hits = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


def write_overlay(directory: Path, **fields: Any) -> Path:
    """A kustomization in ``directory`` on top of deploy/ (kustomize wants relative paths)."""
    directory.mkdir(parents=True, exist_ok=True)
    body = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
    body["resources"] = [os.path.relpath(DEPLOY, directory)]
    for key, value in fields.items():
        if key == "components":
            value = [os.path.relpath(DEPLOY / c, directory) for c in value]
        body[key] = value
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    return directory


def service_account_kubeconfig(
    cluster, path: Path, service_account: str = SERVICE_ACCOUNT, namespace: str = NAMESPACE
) -> Path:
    """A kubeconfig with the admin kubeconfig's server and CA, and a token of a deploy/
    ServiceAccount (the operator's by default) as its only credential."""
    admin = json.loads(
        cluster.kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
    )
    server = admin["clusters"][0]["cluster"]
    token = cluster.kubectl(
        "create", "token", service_account, "-n", namespace, "--duration=1h"
    ).stdout.strip()
    cluster_entry = {"server": server["server"]}
    for key in ("certificate-authority-data", "insecure-skip-tls-verify", "tls-server-name"):
        if key in server:
            cluster_entry[key] = server[key]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster_entry}],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [
            {"name": "operator", "context": {"cluster": "cluster", "user": service_account}}
        ],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


class Operator(OperatorProcess):
    """The operator with peering (no --standalone), deploy/'s config and a liveness endpoint."""

    def __init__(
        self,
        kubeconfig: Path,
        config_file: Path,
        log_path: Path,
        *args: str,
        env: dict[str, str] | None = None,
    ):
        self.port = free_port()
        super().__init__(
            kubeconfig,
            log_path,
            f"--liveness=http://127.0.0.1:{self.port}/healthz",
            *args,
            env={**(env or {}), "MODELTEMPLATE_CONFIG_FILE": str(config_file)},
        )
        self.log_path.unlink(missing_ok=True)
        self.start()

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def forbidden_lines(self) -> list[str]:
        """Every trace of a refused call, except the 403 an API server answers to writes in a
        namespace being deleted (other tests' namespaces; no permission would change it).

        Each refused request is logged as an exception whose response body holds the Status:
        any 403 body that is not NamespaceTerminating, and any RBAC denial wording anywhere,
        counts; so does a 403 mention with no response body at all."""
        lines = self.log().splitlines()
        bodies = [
            line
            for line in lines
            if line.startswith("HTTP response body:") and '"code":403' in line
        ]
        terminating = [line for line in bodies if '"reason":"NamespaceTerminating"' in line]
        bad = [line for line in lines if RBAC_DENIAL.search(line)]
        bad += [line for line in bodies if line not in terminating]
        if not bodies:
            bad += [line for line in lines if FORBIDDEN.search(line)]
        return bad


class Replicas:
    """Several operator processes, as the Deployment runs them (peering elects one)."""

    def __init__(self, operators: list[Operator]):
        self.operators = operators

    def exited(self) -> str | None:
        for n, op in enumerate(self.operators):
            if op.proc.poll() is not None:
                return f"replica {n} exited with {op.proc.returncode}"
        return None

    def tail(self, lines: int = 40) -> str:
        return "\n".join(
            f"--- replica {n} ---\n{op.tail(lines)}" for n, op in enumerate(self.operators)
        )

    def forbidden_lines(self) -> list[str]:
        return [
            f"replica {n}: {line}"
            for n, op in enumerate(self.operators)
            for line in op.forbidden_lines()
        ]

    def stop(self) -> list[int]:
        for op in self.operators:
            op.stop()
        return [op.proc.returncode for op in self.operators]
