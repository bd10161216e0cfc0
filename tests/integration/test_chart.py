"""charts/modeltemplate-operator with the real helm (hack/build-tools.sh builds the pinned one).

Rendering: `helm lint --strict`; with default values the chart renders the objects of
`kubectl kustomize deploy/` plus Helm's labels (the one install path cannot drift from the
other); every optional value renders what it says; another release name renames every
cluster-scoped object. On the API server, the way users meet it: `helm install` over an
existing deploy/ install is refused without a trace; two more releases in two namespaces
install beside it and each other; the previous chart version (tests/data/charts/, as its chart
repository served it), installed over deploy/ by taking its objects over, runs the operator
under the chart's ServiceAccount; `helm upgrade` to this chart (CRDs as templates) leaves
templates and their children untouched (resourceVersions); and `helm uninstall` leaves the
CRDs and so the templates.
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
    wait_for_samples,
)
from support.k8s import operator_writes
from support.manifests import KEDA_CRD
from support.tools import run

from devtools.localcluster.cluster import wait_established
from modeltemplate_operator.plan.config import OperatorConfig

CHART = REPO / "charts" / "modeltemplate-operator"
CHART_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
#: The chart version before this one, packaged as its chart repository served it
#: (tests/data/charts/README.md).
(PREVIOUS_CHART,) = sorted(
    (REPO / "tests" / "data" / "charts").glob("modeltemplate-operator-*.tgz")
)
PREVIOUS_VERSION = PREVIOUS_CHART.name.removeprefix("modeltemplate-operator-").removesuffix(".tgz")
RELEASE = "modeltemplate-operator"
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
SAMPLE_NS = f"chart-samples-{uuid.uuid4().hex[:6]}"
#: The Kubernetes version the project pins and tests against (lint's deprecation checks).
KUBE_VERSION = re.search(
    r"^KUBE_VERSION=(\S+)$", (REPO / "hack" / "versions.env").read_text(), re.M
).group(1)
HASHED = re.compile(r"^([a-z0-9-]+-config)-[a-z0-9]{10}$")
#: Labels Helm's objects carry beside deploy/'s.
HELM_LABELS = {
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "helm.sh/chart",
}
#: Every optional value set (and every default value changed where it matters).
OPTIONAL = {
    "image": {"repository": "registry.local/mto", "tag": "ci", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "registry"}],
    "forwarder": {"image": "registry.local/forwarder:ci"},
    "replicaCount": 3,
    "logFormat": "text",
    "logLevel": "warning",
    "watchNamespace": "models",
    "serviceAccount": {"create": True, "name": "mto", "annotations": {"iam.example/role": "r"}},
    "priorityClassName": "system-cluster-critical",
    "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
    "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}],
    "affinity": {"nodeAffinity": {}},
    "topologySpreadConstraints": [
        {
            "maxSkew": 2,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
        }
    ],
    "podAnnotations": {"example.com/scrape": "yes"},
    "podLabels": {"team": "platform"},
    "podSecurityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000},
    "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True},
    "extraEnv": [{"name": "MODELTEMPLATE_WORKERS", "value": "8"}],
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
    "broker": {
        "url": "redis://redis.queues:6379/2",
        "passwordSecret": {"name": "redis-auth", "key": "pw"},
        "resultTtlSeconds": 600,
        "visibilityTimeoutSeconds": 30,
    },
    "fineTuning": {"activeDeadlineSeconds": 3600, "backoffLimit": 0, "outputPrefix": "s3://ft"},
    "peering": {"lifetimeSeconds": 15},
    "priorityClasses": {
        "create": True,
        "high": {"name": "models-high", "value": 5000},
        "default": {"name": "models-default", "value": 10},
    },
    "keda": {"prometheusUrl": "http://prometheus.monitoring:9090"},
    "crds": {"enabled": True, "keep": True},
    "gateway": {
        "enabled": True,
        "replicaCount": 4,
        "accessTtlSeconds": 30,
        "resources": {"limits": {"memory": "1Gi"}},
        "nodeSelector": {"pool": "web"},
        "podAnnotations": {"example.com/gw": "yes"},
        "service": {
            "type": "LoadBalancer",
            "port": 8080,
            "annotations": {"lb.example/x": "internal"},
        },
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
            "hosts": [{"host": "models.example.com", "paths": [{"path": "/v4"}]}],
            "tls": [{"secretName": "models-tls", "hosts": ["models.example.com"]}],
        },
    },
    "creatorIdentity": {"enabled": True, "mutatingPolicy": True},
    "metrics": {
        "podMonitor": {"enabled": True, "namespace": "monitoring", "labels": {"release": "kps"}},
        "serviceMonitor": {
            "enabled": True,
            "namespace": "",
            "labels": {"release": "kps"},
            "interval": "10s",
        },
    },
}


def helm(cluster, *args: str, check: bool = True):
    return run("helm", "--kubeconfig", str(cluster.kubeconfig), *args, check=check)


def template(*args: str, chart: Path = CHART, release: str = RELEASE) -> list[dict]:
    out = run("helm", "template", release, str(chart), "-n", NAMESPACE, *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def values_file(tmp_path: Path, values: dict) -> str:
    path = tmp_path / f"values-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def normalised(docs: list[dict]) -> dict[tuple[str, str], dict]:
    """Objects by (kind, name), without Helm's own labels. The operator ConfigMap's name
    carries a content hash that each tool computes its own way, and its config.yaml is
    compared as data (not comments)."""
    out = {}
    for doc in docs:
        doc = json.loads(json.dumps(doc))
        name = HASHED.sub(r"\1", doc["metadata"]["name"])
        doc["metadata"]["name"] = name
        labels = doc["metadata"].get("labels") or {}
        for label in HELM_LABELS:
            labels.pop(label, None)
        if doc["kind"] == "ConfigMap" and "config.yaml" in doc.get("data", {}):
            doc["data"]["config.yaml"] = yaml.safe_load(doc["data"]["config.yaml"])
        for volume in doc.get("spec", {}).get("template", {}).get("spec", {}).get("volumes") or []:
            if "configMap" in volume:
                volume["configMap"]["name"] = HASHED.sub(r"\1", volume["configMap"]["name"])
        out[(doc["kind"], name)] = doc
    return out


def config_of(docs: list[dict]) -> dict:
    return yaml.safe_load(find(docs, "ConfigMap")["data"]["config.yaml"])


ADMISSION = "admissionregistration.k8s.io"
#: Kinds without a namespace among those the chart renders.
CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "PriorityClass",
    "CustomResourceDefinition",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}


# -- rendering --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kube_version", [KUBE_VERSION, "v1.37.0"])
def test_lint_strict_with_default_and_every_optional_value(tmp_path, kube_version):
    """Also on Kubernetes 1.37, where MutatingAdmissionPolicy v1beta1 is deprecated: the chart
    then renders v1."""
    for extra in ([], ["-f", values_file(tmp_path, OPTIONAL)]):
        result = run(
            "helm",
            "lint",
            "--strict",
            "--kube-version",
            kube_version,
            str(CHART),
            *extra,
            check=False,
        )
        assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout, result.stdout
        assert "[WARNING]" not in result.stdout, result.stdout


def test_default_values_render_the_objects_of_deploy(cluster):
    """One source: `helm template` with default values == `kubectl kustomize deploy/`, label for
    label once Helm's own labels are set aside, except the Namespace (Helm's
    `--create-namespace` makes the release namespace)."""
    docs = template("--include-crds")
    chart = normalised(docs)
    deploy = normalised(kustomize(cluster, DEPLOY))
    assert set(deploy) - set(chart) == {("Namespace", NAMESPACE)}
    assert set(chart) - set(deploy) == set()
    for key in sorted(chart):
        assert chart[key] == deploy[key], key
    # Every object the release owns carries Helm's labels (CRDs of crds/ are not the release's).
    for doc in template():
        labels = doc["metadata"]["labels"]
        assert labels["helm.sh/chart"] == f"modeltemplate-operator-{CHART_VERSION}", doc["kind"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/instance"] == RELEASE


def test_every_optional_value_renders(tmp_path):
    values = values_file(tmp_path, OPTIONAL)
    # Kubernetes 1.35 (the project's pin): the creator-identity policies of
    # deploy/components/creator-identity as they are (the files, since a kustomize round trip
    # re-folds the CEL text), with the labels of everything the chart installs.
    docs = template("-f", values, "--kube-version", KUBE_VERSION)
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
        got = find(docs, want["kind"], want["metadata"]["name"])
        assert normalised([got]) == normalised([want])
    # Where the cluster serves MutatingAdmissionPolicy v1, and without a cluster from
    # Kubernetes 1.36 on (v1beta1 is deprecated in 1.37), v1.
    for args in (
        [
            "--kube-version",
            KUBE_VERSION,
            "--api-versions",
            f"{ADMISSION}/v1/MutatingAdmissionPolicy",
        ],
        ["--kube-version", "v1.36.0"],
        [],  # helm's own Kubernetes version
    ):
        ga = template("-f", values, *args)
        for want in policies:
            got = find(ga, want["kind"], want["metadata"]["name"])
            if want["kind"].startswith("Mutating"):
                assert got["apiVersion"] == f"{ADMISSION}/v1", args
            assert normalised([{**got, "apiVersion": want["apiVersion"]}]) == normalised([want])
    # Metrics: the PodMonitor of deploy/prometheus-adapter in the namespace asked for, and
    # ServiceMonitors of the operator and the forwarders in the release namespace, all with the
    # labels Prometheus selects.
    pod_monitor = yaml.safe_load((DEPLOY / "prometheus-adapter" / "podmonitor.yaml").read_text())
    got = find(docs, "PodMonitor")
    assert got["metadata"]["namespace"] == "monitoring"
    assert got["spec"] == pod_monitor["spec"]
    assert got["metadata"]["labels"]["release"] == "kps"
    forwarders = find(docs, "ServiceMonitor", "modeltemplate-forwarders")
    assert forwarders["metadata"]["namespace"] == NAMESPACE
    assert forwarders["spec"]["selector"] == pod_monitor["spec"]["selector"]
    assert forwarders["spec"]["endpoints"][0]["port"] == "http"  # the template Services'
    own = find(docs, "ServiceMonitor", "modeltemplate-operator")
    service = find(docs, "Service", "modeltemplate-operator")
    assert own["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert own["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert [e["port"] for e in own["spec"]["endpoints"]] == ["http-metrics"]
    assert own["spec"]["endpoints"][0]["interval"] == "10s"
    gateway_monitor = find(docs, "ServiceMonitor", "modeltemplate-gateway")
    gateway_service = find(docs, "Service", "modeltemplate-gateway")
    selected = gateway_monitor["spec"]["selector"]["matchLabels"].items()
    assert selected <= gateway_service["metadata"]["labels"].items()
    assert [e["port"] for e in gateway_monitor["spec"]["endpoints"]] == ["http"]  # its /metrics
    for monitor in (forwarders, own, gateway_monitor):
        assert monitor["metadata"]["labels"]["release"] == "kps"
    # Operator: image, pull secrets, scheduling, security, env, replicas, ServiceAccount.
    deployment = find(docs, "Deployment", "modeltemplate-operator")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment["spec"]["replicas"] == 3
    assert (container["image"], container["imagePullPolicy"]) == ("registry.local/mto:ci", "Always")
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName"):
        assert pod[key] == OPTIONAL[key], key
    # Maps merge into the defaults (Helm's rule; a key set to null removes a default).
    for got, key in ((pod, "podSecurityContext"), (container, "securityContext")):
        assert got["securityContext"] == {**DEFAULTS[key], **OPTIONAL[key]}, key
    (spread,) = pod["topologySpreadConstraints"]
    assert spread == {
        **OPTIONAL["topologySpreadConstraints"][0],
        "labelSelector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]},
    }
    meta = deployment["spec"]["template"]["metadata"]
    assert meta["annotations"] == OPTIONAL["podAnnotations"]
    assert meta["labels"]["team"] == "platform"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MODELTEMPLATE_NAMESPACE"] == "models"
    assert env["MODELTEMPLATE_WORKERS"] == "8"
    assert env["MODELTEMPLATE_LOG_FORMAT"] == "text"
    assert env["MODELTEMPLATE_LOG_LEVEL"] == "warning"
    account = find(docs, "ServiceAccount", "mto")
    assert account["metadata"]["annotations"] == {"iam.example/role": "r"}
    assert pod["serviceAccountName"] == "mto"
    binding = find(docs, "ClusterRoleBinding", "modeltemplate-operator")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "mto", "namespace": NAMESPACE}
    ]
    # watchNamespace: peering goes through a KopfPeering there, which a Role allows.
    peering = find(docs, "RoleBinding", "modeltemplate-operator-peering")
    assert peering["metadata"]["namespace"] == "models"
    assert peering["subjects"] == binding["subjects"]
    role = find(docs, "Role", "modeltemplate-operator-peering")
    assert {r for rule in role["rules"] for r in rule["resources"]} == {"kopfpeerings"}
    # ...and Kopf, watching one namespace, observes the namespaces.
    cluster_role = find(docs, "ClusterRole", "modeltemplate-operator")
    assert cluster_role["rules"][-1] == {
        "apiGroups": [""],
        "resources": ["namespaces"],
        "verbs": ["list", "watch"],
    }
    default_role = find(template(), "ClusterRole", "modeltemplate-operator")
    assert cluster_role["rules"][:-1] == default_role["rules"]
    # The configuration: what the operator reads, as the values say.
    config = OperatorConfig.from_sources(config_of(docs), {})
    assert (config.gpu_preset, config.mig_strategy) == ("nvidia-gfd", "single")
    assert config.forwarder_image == "registry.local/forwarder:ci"
    assert config.cluster_domain == "example.internal"
    assert config.keda_prometheus_url == "http://prometheus.monitoring:9090"
    h100 = config.gpu_classes["nvidia-hopper-h100"]
    assert h100.node_selector == {"node.example.com/gpu": "h100"}
    assert config.broker_url == "redis://redis.queues:6379/2"
    assert config.broker_password_secret == ("redis-auth", "pw")
    assert (config.broker_result_ttl_seconds, config.broker_visibility_timeout_seconds) == (600, 30)
    assert config.fine_tuning_active_deadline_seconds == 3600
    assert config.fine_tuning_backoff_limit == 0
    assert config.fine_tuning_output_prefix == "s3://ft"
    assert config.peering_lifetime_seconds == 15
    classes = {d["metadata"]["name"]: d["value"] for d in docs if d["kind"] == "PriorityClass"}
    assert classes == {"models-high": 5000, "models-default": 10}
    assert (config.priority_class_high, config.priority_class_default) == (
        "models-high",
        "models-default",
    )
    # The gateway: replicas, resources, the broker (with its password), Service, Ingress.
    gateway = find(docs, "Deployment", "modeltemplate-gateway")
    assert gateway["spec"]["replicas"] == 4
    gw_pod = gateway["spec"]["template"]["spec"]
    (gw,) = gw_pod["containers"]
    assert gw["image"] == "registry.local/mto:ci"
    assert gw["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert gw_pod["nodeSelector"] == {"pool": "web"}
    assert gateway["spec"]["template"]["metadata"]["annotations"] == {"example.com/gw": "yes"}
    gw_env = {e["name"]: e.get("value", e.get("valueFrom")) for e in gw["env"]}
    assert gw_env == {
        "MODELTEMPLATE_GATEWAY_ACCESS_TTL": "30",
        "MODELTEMPLATE_BROKER_URL": "redis://redis.queues:6379/2",
        "MODELTEMPLATE_BROKER_RESULT_TTL_SECONDS": "600",
        "MODELTEMPLATE_BROKER_PASSWORD": {"secretKeyRef": {"name": "redis-auth", "key": "pw"}},
    }
    gw_service = find(docs, "Service", "modeltemplate-gateway")
    assert gw_service["spec"]["type"] == "LoadBalancer"
    assert gw_service["spec"]["ports"][0]["port"] == 8080
    assert gw_service["metadata"]["annotations"] == {"lb.example/x": "internal"}
    ingress = find(docs, "Ingress", "modeltemplate-gateway")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == OPTIONAL["gateway"]["ingress"]["tls"]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "models.example.com"
    assert rule["http"]["paths"] == [
        {
            "path": "/v4",
            "pathType": "Prefix",
            "backend": {"service": {"name": "modeltemplate-gateway", "port": {"name": "http"}}},
        }
    ]
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}


def test_crds_as_templates_are_those_of_crds_dir_and_kept():
    """crds.enabled: the CRDs of the chart's crds/ (generated, drift-tested) as templates, with
    helm.sh/resource-policy: keep unless crds.keep is false; by default none."""
    shipped = {
        d["metadata"]["name"]: d
        for f in sorted((CHART / "crds").glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if d
    }
    assert len(shipped) == 6
    assert not [d for d in template() if d["kind"] == "CustomResourceDefinition"]
    for keep in (True, False):
        docs = template("--set", f"crds.enabled=true,crds.keep={str(keep).lower()}")
        crds = {d["metadata"]["name"]: d for d in docs if d["kind"] == "CustomResourceDefinition"}
        assert set(crds) == set(shipped)
        for name, crd in crds.items():
            assert crd["spec"] == shipped[name]["spec"], name
            assert crd["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
            annotations = crd["metadata"].get("annotations") or {}
            assert (annotations.get("helm.sh/resource-policy") == "keep") is keep, name


def test_another_release_name_renames_every_cluster_scoped_object():
    """The fixed names were what kept a second release (or a release beside deploy/) from
    installing: every cluster-scoped object and every name in the namespace is the release's."""
    default = template("--set", "creatorIdentity.enabled=true,crds.enabled=true")
    other = template("--set", "creatorIdentity.enabled=true,crds.enabled=true", release="team-b")
    assert len(default) == len(other)
    ours = {(d["kind"], d["metadata"]["name"]) for d in default if d["kind"] in CLUSTER_SCOPED}
    theirs = {(d["kind"], d["metadata"]["name"]) for d in other if d["kind"] in CLUSTER_SCOPED}
    crds = {k for k in ours if k[0] == "CustomResourceDefinition"}
    assert crds and crds <= theirs  # the one set of CRDs of a cluster
    assert not (ours - crds) & theirs
    assert all("team-b" in name for kind, name in theirs - crds)
    assert {d["metadata"]["name"] for d in other if d["kind"] == "PriorityClass"} == {
        "team-b-modeltemplate-high-priority",
        "team-b-modeltemplate-default-priority",
    }
    config = config_of(other)
    assert config["priorityClasses"] == {
        "high": "team-b-modeltemplate-high-priority",
        "default": "team-b-modeltemplate-default-priority",
    }
    for doc in other:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"]["name"].startswith("team-b-modeltemplate-"), doc["kind"]
    # Bindings refer to this release's ServiceAccounts and roles; policies to their policy.
    names = {(d["kind"], d["metadata"]["name"]) for d in other}
    for doc in other:
        for subject in doc.get("subjects") or []:
            assert ("ServiceAccount", subject["name"]) in names
        if "roleRef" in doc:
            assert (doc["roleRef"]["kind"], doc["roleRef"]["name"]) in names
        if doc["kind"].endswith("PolicyBinding"):
            assert (doc["kind"].removesuffix("Binding"), doc["spec"]["policyName"]) in names
    # fullnameOverride names everything for a release of any name.
    named = template("--set", "fullnameOverride=models-operator", release="x")
    assert find(named, "Deployment", "models-operator")
    assert find(named, "Deployment", "models-gateway")
    assert find(named, "ClusterRole", "models-editor")


