"""The installed package stands on its own: no module reaches into tests/ or devtools/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import modeltemplate_operator

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(modeltemplate_operator.__file__).parent


def test_no_module_reaches_outside_the_package():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import)\s+(tests|support|devtools)\b", text, re.M), path
        assert "parents[" not in text, f"{path}: finds files outside the package by path"
