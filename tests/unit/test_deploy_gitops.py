"""The GitOps examples in deploy/gitops point at real paths and cover every sample."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
GITOPS = REPO / "deploy" / "gitops"


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _samples() -> dict[str, dict]:
    docs = [
        yaml.safe_load(p.read_text()) for p in sorted((REPO / "deploy" / "samples").glob("*.yaml"))
    ]
    return {d["metadata"]["name"]: d for d in docs}


def test_argocd_applications_point_at_kustomize_dirs():
    apps = _docs(GITOPS / "argocd" / "application.yaml")
    assert [a["kind"] for a in apps] == ["Application", "Application"]
    for app in apps:
        path = REPO / app["spec"]["source"]["path"]
        assert path.is_dir(), path
        assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]
    assert (REPO / apps[0]["spec"]["source"]["path"] / "kustomization.yaml").exists()


def test_argocd_samples_application_syncs_every_sample_below_its_path():
    """deploy/samples/ has subdirectories (models/, fine-tuning/), which Argo CD's directory
    source reads only with recurse."""
    (samples,) = [
        a
        for a in _docs(GITOPS / "argocd" / "application.yaml")
        if a["spec"]["source"]["path"] == "deploy/samples"
    ]
    root = REPO / "deploy" / "samples"
    nested = [p for p in root.rglob("*.yaml") if p.parent != root]
    assert nested, "no nested samples: the check below would prove nothing"
    assert samples["spec"]["source"]["directory"]["recurse"] is True
    assert not (root / "kustomization.yaml").exists()  # a plain directory source


def test_flux_health_checks_cover_every_template_that_can_be_ready():
    docs = _docs(GITOPS / "flux" / "modeltemplate-operator.yaml")
    kustomizations = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Kustomization"}
    operator, samples = (
        kustomizations["modeltemplate-operator"],
        kustomizations["modeltemplate-samples"],
    )
    assert operator["spec"]["wait"] is True
    assert (REPO / operator["spec"]["path"] / "kustomization.yaml").exists()
    assert (REPO / samples["spec"]["path"]).is_dir()
    assert samples["spec"]["dependsOn"] == [{"name": "modeltemplate-operator"}]
    checked = {c["name"] for c in samples["spec"]["healthChecks"]}
    ready_able = {n for n, d in _samples().items() if d["spec"]["endpointType"] != "ASYNC"}
    assert checked == ready_able
    for check in samples["spec"]["healthChecks"]:
        assert (check["apiVersion"], check["kind"]) == (
            "launch.modelops.dev/v1alpha1",
            "ModelTemplate",
        )
        assert check["namespace"] == samples["spec"]["targetNamespace"]
    # Flux does not create the target namespace: the example does.
    namespaces = [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"]
    assert namespaces == [samples["spec"]["targetNamespace"]]
    # The source must carry crds/ too: deploy/ includes ../crds.
    ignore = next(d for d in docs if d["kind"] == "GitRepository")["spec"]["ignore"]
    assert "!/crds/" in ignore and "!/deploy/" in ignore


def test_image_workflow_waits_for_the_samples():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "image-e2e.yaml").read_text())
    script = "\n".join(step.get("run", "") for step in workflow["jobs"]["e2e"]["steps"])
    for needle in (
        "docker build",
        "make kind-up",
        "kind load docker-image",
        "apply --server-side -k deploy/",
        "deploy/samples/",
        "--for=condition=Ready",
        "BrokerNotConfigured",
    ):
        assert needle in script, needle