def test_optional_parts_switch_off(tmp_path):
    docs = template(
        "--set",
        "creatorIdentity.enabled=true,creatorIdentity.mutatingPolicy=false,"
        "priorityClasses.create=false,priorityClasses.high.name=prio-high,"
        "priorityClasses.default.name=prio-default,userRoles.create=false,rbac.create=false,"
        "serviceAccount.create=false,serviceAccount.name=existing,gateway.enabled=false",
        "--set-json",
        "topologySpreadConstraints=[]",
    )
    kinds = sorted(d["kind"] for d in docs if "AdmissionPolicy" in d["kind"])
    assert kinds == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    assert sorted(d["kind"] for d in docs) == [
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "existing"
    assert "topologySpreadConstraints" not in pod
    # Priority classes that exist already are the ones the operator uses.
    assert config_of(docs)["priorityClasses"] == {"high": "prio-high", "default": "prio-default"}
    # Without a ServiceAccount to create, its name is required.
    result = run(
        "helm",
        "template",
        RELEASE,
        str(CHART),
        "--set",
        "serviceAccount.create=false",
        check=False,
    )
    assert result.returncode and "serviceAccount.name" in result.stderr, result.stderr


def test_image_tag_moves_the_forwarder_and_rolls_the_operator():
    default, bumped = template(), template("--set", "image.tag=0.2.0")
    image = find(bumped, "Deployment", RELEASE)["spec"]["template"]["spec"]["containers"][0][
        "image"
    ]
    assert image == "ghcr.io/modelops-dev/modeltemplate-operator:0.2.0"
    gateway = find(bumped, "Deployment", "modeltemplate-gateway")["spec"]["template"]["spec"]
    assert gateway["containers"][0]["image"] == image
    assert config_of(bumped)["forwarderImage"] == image
    names = [find(docs, "ConfigMap")["metadata"]["name"] for docs in (default, bumped)]
    assert names[0] != names[1]  # a new ConfigMap name: the Deployment rolls


def test_notes_name_the_release_and_no_path_of_the_repository():
    """NOTES are read where the chart came from a chart repository: no `-f deploy/...`."""
    out = run(
        "helm",
        "install",
        "team-b",
        str(CHART),
        "-n",
        "team-b-system",
        "--dry-run=client",
        "--set",
        "watchNamespace=team-b",
    ).stdout
    notes = out[out.index("NOTES:") :]
    assert "deployment/team-b-modeltemplate-operator" in notes
    assert "watching namespace team-b only" in notes
    assert "--clusterrole=team-b-modeltemplate-editor" in notes
    assert not re.search(r"(?<![\w/.])(deploy|charts|crds|docs)/", notes), notes


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
        ("broker.url=redis://:secret@redis:6379", "/broker/url"),
        ("broker.passwordSecret=redis-auth", "/broker/passwordSecret"),
        ("fineTuning.backoffLimit=-1", "/fineTuning/backoffLimit"),
        ("peering.lifetimeSeconds=2", "/peering/lifetimeSeconds"),
        ("gateway.service.type=External", "/gateway/service/type"),
        ("gateway.replicas=3", "/gateway"),
        ("metrics.serviceMonitor.interval=often", "/metrics/serviceMonitor/interval"),
        ("metrics.serviceMonitor.labels.release=null", "/metrics/serviceMonitor/labels"),
        ("watchNamespace=Team_A", "/watchNamespace"),
        ("logLevel=verbose", "/logLevel"),
        ("gateway.ingress.enabled=true", "/gateway/ingress/hosts"),
        ("crds.install=true", "/crds"),
        ("userRoles.names=x", "/userRoles"),
    ],
)
def test_schema_refuses_bad_values(setting, message):
    result = run("helm", "template", RELEASE, str(CHART), "--set", setting, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


# -- on the API server ------------------------------------------------------------------------------
def _release(cluster, name: str = RELEASE, namespace: str = NAMESPACE) -> dict | None:
    out = helm(cluster, "list", "-n", namespace, "-o", "json").stdout  # every status
    found = [r for r in json.loads(out) if r["name"] == name]
    return found[0] if found else None


def _cluster_objects(cluster) -> dict[str, dict]:
    """Cluster-scoped objects of the project (ClusterRoles, bindings, PriorityClasses), by
    kind/name: labels and resourceVersion."""
    out = json.loads(
        cluster.kubectl(
            "get", "clusterroles,clusterrolebindings,priorityclasses", "-o", "json"
        ).stdout
    )
    return {
        f"{i['kind']}/{i['metadata']['name']}": {
            "labels": i["metadata"].get("labels") or {},
            "resourceVersion": i["metadata"]["resourceVersion"],
        }
        for i in out["items"]
        if "modeltemplate" in i["metadata"]["name"]
    }


def _served(cluster, group_version: str) -> set[str]:
    raw = cluster.kubectl("get", "--raw", f"/apis/{group_version}", check=False)
    return (
        {r["name"] for r in json.loads(raw.stdout)["resources"]} if raw.returncode == 0 else set()
    )


def test_creator_identity_follows_what_the_cluster_serves(cluster):
    """On the API server, the MutatingAdmissionPolicy is rendered in the version the cluster
    serves; a cluster serving none refuses the install with a message naming the way out, and
    the ValidatingAdmissionPolicy alone installs."""
    args = ("install", "identity", str(CHART), "-n", "identity-dry-run", "--dry-run=server")
    result = helm(cluster, *args, "--set", "creatorIdentity.enabled=true", check=False)
    versions = [
        v
        for v in (f"{ADMISSION}/v1", f"{ADMISSION}/v1beta1")
        if "mutatingadmissionpolicies" in _served(cluster, v)
    ]
    if versions:
        assert result.returncode == 0, result.stderr
        docs = [d for d in yaml.safe_load_all(result.stdout.split("NOTES:")[0]) if d]
        policy = find(docs[1:], "MutatingAdmissionPolicy")  # docs[0]: helm's release summary
        assert policy["apiVersion"] == versions[0]
    else:
        assert result.returncode != 0
        assert "this cluster serves no MutatingAdmissionPolicy" in result.stderr, result.stderr
        assert "creatorIdentity.mutatingPolicy=false" in result.stderr
    alone = helm(
        cluster,
        *args,
        "--set",
        "creatorIdentity.enabled=true,creatorIdentity.mutatingPolicy=false",
    )
    assert "kind: ValidatingAdmissionPolicy\n" in alone.stdout
    assert "kind: MutatingAdmissionPolicy\n" not in alone.stdout


@pytest.fixture(scope="module")
def deployed(cluster):
    """deploy/ applied as `kubectl apply -k deploy/` installs it (if an earlier module has not),
    its replicas scaled to 0 as test_deploy.py does."""
    cluster.kubectl("apply", "--server-side", "-k", str(DEPLOY))
    wait_established(cluster, *PEERED_CRDS)
    cluster.kubectl(
        "scale",
        "deployment/modeltemplate-operator",
        "deployment/modeltemplate-gateway",
        "-n",
        NAMESPACE,
        "--replicas=0",
    )
    return True


def test_install_over_deploy_is_refused_and_leaves_no_trace(cluster, deployed):
    before = _cluster_objects(cluster)
    assert "ClusterRole/modeltemplate-operator" in before
    result = helm(
        cluster, "install", RELEASE, str(CHART), "-n", NAMESPACE, "--wait=watcher", check=False
    )
    assert result.returncode != 0
    assert "exists and cannot be imported into the current release" in result.stderr
    assert _release(cluster) is None
    after = _cluster_objects(cluster)
    assert after == before  # nothing taken over, nothing relabelled


#: Two more releases, each in its own namespace, beside deploy/: other names, and an operator
#: that watches one namespace.
OTHERS = {
    "team-b": f"chart-team-b-{uuid.uuid4().hex[:6]}",
    "team-c": f"chart-team-c-{uuid.uuid4().hex[:6]}",
}


def _install_other(cluster, release: str, namespace: str, *args: str):
    return helm(
        cluster,
        "install",
        release,
        str(CHART),
        "-n",
        namespace,
        "--create-namespace",
        "--set",
        f"replicaCount=0,gateway.replicaCount=0,watchNamespace={namespace}",
        "--wait=watcher",
        "--timeout=120s",
        *args,
    )


def test_two_releases_in_two_namespaces_install_beside_deploy(cluster, deployed, tmp_path):
    before = _cluster_objects(cluster)
    try:
        for release, namespace in OTHERS.items():
            _install_other(cluster, release, namespace)
        for release, namespace in OTHERS.items():
            got = _release(cluster, release, namespace)
            assert (got["status"], got["chart"]) == (
                "deployed",
                f"modeltemplate-operator-{CHART_VERSION}",
            )
        after = _cluster_objects(cluster)
        # deploy/'s objects untouched; each release has its own.
        assert {k: after[k] for k in before} == before
        for release in OTHERS:
            own = {
                k
                for k, v in after.items()
                if v["labels"].get("app.kubernetes.io/instance") == release
            }
            assert own == {
                f"ClusterRole/{release}-modeltemplate-operator",
                f"ClusterRoleBinding/{release}-modeltemplate-operator",
                f"ClusterRole/{release}-modeltemplate-gateway",
                f"ClusterRoleBinding/{release}-modeltemplate-gateway",
                f"ClusterRole/{release}-modeltemplate-editor",
                f"ClusterRole/{release}-modeltemplate-viewer",
                f"PriorityClass/{release}-modeltemplate-high-priority",
                f"PriorityClass/{release}-modeltemplate-default-priority",
            }, own
        # The RBAC each release's operator needs, in its own namespace (peering included).
        for release, namespace in OTHERS.items():
            user = f"system:serviceaccount:{namespace}:{release}-modeltemplate-operator"
            for verb, *what in (
                ("patch", "modeltemplates", "--subresource=status"),
                ("create", "deployments.apps"),
                ("create", "kopfpeerings.kopf.dev"),
                ("patch", "kopfpeerings.kopf.dev/modeltemplate-operator"),
            ):
                allowed = cluster.kubectl(
                    "auth", "can-i", verb, *what, "-n", namespace, "--as", user, check=False
                )
                assert allowed.stdout.strip() == "yes", (release, verb, what)
        # team-b's operator, as its Deployment runs it, serves a template in its namespace:
        # peering through a KopfPeering there, nothing refused.
        release, namespace = "team-b", OTHERS["team-b"]
        replicas = _operator(
            cluster, tmp_path, release, release, namespace, f"{release}-modeltemplate-operator"
        )
        try:
            sample = DEPLOY / "samples" / "reranker-cpu.yaml"
            cluster.kubectl("apply", "-n", namespace, "-f", str(sample))
            cluster.kubectl(
                "wait",
                "-n",
                namespace,
                "--for=condition=Ready",
                "--timeout=90s",
                "modeltemplate/minilm-reranker-cpu",
            )
            peering = cluster.kubectl("get", "kopfpeerings", "-n", namespace, "-o", "name")
            assert peering.stdout.split() == ["kopfpeering.kopf.dev/modeltemplate-operator"]
            spec = json.loads(
                cluster.kubectl(
                    "get", "deployment", "minilm-reranker-cpu", "-n", namespace, "-o", "json"
                ).stdout
            )["spec"]["template"]["spec"]
            assert spec["priorityClassName"] == f"{release}-modeltemplate-default-priority"
        finally:
            replicas.stop()
        assert not replicas.forbidden_lines(), replicas.tail()
        # One release goes: its objects with it, the other release's and deploy/'s stay.
        helm(cluster, "uninstall", "team-c", "-n", OTHERS["team-c"], "--wait", "--timeout=120s")
        left = _cluster_objects(cluster)
        assert not [k for k in left if "team-c" in k]
        assert {k: v for k, v in after.items() if "team-c" not in k} == left
    finally:
        for release, namespace in OTHERS.items():
            helm(cluster, "uninstall", release, "-n", namespace, "--wait", check=False)
        # Gone before the next module's operators, which watch every namespace, start.
        cluster.kubectl("delete", "namespace", *OTHERS.values(), "--timeout=120s", check=False)


@pytest.fixture(scope="module")
def installed(cluster, deployed):
    """The previous chart version, as its chart repository served it, installed over deploy/
    the way its README said: Helm takes deploy/'s objects over (`--take-ownership`), and the
    fields kubectl applied (`--force-conflicts`). The in-cluster replicas are set to 0 (as
    test_deploy.py scales them): the operator runs as a local process under the chart's
    ServiceAccount."""
    helm(
        cluster,
        "install",
        RELEASE,
        str(PREVIOUS_CHART),
        "-n",
        NAMESPACE,
        "--set",
        "replicaCount=0",
        "--wait=watcher",
        "--timeout=120s",
        "--take-ownership",
        "--force-conflicts",
    )
    wait_established(cluster, *PEERED_CRDS)
    yield
    helm(cluster, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)
    # What other modules expect of the cluster (tests/integration/conftest.py).
    cluster.kubectl("apply", "--server-side", "-f", str(DEPLOY / "base" / "priorityclasses.yaml"))


def test_previous_version_takes_deploy_over(cluster, installed):
    release = _release(cluster)
    assert (release["status"], release["chart"]) == (
        "deployed",
        f"modeltemplate-operator-{PREVIOUS_VERSION}",
    )
    older = tuple(map(int, PREVIOUS_VERSION.split(".")))
    assert older < tuple(map(int, CHART_VERSION.split("."))), "the fixture is not older"
    manifest = helm(cluster, "get", "manifest", RELEASE, "-n", NAMESPACE).stdout
    for doc in (d for d in yaml.safe_load_all(manifest) if d):
        namespace = ["-n", NAMESPACE] if doc["metadata"].get("namespace") else []
        got = cluster.kubectl("get", doc["kind"], doc["metadata"]["name"], *namespace, "-o", "json")
        meta = json.loads(got.stdout)["metadata"]
        assert meta["labels"]["app.kubernetes.io/part-of"] == "modeltemplate-operator"
        assert meta["annotations"]["meta.helm.sh/release-name"] == RELEASE


def _operator(
    cluster,
    work: Path,
    name: str,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    full_name: str = RELEASE,
) -> Replicas:
    """The operator as the release's Deployment runs it: under the release's ServiceAccount,
    with the ConfigMap Helm installed and the watched namespace of its env."""
    deployment = json.loads(
        cluster.kubectl("get", "deployment", full_name, "-n", namespace, "-o", "json").stdout
    )
    pod = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "configMap" in v]
    config_map = json.loads(
        cluster.kubectl(
            "get", "configmap", volume["configMap"]["name"], "-n", namespace, "-o", "json"
        ).stdout
    )
    config_file = work / f"{name}-config.yaml"
    config_file.write_text(config_map["data"]["config.yaml"])
    env = {
        e["name"]: e["value"]
        for e in pod["containers"][0]["env"]
        if e["name"] == "MODELTEMPLATE_NAMESPACE"
    }
    kubeconfig = service_account_kubeconfig(
        cluster, work / f"{name}-kubeconfig", pod["serviceAccountName"], namespace
    )
    return Replicas([Operator(kubeconfig, config_file, work / f"{name}.log", "--verbose", env=env)])


