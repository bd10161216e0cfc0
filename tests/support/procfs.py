"""A process's memory as the kernel counts it (``/proc/<pid>/status``): the one reader the
tests and benchmarks use."""

from __future__ import annotations


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory in MB (``VmHWM``: its peak so far)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1000
    raise AssertionError(f"{field} not in /proc/{pid}/status")
