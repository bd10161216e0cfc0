"""The Argo CD health check (Lua) for ModelTemplates, run in a real Lua 5.1 interpreter.

Argo CD runs health scripts in gopher-lua (Lua 5.1); lupa's bundled Lua 5.1 is the closest.
``python tests/unit/test_argocd_health.py`` regenerates deploy/gitops/argocd/argocd-cm.yaml
from modeltemplate-health.lua.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ARGOCD = REPO / "deploy" / "gitops" / "argocd"
SCRIPT = ARGOCD / "modeltemplate-health.lua"
CM = ARGOCD / "argocd-cm.yaml"
CM_KEY = "resource.customizations.health.launch.modelops.dev_ModelTemplate"
#: Models are read the same way (same conditions, same reasons).
CM_KEYS = (
    CM_KEY,
    "resource.customizations.health.launch.modelops.dev_Model",
    "resource.customizations.health.launch.modelops.dev_ModelDeployment",
)
CM_HEADER = (
    "# Argo CD health check for ModelTemplates and Models: merge these keys into argocd-cm (for\n"
    "# example as a patch of your Argo CD installation). Generated from modeltemplate-health.lua by\n"
    "#   .venv/bin/python tests/unit/test_argocd_health.py\n"
)


def render_argocd_cm() -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "argocd-cm",
            "namespace": "argocd",
            "labels": {
                "app.kubernetes.io/name": "argocd-cm",
                "app.kubernetes.io/part-of": "argocd",
            },
        },
        "data": {key: SCRIPT.read_text() for key in CM_KEYS},
    }

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper, value):
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return CM_HEADER + yaml.dump(doc, Dumper=Dumper, sort_keys=False, width=1000)


@pytest.fixture(scope="module")
def health():
    from support.argocd import health_check  # (this file also runs as a script, without tests/)

    return health_check()


def template(generation=2, status=None):
    obj = {
        "apiVersion": "launch.modelops.dev/v1alpha1",
        "kind": "ModelTemplate",
        "metadata": {"name": "t", "namespace": "ns", "generation": generation},
        "spec": {"endpointType": "SYNC"},
    }
    if status is not None:
        obj["status"] = status
    return obj


def ready(status, reason, message="", generation=2, observed=2, cond_observed=2, extra=()):
    conditions = [
        {
            "type": "Valid",
            "status": "True",
            "reason": "Valid",
            "message": "ok",
            "observedGeneration": cond_observed,
        },
        {
            "type": "Ready",
            "status": status,
            "reason": reason,
            "message": message,
            "observedGeneration": cond_observed,
        },
        *extra,
    ]
    return template(generation, {"observedGeneration": observed, "conditions": conditions})


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (ready("True", "WorkersReady", "2/2 workers ready"), "Healthy"),
        (ready("True", "ScaledToZero"), "Healthy"),
        (ready("True", "Completed", "all batch workers completed"), "Healthy"),
        (ready("True", "Running"), "Healthy"),
        # progressing: nothing observed yet, generation lag, transient reasons
        (template(1), "Progressing"),
        (template(3, {"conditions": []}), "Progressing"),
        (ready("True", "WorkersReady", observed=1), "Progressing"),
        (ready("True", "WorkersReady", cond_observed=1), "Progressing"),
        (template(2, {"observedGeneration": 2, "conditions": []}), "Progressing"),
        (ready("False", "Pending", "waiting for the Deployment to be created"), "Progressing"),
        (ready("False", "RollingOut", "rolling out: 1 of 2 workers updated"), "Progressing"),
        (ready("False", "WorkersNotReady", "0/2 workers ready"), "Progressing"),
        (ready("Unknown", "Reconciling"), "Progressing"),
        (ready("False", "SomethingNew"), "Progressing"),
        # degraded: needs a person
        *[
            (ready("False", reason, "pod x: boom"), "Degraded")
            for reason in (
                "InvalidSpec",
                "Unschedulable",
                "ErrImagePull",
                "ImagePullBackOff",
                "InvalidImageName",
                "CrashLoopBackOff",
                "CreateContainerConfigError",
                "CreateContainerError",
                "JobFailed",
                "ApplyFailed",
                "FailedCreate",
                "ProgressDeadlineExceeded",
                "Evicted",
            )
        ],
        # valid but intentionally not deployed
        (ready("False", "BrokerNotConfigured", "ASYNC endpoints need a task queue"), "Suspended"),
    ],
)
def test_health_status(health, obj, expected):
    status, message = health(obj)
    assert status == expected, message
    assert message


def test_message_names_the_reason_and_the_operator_message(health):
    status, message = health(ready("False", "Unschedulable", "pod a: 0/7 nodes are available"))
    assert (status, message) == ("Degraded", "Unschedulable: pod a: 0/7 nodes are available")
    assert health(template(4, {"observedGeneration": 3}))[1] == (
        "Waiting for the operator to observe generation 4"
    )


def test_degraded_reasons_cover_the_operator_failure_reasons(health):
    """Every reason the operator raises a Warning event for is Degraded in Argo CD."""
    from modeltemplate_operator.observed import WARNING_REASONS

    for reason in sorted(WARNING_REASONS):
        assert health(ready("False", reason))[0] == "Degraded", reason


def test_stalled_templates_are_degraded_or_suspended(health):
    """Where kstatus says Failed (Stalled=True), Argo CD never says Healthy or Progressing."""
    from modeltemplate_operator.observed import STALLED_REASONS

    verdicts = {reason: health(ready("False", reason))[0] for reason in sorted(STALLED_REASONS)}
    assert set(verdicts.values()) == {"Degraded", "Suspended"}, verdicts
    assert verdicts["BrokerNotConfigured"] == "Suspended"


def test_script_is_lua_5_1(health):
    """No goto, integer division or bit operators: gopher-lua is Lua 5.1."""
    source = SCRIPT.read_text()
    for token in ("goto ", "//", "<<", ">>", "::"):
        assert token not in source, token
    from support.argocd import lua_runtime

    assert lua_runtime().eval("_VERSION") == "Lua 5.1"


def test_argocd_cm_carries_the_script():
    assert CM.read_text() == render_argocd_cm(), (
        "deploy/gitops/argocd/argocd-cm.yaml is stale: run .venv/bin/python tests/unit/test_argocd_health.py"
    )
    doc = yaml.safe_load(CM.read_text())
    assert all(doc["data"][key] == SCRIPT.read_text() for key in CM_KEYS)


if __name__ == "__main__":
    CM.write_text(render_argocd_cm())
    print(f"wrote {CM.relative_to(REPO)}", file=sys.stderr)