@pytest.fixture(scope="module")
def operator(cluster, installed, tmp_path_factory):
    work = tmp_path_factory.mktemp("chart-operator")
    cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(KEDA_CRD))
    wait_established(cluster, "scaledobjects.keda.sh")
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


def _objects(cluster) -> dict[str, str]:
    """The uid of every template of the samples and of every child."""
    kinds = ",".join(("modeltemplates.launch.modelops.dev", *CHILD_KINDS))
    items = json.loads(cluster.kubectl("get", kinds, "-n", SAMPLE_NS, "-o", "json").stdout)
    return {f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["uid"] for i in items["items"]}


def _reconciled(log: str) -> set[str]:
    return set(re.findall(rf"reconciled ModelTemplate {SAMPLE_NS}/(\S+):", log))


def test_upgrade_from_the_previous_version_leaves_templates_and_their_children_untouched(
    cluster, installed, operator
):
    """The previous version -> this chart, with an operator value changed and the CRDs moved to templates
    (crds.enabled, taken over from crds/). The gateway, which 0.1.0 lacked, was deploy/'s
    (0.1.0's README applied it beside the chart): taken over too."""
    holder, work = operator
    wait_for_samples(cluster, SAMPLE_NS, holder["replicas"])
    before = _objects(cluster)
    offset = cluster.audit_log.stat().st_size
    # Four samples served by a Deployment (the two pure templates render nothing).
    assert sum(k.startswith("Deployment/") for k in before) == 4, before
    operator_generation = json.loads(
        cluster.kubectl("get", "deployment", RELEASE, "-n", NAMESPACE, "-o", "json").stdout
    )["metadata"]["generation"]
    helm(
        cluster,
        "upgrade",
        RELEASE,
        str(CHART),
        "-n",
        NAMESPACE,
        "--set",
        "replicaCount=0,gateway.replicaCount=0,resources.limits.memory=1Gi,crds.enabled=true",
        "--wait=watcher",
        "--timeout=120s",
        "--take-ownership",
        "--force-conflicts",
    )
    release = _release(cluster)
    assert (release["revision"], release["chart"]) == (
        "2",
        f"modeltemplate-operator-{CHART_VERSION}",
    )
    deployment = json.loads(
        cluster.kubectl("get", "deployment", RELEASE, "-n", NAMESPACE, "-o", "json").stdout
    )
    assert deployment["metadata"]["generation"] == operator_generation + 1
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["memory"] == "1Gi"
    # Every object of the release carries this chart's labels, the CRDs included, and those
    # are kept by `helm uninstall`.
    manifest = helm(cluster, "get", "manifest", RELEASE, "-n", NAMESPACE).stdout
    kinds = set()
    for doc in (d for d in yaml.safe_load_all(manifest) if d):
        namespace = ["-n", NAMESPACE] if doc["metadata"].get("namespace") else []
        got = cluster.kubectl("get", doc["kind"], doc["metadata"]["name"], *namespace, "-o", "json")
        meta = json.loads(got.stdout)["metadata"]
        assert meta["labels"]["helm.sh/chart"] == f"modeltemplate-operator-{CHART_VERSION}"
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        if doc["kind"] == "CustomResourceDefinition":
            assert meta["annotations"]["helm.sh/resource-policy"] == "keep"
        kinds.add(doc["kind"])
    assert {"CustomResourceDefinition", "Deployment", "ClusterRole", "PriorityClass"} <= kinds
    # The operator restarts as the rolled Deployment would, with the upgraded release's
    # ConfigMap and a fresh token, and reconciles every template again.
    holder["replicas"].stop()
    _no_forbidden(holder["replicas"])
    holder["replicas"] = _operator(cluster, work, "operator-upgraded")
    names = {yaml.safe_load(s.read_text())["metadata"]["name"] for s in SAMPLES}
    (upgraded,) = holder["replicas"].operators
    upgraded.wait_for_log(lambda log: _reconciled(log) >= names, timeout=90)
    assert _objects(cluster) == before  # none made, deleted or made again
    # Nor changed: no write of the operator's reached the samples' namespace (their controllers
    # still write status — the HPA controller's conditions, say — so resourceVersions may move).
    writes = [
        (w["verb"], w["requestURI"]) for w in operator_writes(cluster.audit_log, offset, SAMPLE_NS)
    ]
    assert writes == [], writes
    _no_forbidden(holder["replicas"])


def test_uninstall_keeps_the_crds_and_so_the_templates(cluster, operator):
    holder, _ = operator
    before = _objects(cluster)
    holder["replicas"].stop()
    _no_forbidden(holder["replicas"])
    helm(cluster, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout=120s")
    # What the release made is gone...
    gone = _cluster_objects(cluster)
    assert not [
        k for k, v in gone.items() if v["labels"].get("app.kubernetes.io/instance") == RELEASE
    ]
    assert cluster.kubectl("get", "deployment", RELEASE, "-n", NAMESPACE, check=False).returncode
    # ...but not the CRDs (templated with helm.sh/resource-policy: keep), so templates and their
    # workloads stay.
    for crd in (
        "modeltemplates.launch.modelops.dev",
        "models.launch.modelops.dev",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    ):
        cluster.kubectl("get", "crd", crd)
    assert _objects(cluster) == before
