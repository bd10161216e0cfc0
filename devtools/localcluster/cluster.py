"""Start, check and stop the local control plane as plain processes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from devtools.ports import free_ports

from .nodes import load_node_manifests
from .pki import CertificateAuthority, write_service_account_keys

REPO_ROOT = Path(__file__).resolve().parents[2]  # devtools/localcluster/ -> the repository
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-control-plane.sh"
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
# Order matters: each component needs the ones before it.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


class ClusterError(RuntimeError):
    pass


def find_bin_dir() -> Path:
    """The cached binaries for the pinned versions, built on first use."""
    explicit = os.environ.get("MODELTEMPLATE_BIN_DIR")
    if explicit:
        return Path(explicit)
    out = subprocess.run(
        [str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True
    ).stdout.strip()
    return Path(out.splitlines()[-1])


def stop_process(pid: int, timeout: float = 15) -> None:
    """Stop a process group started with ``start_new_session`` (TERM, then KILL)."""
    if not pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def spawn_module(
    pid_file: Path, log_path: Path, args: list[str], env: dict[str, str] | None = None
) -> int:
    """``python -m ARGS`` in a session of its own, its output appended to ``log_path``; a
    process an earlier run left under ``pid_file`` is stopped first (it may run older code)."""
    if pid_file.exists():
        stop_process(int(pid_file.read_text()))
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
            env=env,
            start_new_session=True,
        )
    pid_file.write_text(str(proc.pid))
    return proc.pid


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); look at its state. A killed process's main thread
    # turns zombie before its other threads have exited, and those still hold its files and
    # listening sockets (a killed etcd restarted then could not bind its port): it has ended only
    # when the zombie is the last thread of its group.
    try:
        state, threads = process_state(pid)
    except (OSError, IndexError):
        return True
    return state != "Z" or threads > 1


def process_state(pid: int) -> tuple[str, int]:
    """The state letter of a process's main thread (``R``, ``S``, ``Z``…) and its threads."""
    state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    return state, len(os.listdir(f"/proc/{pid}/task"))


def _node_schedulable(node: dict) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    taints = (node.get("spec") or {}).get("taints") or []
    return ready and not any(t["key"].startswith("node.kubernetes.io/") for t in taints)


