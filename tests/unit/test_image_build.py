"""The image build without Docker (hack/build-image.sh, ``make image``) agrees with the
Dockerfile it builds, and its suite stays out of ``make test`` (``make test-real``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "hack" / "build-image.sh"


def test_the_script_parses_and_sets_the_dockerfiles_base_argument():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    dockerfile = (REPO / "Dockerfile").read_text()
    [arg] = re.findall(r"^ARG (\w+)=", dockerfile, re.M)
    assert re.findall(r"^FROM \$\{(\w+)\}", dockerfile, re.M) == [arg, arg]
    assert f'--build-arg "{arg}=$BASE"' in SCRIPT.read_text()


def test_every_entry_point_is_checked_in_the_image():
    scripts = re.findall(r'^(modeltemplate[\w-]*) = "', (REPO / "pyproject.toml").read_text(), re.M)
    checked = SCRIPT.read_text()
    assert scripts and all(name in checked for name in scripts), scripts


def test_the_real_suite_runs_only_when_asked():
    env = {k: v for k, v in os.environ.items() if k != "MODELTEMPLATE_TEST_REAL"}
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )
    assert "tests/unit/test_image_build.py" in collected.stdout  # it did collect
    assert "tests/real/" not in collected.stdout
    makefile = (REPO / "Makefile").read_text()
    assert "MODELTEMPLATE_TEST_REAL=1 $(PY) -m pytest tests/real" in makefile
