"""Every benchmark at a smoke size: each runs end to end and prints its figures and targets.

The figures at this size mean nothing (the full sizes are `make bench-*`); what is checked is
that a change cannot break a benchmark unseen. Each starts what it measures itself (its own
control plane, Redis, forwarder processes).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

SMOKE = {
    "bench_scale.py": (
        ["--templates", "10", "--repeat", "2", "--models", "2x3", "--rollout", "4"],
        [
            "restart: resync",
            "new template handled",
            "CPU per template, 2 runs",
            "peak RSS",
            "reconciles per model",
            "CPU per model, 4 / 2",
        ],
    ),
    "bench_gateway.py": (
        ["--templates", "20", "--requests", "50", "--seconds", "1", "--serving-requests", "50"],
        ["gateway p99 / API server p99", "gateway peak RSS", "gateway adds p50", "first event"],
    ),
    "bench_async.py": (
        ["--tasks", "50", "--rounds", "1", "--latency-tasks", "20"],
        ["of direct (target", "overhead of the queue"],
    ),
    "bench_forwarder.py": (["--quick", "--rounds", "1"], ["target"]),
}


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_benchmark_starts_from_anywhere(script, tmp_path):
    """``--help`` from another directory: a benchmark imports only what it can reach."""
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 0 and "usage:" in run.stdout, run.stderr[-2000:]


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_benchmark_runs_at_a_smoke_size(script):
    args, said = SMOKE[script]
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    print(run.stdout)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    for text in said:
        assert text in run.stdout, f"{script} no longer prints {text!r}"
