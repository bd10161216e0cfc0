"""The installed package stands on its own: every module imports with only the production
dependencies (as in the image, ``pip install .``), and none reaches into tests/ or devtools/."""

from __future__ import annotations

import importlib.metadata as md
import json
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


def _name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _closure(requirements: list[str]) -> set[str]:
    """Distributions these requirements install, transitively (extras left out)."""
    seen: set[str] = set()
    todo = [_name(r) for r in requirements]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        todo += [_name(r) for r in requires if "extra ==" not in r]
    return seen


def _test_only_modules() -> list[str]:
    """Top-level modules installed by the test extras and by nothing production needs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    production = _closure(project["dependencies"])
    test_only = _closure(project["optional-dependencies"]["test"]) - production
    modules = {
        module
        for module, dists in md.packages_distributions().items()
        if all(d.lower().replace("_", "-") in test_only for d in dists)
    }
    return sorted(modules)


BLOCK_AND_IMPORT = """
import importlib, json, pkgutil, sys
blocked = set(json.loads(sys.argv[1]))

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            # What a missing module raises: optional imports (anyio of sniffio) catch exactly this.
            raise ModuleNotFoundError(f"{name} is a test-only dependency")

sys.meta_path.insert(0, Block())
import modeltemplate_operator as pkg
names = [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
for name in names:
    importlib.import_module(name)
print(json.dumps(names))
"""


def test_every_module_imports_without_the_test_extras():
    blocked = _test_only_modules()
    assert {"pytest", "hypothesis"} <= set(blocked)
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_AND_IMPORT, json.dumps(blocked)],
        capture_output=True,
        text=True,
        cwd="/",  # nothing from the repository on the path but the installed package
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    imported = json.loads(result.stdout)
    assert "modeltemplate_operator.controller.handlers" in imported
    assert "modeltemplate_operator.forwarder.app" in imported


def test_no_module_reaches_outside_the_package():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import)\s+(tests|support|devtools)\b", text, re.M), path
        assert "parents[" not in text, f"{path}: finds files outside the package by path"
