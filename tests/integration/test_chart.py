"""charts/modeltemplate-operator with the real helm (hack/build-tools.sh builds the pinned one).

Rendering: `helm lint --strict`; with default values the chart renders the objects of
`kubectl kustomize deploy/` (the one install path cannot drift from the other); every optional
value renders what deploy/ holds for it. On the API server: `helm install`, the operator with
nothing but a token of the chart's ServiceAccount brings every sample to Ready, `helm upgrade`
to a newer chart version with a changed value leaves templates and their children untouched
(resourceVersions), and `helm uninstall` leaves the CRDs and so the templates.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path

import pytest
import yaml
from _helpers_deploy import (
    DEPLOY,
    NAMESPACE,
    PEERED_CRDS,
    REPO,
    SAMPLES,
    Operator,
    Replicas,
    find,
    kustomize,
    service_account_kubeconfig,
    wait_established,
    wait_for_samples,
)
from support.manifests import KEDA_CRD
from support.tools import run

from modeltemplate_operator.plan.config import OperatorConfig

CHART = REPO / "charts" / "modeltemplate-operator"
RELEASE = "modeltemplate-operator"
SAMPLE_NS = f"chart-samples-{uuid.uuid4().hex[:6]}"
#: The Kubernetes version the project pins and tests against (lint's deprecation checks).
KUBE_VERSION = re.search(
    r"^KUBE_VERSION=(\S+)$", (REPO / "hack" / "versions.env").read_text(), re.M
).group(1)
HASHED = re.compile(r"^(modeltemplate-operator-config)-[a-z0-9]{10}$")
#: Every optional value set (and every default value changed where it matters).
OPTIONAL = {
    "image": {"repository": "registry.local/mto", "tag": "ci", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "registry"}],
    "forwarder": {"image": "registry.local/forwarder:ci"},
    "replicaCount": 3,
    "logFormat": "text",
    "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
    "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}],
    "affinity": {"nodeAffinity": {}},
    "extraEnv": [{"name": "MODELTEMPLATE_NAMESPACE", "value": "models"}],
    "config": {
        "gpuPreset": "nvidia-gfd",
        "migStrategy": "single",
        "gpuClasses": {
            "nvidia-hopper-h100": {
                "resourceName": "nvidia.com/gpu",
                "nodeSelector": {"node.example.com/gpu": "h100"},
                "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            }
        },
        "clusterDomain": "example.internal",
    },
    "priorityClasses": {
        "create": True,
        "high": {"name": "models-high", "value": 5000},
        "default": {"name": "models-default", "value": 10},
    },
    "keda": {"prometheusUrl": "http://prometheus.monitoring:9090"},
    "creatorIdentity": {"enabled": True, "mutatingPolicy": True},
    "metrics": {
        "podMonitor": {"enabled": True, "namespace": "monitoring"},
        "serviceMonitor": {"enabled": True, "namespace": ""},
    },
}


def helm(cluster, *args: str, check: bool = True):
    return run("helm", "--kubeconfig", str(cluster.kubeconfig), *args, check=check)


def template(*args: str, chart: Path = CHART) -> list[dict]:
    out = run("helm", "template", RELEASE, str(chart), "-n", NAMESPACE, *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def values_file(tmp_path: Path, values: dict) -> str:
    path = tmp_path / f"values-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def normalised(docs: list[dict]) -> dict[tuple[str, str], dict]:
    """Objects by (kind, name). The operator ConfigMap's name carries a content hash that each
    tool computes its own way, and its config.yaml is compared as data (not comments)."""
    out = {}
    for doc in docs:
        doc = json.loads(json.dumps(doc))
        name = HASHED.sub(r"\1", doc["metadata"]["name"])
        doc["metadata"]["name"] = name
        if doc["kind"] == "ConfigMap" and "config.yaml" in doc.get("data", {}):
            doc["data"]["config.yaml"] = yaml.safe_load(doc["data"]["config.yaml"])
        for volume in doc.get("spec", {}).get("template", {}).get("spec", {}).get("volumes") or []:
            if "configMap" in volume:
                volume["configMap"]["name"] = HASHED.sub(r"\1", volume["configMap"]["name"])
        out[(doc["kind"], name)] = doc
    return out


def config_of(docs: list[dict]) -> dict:
    return yaml.safe_load(find(docs, "ConfigMap")["data"]["config.yaml"])


# -- rendering --------------------------------------------------------------------------------------
def test_lint_strict_with_default_and_every_optional_value(tmp_path):
    for extra in ([], ["-f", values_file(tmp_path, OPTIONAL)]):
        result = run("helm", "lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART), *extra)
        assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout, result.stdout


#: deploy/'s SGP API gateway, not in the chart yet (values.yaml marks its place): when it is
#: added, this goes and the comparison below covers it.
NOT_YET_IN_CHART = sorted((DEPLOY / "base").glob("gateway*.yaml"))


def test_default_values_render_the_objects_of_deploy(cluster):
    """One source: `helm template` with default values == `kubectl kustomize deploy/`, label for
    label, except the Namespace (Helm's `--create-namespace` makes the release namespace) and
    what is not in the chart yet."""
    chart = normalised(template("--include-crds"))
    deploy = normalised(kustomize(cluster, DEPLOY))
    missing = {
        (d["kind"], d["metadata"]["name"])
        for f in NOT_YET_IN_CHART
        for d in yaml.safe_load_all(f.read_text())
        if d
    }
    assert set(deploy) - set(chart) == {("Namespace", NAMESPACE)} | missing
    assert set(chart) - set(deploy) == set()
    for key in sorted(chart):
        assert chart[key] == deploy[key], key


def test_every_optional_value_renders(tmp_path):
    docs = template("-f", values_file(tmp_path, OPTIONAL))
    # Creator identity: the policies of deploy/components/creator-identity (the files, since a
    # kustomize round trip re-folds the CEL text), labelled as everything the chart installs.
    policies = [
        d
        for f in sorted((DEPLOY / "components" / "creator-identity").glob("*-policy.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if d
    ]
    assert len(policies) == 4
    for policy in policies:
        policy["metadata"]["labels"]["app.kubernetes.io/part-of"] = "modeltemplate-operator"
    for want in policies:
        assert find(docs, want["kind"], want["metadata"]["name"]) == want
    # Where the cluster serves MutatingAdmissionPolicy v1 (Kubernetes >= 1.36), it is used.
    ga = template(
        "-f",
        values_file(tmp_path, OPTIONAL),
        "--api-versions",
        "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy",
    )
    for want in policies:
        got = find(ga, want["kind"], want["metadata"]["name"])
        if want["kind"].startswith("Mutating"):
            assert got["apiVersion"] == "admissionregistration.k8s.io/v1"
        assert {**got, "apiVersion": want["apiVersion"]} == want
    # Metrics: the PodMonitor of deploy/prometheus-adapter in the namespace asked for, and a
    # ServiceMonitor with the same selection in the release namespace.
    pod_monitor = yaml.safe_load((DEPLOY / "prometheus-adapter" / "podmonitor.yaml").read_text())
    pod_monitor["metadata"]["namespace"] = "monitoring"
    assert find(docs, "PodMonitor") == pod_monitor
    service_monitor = find(docs, "ServiceMonitor")
    assert service_monitor["metadata"]["namespace"] == NAMESPACE
    assert service_monitor["spec"]["selector"] == pod_monitor["spec"]["selector"]
    assert service_monitor["spec"]["endpoints"][0]["port"] == "http"  # the template Services'
    # Operator: image, pull secrets, scheduling, env, replicas.
    deployment = find(docs, "Deployment", "modeltemplate-operator")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment["spec"]["replicas"] == 3
    assert (container["image"], container["imagePullPolicy"]) == ("registry.local/mto:ci", "Always")
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    assert pod["nodeSelector"] == OPTIONAL["nodeSelector"]
    assert pod["tolerations"] == OPTIONAL["tolerations"]
    assert pod["affinity"] == OPTIONAL["affinity"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MODELTEMPLATE_NAMESPACE"] == "models"
    assert env["MODELTEMPLATE_LOG_FORMAT"] == "text"
    # The configuration: what the operator reads, as the values say.
    config = OperatorConfig.from_sources(config_of(docs), {})
    assert (config.gpu_preset, config.mig_strategy) == ("nvidia-gfd", "single")
    assert config.forwarder_image == "registry.local/forwarder:ci"
    assert config.cluster_domain == "example.internal"
    assert config.keda_prometheus_url == "http://prometheus.monitoring:9090"
    h100 = config.gpu_classes["nvidia-hopper-h100"]
    assert h100.node_selector == {"node.example.com/gpu": "h100"}
    classes = {d["metadata"]["name"]: d["value"] for d in docs if d["kind"] == "PriorityClass"}
    assert classes == {"models-high": 5000, "models-default": 10}
    assert (config.priority_class_high, config.priority_class_default) == (
        "models-high",
        "models-default",
    )


def test_optional_parts_switch_off(tmp_path):
    docs = template(
        "--set",
        "creatorIdentity.enabled=true,creatorIdentity.mutatingPolicy=false,priorityClasses.create=false",
    )
    kinds = sorted(d["kind"] for d in docs if "AdmissionPolicy" in d["kind"])
    assert kinds == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    assert not [d for d in docs if d["kind"] == "PriorityClass"]
    # Priority classes that exist already are still the ones the operator uses.
    assert config_of(docs)["priorityClasses"] == {
        "high": "modeltemplate-high-priority",
        "default": "modeltemplate-default-priority",
    }


def test_image_tag_moves_the_forwarder_and_rolls_the_operator():
    default, bumped = template(), template("--set", "image.tag=0.2.0")
    image = find(bumped, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "ghcr.io/modelops-dev/modeltemplate-operator:0.2.0"
    assert config_of(bumped)["forwarderImage"] == image
    names = [find(docs, "ConfigMap")["metadata"]["name"] for docs in (default, bumped)]
    assert names[0] != names[1]  # a new ConfigMap name: the Deployment rolls


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("config.gpuPreset=eks", "/config/gpuPreset"),
        ("config.migStrategy=none", "/config/migStrategy"),
        (
            "config.gpuClasses.nvidia-rtx-4090.resourceName=x",
            "invalid propertyName 'nvidia-rtx-4090'",
        ),
        ("config.gpuClasses.nvidia-tesla-t4.nodeSelectr.a=b", "/config/gpuClasses/nvidia-tesla-t4"),
        ("keda.prometheusUrl=prometheus:9090", "/keda/prometheusUrl"),
        ("replicaCount=-1", "/replicaCount"),
        ("gpuPreset=launch", "gpuPreset"),
    ],
)
def test_schema_refuses_bad_values(setting, message):
    result = run("helm", "template", RELEASE, str(CHART), "--set", setting, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


# -- on the API server ------------------------------------------------------------------------------
def _release(cluster) -> dict:
    out = helm(cluster, "list", "-n", NAMESPACE, "-o", "json").stdout
    (release,) = [r for r in json.loads(out) if r["name"] == RELEASE]
    return release


@pytest.fixture(scope="module")
def installed(cluster):
    """The chart installed as a user would, into a namespace Helm creates. The in-cluster
    replicas are set to 0 (as test_deploy.py scales them): the operator runs as a local
    process under the chart's ServiceAccount."""
    # Objects of deploy/ applied earlier in the session (test_deploy.py, the PriorityClasses
    # of other fixtures) would be refused as not Helm's: Helm takes them over, as when moving
    # an installation from `kubectl apply -k deploy/` to the chart, and the PriorityClasses are
    # applied again after the uninstall.
    prior = cluster.kubectl("get", "priorityclass", "modeltemplate-high-priority", check=False)
    adopt = ["--take-ownership", "--force-conflicts"] if prior.returncode == 0 else []
    helm(
        cluster,
        "install",
        RELEASE,
        str(CHART),
        "-n",
        NAMESPACE,
        "--create-namespace",
        "--set",
        "replicaCount=0",
        "--wait=watcher",
        "--timeout=120s",
        *adopt,
    )
    wait_established(cluster, *PEERED_CRDS)
    # Fields kubectl applied stay co-owned by it: changing them needs --force-conflicts too.
    yield ["--force-conflicts"] if adopt else []
    helm(cluster, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)
    if adopt:
        cluster.kubectl(
            "apply", "--server-side", "-f", str(DEPLOY / "base" / "priorityclasses.yaml")
        )


def test_install_creates_the_release(cluster, installed):
    release = _release(cluster)
    assert (release["status"], release["chart"]) == ("deployed", "modeltemplate-operator-0.1.0")
    manifest = helm(cluster, "get", "manifest", RELEASE, "-n", NAMESPACE).stdout
    for doc in (d for d in yaml.safe_load_all(manifest) if d):
        namespace = ["-n", NAMESPACE] if doc["metadata"].get("namespace") else []
        got = cluster.kubectl("get", doc["kind"], doc["metadata"]["name"], *namespace, "-o", "json")
        labels = json.loads(got.stdout)["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "modeltemplate-operator"


def _operator(cluster, work: Path, name: str) -> Replicas:
    """The operator under the chart's ServiceAccount, with the ConfigMap Helm installed."""
    deployment = json.loads(
        cluster.kubectl("get", "deployment", RELEASE, "-n", NAMESPACE, "-o", "json").stdout
    )
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
    config_map = json.loads(
        cluster.kubectl(
            "get", "configmap", volume["configMap"]["name"], "-n", NAMESPACE, "-o", "json"
        ).stdout
    )
    config_file = work / f"{name}-config.yaml"
    config_file.write_text(config_map["data"]["config.yaml"])
    kubeconfig = service_account_kubeconfig(cluster, work / f"{name}-kubeconfig")
    return Replicas([Operator(kubeconfig, config_file, work / f"{name}.log", "--verbose")])


@pytest.fixture(scope="module")
def operator(cluster, installed, tmp_path_factory):
    work = tmp_path_factory.mktemp("chart-operator")
    cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(KEDA_CRD))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/scaledobjects.keda.sh"
    )
    cluster.kubectl("create", "namespace", SAMPLE_NS, check=False)
    cluster.kubectl("delete", "clusterkopfpeering", RELEASE, "--ignore-not-found")
    holder = {"replicas": _operator(cluster, work, "operator")}
    try:
        for sample in SAMPLES:
            cluster.kubectl("apply", "-n", SAMPLE_NS, "-f", str(sample))
        yield holder, work
    finally:
        holder["replicas"].stop()
        artifacts = REPO / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        for log in work.glob("*.log"):
            shutil.copy(log, artifacts / f"chart-{log.name}")
        # Gone before the next module's operators, which watch every namespace, start.
        cluster.kubectl("delete", "namespace", SAMPLE_NS, "--timeout=120s", check=False)
        cluster.kubectl("delete", "crd", "scaledobjects.keda.sh", "--timeout=60s", check=False)


