"""The pinned GitOps tools (helm, the kstatus program), built and cached by hack/build-tools.sh."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@functools.cache
def tool(name: str) -> Path:
    """Path of ``helm`` or ``kstatus``; builds it on first use (a no-op when cached)."""
    out = subprocess.run(
        [str(REPO / "hack" / "build-tools.sh"), name],
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    path = Path(out.stdout.strip().splitlines()[-1])
    assert path.is_file(), out.stderr
    return path


def run(name: str, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(tool(name)), *args], capture_output=True, text=True, timeout=300, **kwargs
    )
    if check and result.returncode:
        raise AssertionError(
            f"{name} {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
        )
    return result