def _kubeconfig(server: str, ca: Path, cert: Path, key: Path, user: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [
            {"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }


def run_kubectl(
    kubectl: str,
    kubeconfig: Path,
    *args: str,
    input: str | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    cmd = [kubectl, f"--kubeconfig={kubeconfig}", *args]
    proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise ClusterError(
            f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
        )
    return proc


def wait_established(cluster, *crds: str, timeout: float = 60) -> None:
    """Until the CRDs named (all of them when none is) are Established, on any cluster with a
    ``kubectl`` method. kubectl fails at once, instead of waiting, on a CRD the API server has
    not given a status yet (``.status.conditions accessor error``, right after it is made): such
    a CRD is asked about again."""
    deadline = time.monotonic() + timeout
    targets = [f"crd/{name}" for name in crds] or ["crd", "--all"]
    while True:
        args = ("wait", "--for=condition=Established", f"--timeout={timeout:.0f}s", *targets)
        done = cluster.kubectl(*args, check=False, timeout=timeout + 10)
        if done.returncode == 0:
            return
        if "accessor error" not in done.stderr or time.monotonic() > deadline:
            raise ClusterError(f"CRDs not established: {done.stderr.strip()}")
        time.sleep(0.2)


@dataclass
class ExistingCluster:
    """A cluster someone else runs (kind, a dev cluster): only its kubeconfig is known."""

    kubeconfig: Path
    kubectl_binary: str = field(default_factory=lambda: shutil.which("kubectl") or "kubectl")

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ):
        return run_kubectl(
            self.kubectl_binary, self.kubeconfig, *args, input=input, check=check, timeout=timeout
        )


@dataclass
class LocalCluster:
    """A control plane rooted at ``root`` (pki, data, logs, kubeconfig, state.json)."""

    root: Path
    bin_dir: Path | None = None
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)

    # -- paths ---------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def audit_log(self) -> Path:
        """JSON lines, one per write request (create/update/patch/delete) the API server served."""
        return self.logs / "audit.log"

    @property
    def operator_pid_file(self) -> Path:
        """Set by ``make demo``, which runs the operator beside the control plane."""
        return self.root / "operator.pid"

    @property
    def gateway_pid_file(self) -> Path:
        """Set by ``make demo``, which runs the SGP API gateway beside the operator."""
        return self.root / "gateway.pid"

    @property
    def _state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    def binary(self, name: str) -> str:
        if self.bin_dir is None:
            self.bin_dir = find_bin_dir()
        return str(self.bin_dir / name)

    # -- state ---------------------------------------------------------------
    def _load_state(self) -> bool:
        if not self._state_file.exists():
            return False
        state = json.loads(self._state_file.read_text())
        self.ports, self.pids = state["ports"], state["pids"]
        self.bin_dir = Path(state["bin_dir"])
        return True

    def _save_state(self) -> None:
        self._state_file.write_text(
            json.dumps(
                {"ports": self.ports, "pids": self.pids, "bin_dir": str(self.bin_dir)}, indent=2
            )
        )

    def running(self) -> bool:
        """True when every component of a previous ``up`` is alive and the API answers."""
        if not self._load_state():
            return False
        if set(self.pids) != set(COMPONENTS) or not all(pid_alive(p) for p in self.pids.values()):
            return False
        try:
            return self._api_ready() and self._nodes_ready()
        except OSError:
            return False

    # -- lifecycle -----------------------------------------------------------
    def up(self, *, timeout: float = 120) -> LocalCluster:
        """Start every component, or restart those of a previous ``up`` that died (same ports,
        same data: objects survive), and wait until the API answers and the nodes are Ready."""
        if self.running():
            return self
        deadline = time.monotonic() + timeout
        if self._restartable():
            try:
                self._start_components(deadline, only_dead=True)
                return self
            except ClusterError as err:
                print(f"could not restart the dead components ({err}); starting afresh")
        self.down()
        self.bin_dir = self.bin_dir or find_bin_dir()
        for d in ("pki", "data", "logs"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        names = ("etcd", "etcd_peer", "apiserver", "controller_manager", "scheduler", "kwok")
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        self._write_pki()
        try:
            self._start_components(deadline, only_dead=False)
            self._create_nodes()
            self._wait(self._nodes_ready, deadline, "fake nodes Ready")
            self._wait(self._default_service_account, deadline, "default ServiceAccount")
        except BaseException:
            self.down()  # nothing half-started is left behind; logs stay
            raise
        return self

    def _restartable(self) -> bool:
        """A previous ``up`` left its state, certificates and data: only processes are missing."""
        return (
            self._load_state()
            and (self.root / "pki").is_dir()
            and (self.root / "data").is_dir()
            and self.kubeconfig.exists()
        )

    def _start_components(self, deadline: float, *, only_dead: bool) -> None:
        """Start the components in order (with ``only_dead``, those not running), each waiting
        for what it needs; the nodes come back Ready once kwok runs again."""
        (self.root / "kwok.yaml").touch()  # kwok exits at once when its --config is missing
        starts = {
            "etcd": (self._etcd_args, self._etcd_ready),
            "kube-apiserver": (self._apiserver_args, self._api_ready),
            "kube-controller-manager": (self._controller_manager_args, None),
            "kube-scheduler": (self._scheduler_args, None),
            "kwok": (self._kwok_args, None),
        }
        if only_dead:
            self.pids = {n: p for n, p in self.pids.items() if n in COMPONENTS and pid_alive(p)}
        for name in COMPONENTS:
            args, ready = starts[name]
            if name not in self.pids:
                self._start(name, args())
            if ready is not None:
                self._wait(ready, deadline, name)
        self._save_state()
        if only_dead:
            self._wait(self._nodes_ready, deadline, "fake nodes Ready")

    def down(self) -> None:
        """Stop every process this cluster started and remove its state and data."""
        self._load_state()
        extras = (
            "async-forwarder",
            "async-main",
            "gateway",
            "operator",
            "redis",
            *sorted(p.stem for p in self.root.glob("serving-*.pid")),
        )
        for name in extras:
            pid_file = self.root / f"{name}.pid"
            if pid_file.exists():
                self.pids = {name: int(pid_file.read_text()), **self.pids}
                pid_file.unlink()
        for name in [*extras, *reversed(COMPONENTS)]:
            pid = self.pids.get(name)
            if pid and pid_alive(pid):
                try:
                    os.killpg(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 15
        for pid in self.pids.values():
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if pid_alive(pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.pids = {}
        for d in ("data", "pki"):
            shutil.rmtree(self.root / d, ignore_errors=True)
        for f in (self._state_file, self.kubeconfig):
            f.unlink(missing_ok=True)

    # -- helpers for users of the cluster -----------------------------------
    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ):
        return run_kubectl(
            self.binary("kubectl"),
            self.kubeconfig,
            *args,
            input=input,
            check=check,
            timeout=timeout,
        )

    # -- internals -----------------------------------------------------------
    def _start(self, name: str, args: list[str]) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [self.binary(name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.root,
        )
        log.close()
        self.pids[name] = proc.pid

    def _wait(self, check, deadline: float, what: str) -> None:
        while time.monotonic() < deadline:
            for name, pid in self.pids.items():
                if not pid_alive(pid):
                    raise ClusterError(
                        f"{name} exited while waiting for {what}; see {self.logs / (name + '.log')}"
                    )
            try:
                if check():
                    return
            except Exception:  # noqa: BLE001 - not ready yet
                pass
            time.sleep(0.25)
        raise ClusterError(f"timed out waiting for {what}; logs in {self.logs}")

    def _write_pki(self) -> None:
        pki = self.root / "pki"
        ca = CertificateAuthority(pki)
        self.ca_path = ca.cert_path
        ca.issue(
            "apiserver",
            "kube-apiserver",
            server_names=[
                "127.0.0.1",
                "localhost",
                "10.96.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
        )
        write_service_account_keys(pki)
        server = f"https://127.0.0.1:{self.ports['apiserver']}"
        users = {
            "kubeconfig": ("admin", "kubernetes-admin", "system:masters"),
            "pki/controller-manager.kubeconfig": (
                "controller-manager",
                "system:kube-controller-manager",
                None,
            ),
            "pki/scheduler.kubeconfig": ("scheduler", "system:kube-scheduler", None),
        }
        for path, (stem, cn, org) in users.items():
            cert, key = ca.issue(stem, cn, org=org)
            config = _kubeconfig(server, ca.cert_path, cert, key, stem)
            (self.root / path).write_text(yaml.safe_dump(config, sort_keys=False))
            (self.root / path).chmod(0o600)

    def _etcd_args(self) -> list[str]:
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd_peer']}"
        return [
            "--name=local",
            f"--data-dir={self.root / 'data' / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=local={peer}",
            "--listen-metrics-urls=",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_args(self) -> list[str]:
        pki = self.root / "pki"
        return [
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports['apiserver']}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=Node,RBAC",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            f"--audit-policy-file={self._write_audit_policy()}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-maxsize=200",
            "--audit-log-format=json",
            "--v=1",
        ]

    def _write_audit_policy(self) -> Path:
        path = self.root / "pki" / "audit-policy.yaml"
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived", "ResponseStarted"],
            "rules": [
                {
                    "level": "Metadata",
                    "verbs": ["create", "update", "patch", "delete", "deletecollection"],
                },
                {"level": "None"},
            ],
        }
        path.write_text(yaml.safe_dump(policy, sort_keys=False))
        return path

    def _component_auth_args(self, kubeconfig: Path) -> list[str]:
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
        ]

    def _controller_manager_args(self) -> list[str]:
        pki = self.root / "pki"
        return [
            *self._component_auth_args(pki / "controller-manager.kubeconfig"),
            f"--secure-port={self.ports['controller_manager']}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=true",
            # The defaults (20 QPS, burst 30) make controllers the bottleneck of bulk tests.
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--cluster-cidr={POD_CIDR}",
            "--v=1",
        ]

    def _scheduler_args(self) -> list[str]:
        pki = self.root / "pki"
        return [
            *self._component_auth_args(pki / "scheduler.kubeconfig"),
            f"--secure-port={self.ports['scheduler']}",
            "--v=1",
        ]

    def _kwok_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--manage-nodes-with-label-selector=",
            "--manage-single-node=",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.0.0.1",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{self.ports['kwok']}",
            f"--config={self.root / 'kwok.yaml'}",
        ]

    def _ssl_context(self) -> ssl.SSLContext:
        pki = self.root / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return ctx

    def _get(self, path: str) -> tuple[int, bytes]:
        req = urllib.request.Request(self.server + path)
        with urllib.request.urlopen(req, context=self._ssl_context(), timeout=5) as resp:  # noqa: S310
            return resp.status, resp.read()

    def _etcd_ready(self) -> bool:
        url = f"http://127.0.0.1:{self.ports['etcd']}/health"
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310
            return json.loads(resp.read()).get("health") == "true"

    def _api_ready(self) -> bool:
        status, body = self._get("/readyz")
        return status == 200 and body.strip() == b"ok"

    def _create_nodes(self) -> None:
        manifests = {"apiVersion": "v1", "kind": "List", "items": load_node_manifests()}
        self.kubectl(
            "apply",
            "--server-side",
            "--field-manager=localcluster",
            "-f",
            "-",
            input=json.dumps(manifests),
        )

    def _nodes_ready(self) -> bool:
        """Every fake node Ready and untainted by the node lifecycle controller."""
        status, body = self._get("/api/v1/nodes")
        nodes = json.loads(body)["items"]
        expected = len(load_node_manifests())
        ready = [n for n in nodes if _node_schedulable(n)]
        return len(ready) >= expected

    def _default_service_account(self) -> bool:
        status, _ = self._get("/api/v1/namespaces/default/serviceaccounts/default")
        return status == 200
