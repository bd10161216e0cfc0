"""What the chaos experiments share with the suite's conftest: the burst size and the table."""

from __future__ import annotations

import os

#: Templates per burst (``make test``: 60, ``make chaos``: 200).
TEMPLATES = int(os.environ.get("CHAOS_TEMPLATES", "60"))
#: experiment -> invariant -> result, in the order the experiments ran.
ROWS: list[tuple[str, str, str]] = []


def record(experiment: str, invariant: str, result: str) -> None:
    ROWS.append((experiment, invariant, result))
