"""The installed package stands on its own: no module reaches into tests/ or devtools/, and
every module imports without the test extras (hypothesis, cryptography, ...)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
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


_IMPORT_ALL_WITHOUT_EXTRAS = """
import importlib, pkgutil, sys

blocked = set(sys.argv[1:])


class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} is a test extra")
        return None


sys.meta_path.insert(0, Refuse())
import modeltemplate_operator

for module in pkgutil.walk_packages(modeltemplate_operator.__path__, "modeltemplate_operator."):
    importlib.import_module(module.name)
"""


def test_every_module_imports_without_the_test_extras():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["test"]
    blocked = [re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].replace("-", "_") for req in extras]
    assert "hypothesis" in blocked
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL_WITHOUT_EXTRAS, *blocked],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
