"""Tables of figures the suite prints at its end and keeps in ``test-artifacts/<name>.md``: the
chaos experiments, the hostile gateway.

Rows are recorded by the tests that measure them. Run in parallel (pytest-xdist), every worker
hands its rows to the controlling process at its end (tests/conftest.py), which prints each
table once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Table:
    title: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)

    def add(self, row: tuple[str, ...]) -> None:
        assert len(row) == len(self.header), row
        self.rows.append(row)

    def markdown(self) -> list[str]:
        widths = [
            max(len(row[i]) for row in [self.header, *self.rows]) for i in range(len(self.header))
        ]

        def line(cells) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        return [line(self.header), line(["-" * w for w in widths]), *map(line, self.rows)]


#: By file name (test-artifacts/<name>.md).
TABLES: dict[str, Table] = {}


def table(name: str, title: str, header: tuple[str, ...]) -> Table:
    return TABLES.setdefault(name, Table(title, header))


def dump() -> dict[str, Any]:
    """What a worker hands over: plain data (it crosses a process boundary)."""
    return {
        name: [t.title, list(t.header), [list(r) for r in t.rows]] for name, t in TABLES.items()
    }


def merge(dumped: dict[str, Any]) -> None:
    for name, (title, header, rows) in dumped.items():
        table(name, title, tuple(header)).rows.extend(tuple(r) for r in rows)


def write_all(artifacts: Path, write_line) -> None:
    """Each table with rows: to ``artifacts/<name>.md`` and through ``write_line``."""
    for name, t in TABLES.items():
        if not t.rows:
            continue
        lines = t.markdown()
        artifacts.mkdir(exist_ok=True)
        (artifacts / f"{name}.md").write_text("\n".join(lines) + "\n")
        write_line(f"== {t.title} ==")
        for text in lines:
            write_line(text)