#: A namespace a log line is about ("/namespaces/x/" in a request, "namespace x" in a message).
LINE_NAMESPACE = re.compile(r"/namespaces/([a-z0-9-]+)/|\bnamespace ([a-z0-9-]+)")


def _no_forbidden(replicas: Replicas) -> None:
    """No refused call, except in namespaces of other test modules still being deleted (the
    operator watches every namespace; writes into a terminating one are refused whatever RBAC
    allows)."""
    lines = [
        line
        for line in replicas.forbidden_lines()
        if all(
            ns in (SAMPLE_NS, NAMESPACE)
            for match in LINE_NAMESPACE.finditer(line)
            for ns in match.groups()
            if ns
        )
    ]
    assert not lines, "forbidden calls:\n" + "\n".join(lines[:20]) + "\n" + replicas.tail()


def test_operator_under_the_charts_service_account_brings_every_sample_to_ready(cluster, operator):
    holder, _ = operator
    wait_for_samples(cluster, SAMPLE_NS, holder["replicas"])
    _no_forbidden(holder["replicas"])
    # The recipe of docs/install.md: every sample that can be Ready, selected without names.
    waited = cluster.kubectl(
        "wait",
        "-n",
        SAMPLE_NS,
        "--for=condition=Ready",
        "--timeout=10s",
        "modeltemplates",
        "-l",
        "app.kubernetes.io/part-of=modelops-samples",
        "--field-selector",
        "spec.endpointType!=ASYNC",
    )
    assert waited.stdout.count("condition met") == len(SAMPLES) - 1, waited.stdout


