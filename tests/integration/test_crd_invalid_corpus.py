"""Every manifest of tests/data/invalid is refused by the real API server (server-side dry
run, kubectl's default strict field validation) with a message naming the field, and by the
offline validator naming the same field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modeltemplate_operator.api.validation import validate_manifest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
INVALID = sorted((REPO / "tests" / "data" / "invalid").glob("*.yaml"))


def expected_field(path: Path) -> str:
    return path.read_text().splitlines()[0].removeprefix("# expect: ").strip()


def test_corpus_size():
    assert len(INVALID) >= 60


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_rejected_by_the_api_server_and_the_validator(cluster, crd_installed, path):
    field = expected_field(path)
    proc = cluster.kubectl(
        "apply", "--dry-run=server", "-n", "default", "-f", str(path), check=False
    )
    assert proc.returncode != 0, f"API server accepted {path.name}"
    assert field in proc.stderr, proc.stderr
    errors = validate_manifest(yaml.safe_load(path.read_text()))
    assert any(field in e for e in errors), errors
