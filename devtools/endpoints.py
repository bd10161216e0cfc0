"""Endpoints that answer on a control plane whose pods run nothing (kwok's fake nodes) — for the
serving tests, ``make demo`` and ``make bench-gateway``: a stand-in model process per protocol
(:mod:`devtools.standin_model`), and per endpoint a real forwarder process started with the
flags the operator rendered into the endpoint's Deployment (only its address and upstream
replaced). The gateway is told where they are with its ``--endpoint-addresses`` file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from devtools.ports import free_port

REPO = Path(__file__).resolve().parents[1]
FORWARDER = "http-forwarder"


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in {timeout}s")


def wait_ready(cluster, namespace: str, *resources: str, timeout: int = 120) -> None:
    """Until each resource (``mdl/name``, ...) has condition Ready (``kubectl wait``)."""
    cluster.kubectl(
        "wait",
        "-n",
        namespace,
        "--for=condition=Ready",
        f"--timeout={timeout}s",
        *resources,
        timeout=timeout + 10,
    )


def _popen(args: list[str], log: Path | None, env: dict | None = None) -> subprocess.Popen:
    """``python -m ARGS`` (in a session of its own, output to ``log``, when ``log`` is given)."""
    out = open(log, "ab") if log else None  # noqa: SIM115 - the child writes to it
    try:
        return subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            stdin=subprocess.DEVNULL,
            start_new_session=log is not None,
        )
    finally:
        if out:
            out.close()


def start_standin(
    protocol: str, *args: str, log: Path | None = None
) -> tuple[subprocess.Popen, str]:
    """``devtools.standin_model`` speaking ``protocol``; (process, base URL) once it answers."""
    port = free_port()
    proc = _popen(
        ["devtools.standin_model", "--protocol", protocol, "--port", str(port), *args], log
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health")
    return proc, url


def start_forwarder(
    cluster,
    namespace: str,
    deployment: str,
    upstream: str,
    log_level: str = "WARNING",
    log: Path | None = None,
) -> tuple[subprocess.Popen, str]:
    """The endpoint's forwarder as rendered (its Deployment's ``http-forwarder`` args), in
    front of ``upstream``; (process, base URL) once it is ready."""
    dep = json.loads(
        cluster.kubectl("get", "-o", "json", "deployment", deployment, "-n", namespace).stdout
    )
    [container] = [
        c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == FORWARDER
    ]
    port = free_port()
    args = [a for a in container["args"] if not a.startswith(("--port=", "--upstream=", "--host="))]
    args += ["--host=127.0.0.1", f"--port={port}", f"--upstream={upstream}"]
    env = {**os.environ, "FORWARDER_LOG_LEVEL": log_level}
    proc = _popen(["modeltemplate_operator.forwarder", *args], log, env)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/readyz")
    return proc, url


def write_addresses(path: Path, addresses: dict[str, str]) -> None:
    """The gateway's ``--endpoint-addresses`` file (written whole, then renamed)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(addresses))
    tmp.replace(path)


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.kill()
        proc.wait()