CHILD_KINDS = (
    "deployments.apps",
    "services",
    "horizontalpodautoscalers.autoscaling",
    "poddisruptionbudgets.policy",
    "jobs.batch",
    "scaledobjects.keda.sh",
)


def _versions(cluster) -> dict[str, str]:
    """resourceVersion of every template of the samples and of every child."""
    kinds = ",".join(("modeltemplates.launch.modelops.dev", *CHILD_KINDS))
    items = json.loads(cluster.kubectl("get", kinds, "-n", SAMPLE_NS, "-o", "json").stdout)
    return {
        f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["resourceVersion"]
        for i in items["items"]
    }


def _reconciled(log: str) -> set[str]:
    return set(re.findall(rf"reconciled ModelTemplate {SAMPLE_NS}/(\S+):", log))


def test_upgrade_leaves_templates_and_their_children_untouched(
    cluster, installed, operator, tmp_path
):
    holder, work = operator
    wait_for_samples(cluster, SAMPLE_NS, holder["replicas"])
    before = _versions(cluster)
    # Four samples served by a Deployment (the two pure templates render nothing).
    assert sum(k.startswith("Deployment/") for k in before) == 4, before
    operator_generation = json.loads(
        cluster.kubectl("get", "deployment", RELEASE, "-n", NAMESPACE, "-o", "json").stdout
    )["metadata"]["generation"]
    # The next chart version, with an operator value changed.
    newer = tmp_path / "modeltemplate-operator"
    shutil.copytree(CHART, newer)
    chart_yaml = yaml.safe_load((newer / "Chart.yaml").read_text())
    chart_yaml["version"] = "0.1.1"
    (newer / "Chart.yaml").write_text(yaml.safe_dump(chart_yaml, sort_keys=False))
    helm(
        cluster,
        "upgrade",
        RELEASE,
        str(newer),
        "-n",
        NAMESPACE,
        "--set",
        "replicaCount=0,resources.limits.memory=1Gi",
        "--wait=watcher",
        "--timeout=120s",
        *installed,
    )
    release = _release(cluster)
    assert (release["revision"], release["chart"]) == ("2", "modeltemplate-operator-0.1.1")
    deployment = json.loads(
        cluster.kubectl("get", "deployment", RELEASE, "-n", NAMESPACE, "-o", "json").stdout
    )
    assert deployment["metadata"]["generation"] == operator_generation + 1
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["memory"] == "1Gi"
    # The operator restarts as the rolled Deployment would, with the upgraded release's
    # ConfigMap and a fresh token, and reconciles every template again.
    holder["replicas"].stop()
    _no_forbidden(holder["replicas"])
    holder["replicas"] = _operator(cluster, work, "operator-upgraded")
    names = {yaml.safe_load(s.read_text())["metadata"]["name"] for s in SAMPLES}
    (upgraded,) = holder["replicas"].operators
    upgraded.wait_for_log(lambda log: _reconciled(log) >= names, timeout=90)
    after = _versions(cluster)
    changed = {k: (before[k], after.get(k)) for k in before if before[k] != after.get(k)}
    assert not changed and set(after) == set(before), changed
    _no_forbidden(holder["replicas"])


def test_uninstall_keeps_the_crds_and_so_the_templates(cluster, operator):
    holder, _ = operator
    before = _versions(cluster)
    holder["replicas"].stop()
    _no_forbidden(holder["replicas"])
    helm(cluster, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout=120s")
    # What the release made is gone...
    for kind in ("clusterrole", "clusterrolebinding", "priorityclass"):
        gone = cluster.kubectl(
            "get", kind, "-l", "app.kubernetes.io/part-of=modeltemplate-operator", "-o", "name"
        )
        assert not [n for n in gone.stdout.split() if "modeltemplate" in n], gone.stdout
    assert cluster.kubectl("get", "deployment", RELEASE, "-n", NAMESPACE, check=False).returncode
    # ...but not the CRDs (Helm never deletes crds/), so templates and their workloads stay.
    for crd in (
        "modeltemplates.launch.modelops.dev",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    ):
        cluster.kubectl("get", "crd", crd)
    assert _versions(cluster) == before
