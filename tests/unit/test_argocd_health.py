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

from modeltemplate_operator.api.kinds import OWNERS

REPO = Path(__file__).resolve().parents[2]
ARGOCD = REPO / "deploy" / "gitops" / "argocd"
SCRIPT = ARGOCD / "modeltemplate-health.lua"
CM = ARGOCD / "argocd-cm.yaml"
CM_KEY = "resource.customizations.health.launch.modelops.dev_ModelTemplate"
#: Every kind of the project (the owner kinds), read the same way: one Ready condition, the
#: same reasons.
CM_KEYS = tuple(f"resource.customizations.health.{k.group}_{k.kind}" for k in OWNERS)
CM_HEADER = (
    "# Argo CD health check for every kind of the project (ModelTemplate, Model, ModelDeployment,\n"
    "# FineTuningJob): merge these keys into argocd-cm (for example as a patch of your Argo CD\n"
    "# installation). Generated from modeltemplate-health.lua by\n"
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


def test_every_kind_of_the_project_has_a_health_check():
    doc = yaml.safe_load(CM.read_text())
    kinds = {key.rsplit("_", 1)[1] for key in doc["data"]}
    assert kinds == {"ModelTemplate", "Model", "ModelDeployment", "FineTuningJob"}


def _fine_tuning_job(phase) -> dict:
    """A FineTuningJob with the status the operator writes for ``phase``."""
    from modeltemplate_operator.status.finetuning import fine_tuning_status

    body = {
        "apiVersion": "launch.modelops.dev/v1alpha1",
        "kind": "FineTuningJob",
        "metadata": {"name": "ft", "namespace": "ns", "generation": 1, "uid": "u"},
        "spec": {},
    }
    return {**body, "status": fine_tuning_status(body, phase, "2026-01-01T00:00:00Z")}


def _job(condition: str | None = None) -> dict:
    conditions = [{"type": condition, "status": "True"}] if condition else []
    return {"metadata": {"name": "ft-run"}, "status": {"conditions": conditions}}


def test_fine_tuning_jobs_health_follows_their_phase(health):
    """Statuses as the operator writes them (status/finetuning.py), phase by phase."""
    from modeltemplate_operator.status import finetuning as ft

    running_pod = {"metadata": {"name": "ft-run-0"}, "status": {"phase": "Running"}}
    cases = {
        "Pending": (ft.verdict(None, []), "Progressing"),
        "CreatingJob": (ft.creating("ft-run"), "Progressing"),
        "Running": (ft.verdict(_job(), [running_pod]), "Progressing"),
        "Succeeded": (ft.verdict(_job("Complete"), []), "Healthy"),
        "JobFailed": (ft.verdict(_job("Failed"), []), "Degraded"),
        "JobLost": (ft.job_lost("ft-run", None, "2026-01-01T00:00:00Z"), "Degraded"),
        "Cancelled": (ft.cancelled({}, "2026-01-01T00:00:00Z"), "Suspended"),
    }
    for reason, (phase, expected) in cases.items():
        assert phase.reason == reason
        status, message = health(_fine_tuning_job(phase))
        assert status == expected, (reason, message)
        assert message.startswith(reason)
    # An invalid spec: stalled, Degraded.
    invalid = _fine_tuning_job(None)
    invalid["status"] = ft.fine_tuning_status(invalid, None, "now", errors=["spec.x: bad"])
    assert health(invalid)[0] == "Degraded"


if __name__ == "__main__":
    CM.write_text(render_argocd_cm())
    print(f"wrote {CM.relative_to(REPO)}", file=sys.stderr)
