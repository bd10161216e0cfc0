"""Run the operator as a real process against a test cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


class OperatorProcess:
    """``python -m modeltemplate_operator`` with its own kubeconfig, logging to a file."""

    #: The module ``python -m`` runs (the gateway's support class runs another one).
    module = "modeltemplate_operator"

    def __init__(
        self, kubeconfig: Path, log_path: Path, *args: str, env: dict[str, str] | None = None
    ):
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.args = args or ("--standalone", "--verbose")
        self.env = env or {}
        self.proc: subprocess.Popen | None = None

    def start(self) -> OperatorProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "MODELTEMPLATE_LOG_FORMAT": "text",
            **self.env,
        }
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes to it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        return self

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM (then SIGKILL after ``timeout``); the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, predicate, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if predicate(text):
                return text
            if self.proc and self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.module} exited ({self.proc.returncode}):\n{text[-3000:]}"
                )
            time.sleep(0.25)
        raise AssertionError(f"operator log condition not met in {timeout}s:\n{self.log()[-3000:]}")
