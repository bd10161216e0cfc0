"""What the chaos experiments share with the suite's conftest: the burst size and the table."""

from __future__ import annotations

import os

from support import tables

#: Templates per burst (``make test``: 60, ``make chaos``: 200).
TEMPLATES = int(os.environ.get("CHAOS_TEMPLATES", "60"))
#: experiment -> invariant -> result, in the order the experiments ran (printed at the end of the
#: run, kept in test-artifacts/chaos.md).
CHAOS = tables.table(
    "chaos", f"chaos: {TEMPLATES}-template bursts", ("experiment", "invariant", "result")
)


def record(experiment: str, invariant: str, result: str) -> None:
    CHAOS.add((experiment, invariant, result))
