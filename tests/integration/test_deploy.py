"""deploy/: what `kubectl apply -k deploy/` installs, and proof that its RBAC is enough and no more.

The operator runs as a local process whose only credential is a token of the deploy/
ServiceAccount, so every call it makes is authorised by deploy/'s ClusterRole alone. It must
bring every sample in deploy/samples to Ready (the ASYNC one to Ready=False/BrokerNotConfigured)
with peering on, prune and release templates, and log no 403 on the way.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from _helpers_deploy import (
    ASYNC_SAMPLE,
    DEPLOY,
    NAMESPACE,
    PEERED_CRDS,
    REPO,
    SA_USER,
    SAMPLES,
    SERVICE_ACCOUNT,
    Operator,
    Replicas,
    find,
    kustomize,
    ready_condition,
    service_account_kubeconfig,
    templates_in,
    wait_for,
    wait_for_samples,
    write_overlay,
)
from support.manifests import KEDA_CRD

from devtools.localcluster.cluster import wait_established
from modeltemplate_operator.api.crdgen import crd_filename
from modeltemplate_operator.api.kinds import OWNERS
from modeltemplate_operator.plan.config import OperatorConfig

SAMPLE_NS = f"deploy-samples-{uuid.uuid4().hex[:6]}"
GATEWAY_ACCOUNT = "modeltemplate-gateway"

#: The whole grant of deploy/'s RBAC: (apiGroup, resource, resourceNames) -> verbs.
EXPECTED_RULES = {
    ("launch.modelops.dev", "modeltemplates", ()): {"list", "watch"},
    ("launch.modelops.dev", "modeltemplates/status", ()): {"patch"},
    ("launch.modelops.dev", "modeltemplates/finalizers", ()): {"update"},
    ("launch.modelops.dev", "models", ()): {"list", "watch", "create"},  # fine-tuning outputs
    ("launch.modelops.dev", "models/status", ()): {"patch"},
    ("launch.modelops.dev", "models/finalizers", ()): {"update"},
    ("launch.modelops.dev", "modeldeployments", ()): {"list", "watch"},
    ("launch.modelops.dev", "modeldeployments/status", ()): {"patch"},
    ("launch.modelops.dev", "modeldeployments/finalizers", ()): {"update"},
    ("launch.modelops.dev", "finetuningjobs", ()): {"list", "watch"},
    ("launch.modelops.dev", "finetuningjobs/status", ()): {"patch"},
    ("launch.modelops.dev", "finetuningjobs/finalizers", ()): {"update"},
    # A fine-tuning job's configuration file (get: a ConfigMap dataset's rows are checked).
    ("", "configmaps", ()): {"get", "list", "watch", "create", "patch", "delete"},
    ("apps", "deployments", ()): {"list", "watch", "create", "patch", "delete"},
    ("", "services", ()): {"list", "watch", "create", "patch", "delete"},
    ("autoscaling", "horizontalpodautoscalers", ()): {"list", "watch", "create", "patch", "delete"},
    ("policy", "poddisruptionbudgets", ()): {"list", "watch", "create", "patch", "delete"},
    ("batch", "jobs", ()): {"list", "watch", "create", "patch", "delete"},
    ("keda.sh", "scaledobjects", ()): {"list", "watch", "create", "patch", "delete"},
    ("", "pods", ()): {"list", "watch"},
    ("", "events", ()): {"create", "list"},  # list: a Job's FailedCreate Events
    ("apiextensions.k8s.io", "customresourcedefinitions", ()): {"list", "watch"},
    ("kopf.dev", "clusterkopfpeerings", ()): {"list", "watch", "create"},
    ("kopf.dev", "clusterkopfpeerings", ("modeltemplate-operator",)): {"patch"},
}


def _rules_of(cluster, user: str, namespace: str) -> set[tuple[str, str, tuple[str, ...], str]]:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace},
    }
    out = cluster.kubectl(
        "create",
        f"--as={user}",
        "--validate=false",
        "-o",
        "json",
        "-f",
        "-",
        input=json.dumps(review),
    ).stdout
    rules = set()
    for rule in json.loads(out)["status"]["resourceRules"]:
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                for verb in rule["verbs"]:
                    rules.add(
                        (group, resource, tuple(sorted(rule.get("resourceNames") or [])), verb)
                    )
    return rules


# -- rendering: structural checks of `kubectl kustomize deploy/` -------------------------------------
@pytest.fixture(scope="module")
def rendered(cluster):
    return kustomize(cluster, DEPLOY)


def test_kustomize_output_is_stable(cluster, rendered):
    assert kustomize(cluster, DEPLOY) == rendered
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in rendered)
    config_map = find(rendered, "ConfigMap")["metadata"]["name"]
    assert config_map.startswith("modeltemplate-operator-config-")  # content hash: edits roll out
    assert kinds == sorted(
        [
            f"ConfigMap/{config_map}",
            "ClusterRole/modeltemplate-operator",
            "ClusterRoleBinding/modeltemplate-operator",
            "CustomResourceDefinition/clusterkopfpeerings.kopf.dev",
            "CustomResourceDefinition/kopfpeerings.kopf.dev",
            *(f"CustomResourceDefinition/{owner.crd_name}" for owner in OWNERS),
            "Deployment/modeltemplate-operator",
            "Namespace/modeltemplate-system",
            "PodDisruptionBudget/modeltemplate-operator",
            "PriorityClass/modeltemplate-default-priority",
            "PriorityClass/modeltemplate-high-priority",
            "Service/modeltemplate-operator",
            "ServiceAccount/modeltemplate-operator",
            "ClusterRole/modeltemplate-gateway",
            "ClusterRole/modeltemplate-editor",
            "ClusterRole/modeltemplate-viewer",
            "ClusterRoleBinding/modeltemplate-gateway",
            "Deployment/modeltemplate-gateway",
            "PodDisruptionBudget/modeltemplate-gateway",
            "Service/modeltemplate-gateway",
            "ServiceAccount/modeltemplate-gateway",
        ]
    )
    cluster_scoped = {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "PriorityClass",
    }
    for doc in rendered:
        if doc["kind"] not in cluster_scoped:
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]


def test_crds_and_priority_classes_come_from_their_sources(rendered):
    """The CRD is crds/'s generated file and the base files are used as they are (not copies)."""
    sources = [
        *(REPO / "crds" / crd_filename(owner) for owner in OWNERS),
        DEPLOY / "base" / "kopf-peering-crds.yaml",
        DEPLOY / "base" / "priorityclasses.yaml",
    ]
    for source in sources:
        for want in (d for d in yaml.safe_load_all(source.read_text()) if d):
            got = find(rendered, want["kind"], want["metadata"]["name"])
            assert {k: v for k, v in got.items() if k != "metadata"} == {
                k: v for k, v in want.items() if k != "metadata"
            }, source


def _hardened_container(deployment: dict, service_account: str) -> dict:
    """The one container of a 2-replica, non-root, read-only, capability-free Deployment."""
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == service_account
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    return container


def test_operator_deployment_is_hardened_and_peered(rendered):
    deployment = find(rendered, "Deployment", "modeltemplate-operator")
    container = _hardened_container(deployment, SERVICE_ACCOUNT)
    pod = deployment["spec"]["template"]["spec"]
    assert "--standalone" not in container["args"]  # two replicas: peering elects the active one
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert ports["health"] == 8080
    # The config file the operator reads is the mounted (hash-named) ConfigMap.
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert env["MODELTEMPLATE_CONFIG_FILE"] == f"{mounts['config']}/config.yaml"
    assert volumes["config"]["configMap"]["name"] == find(rendered, "ConfigMap")["metadata"]["name"]
    assert mounts["tmp"] == "/tmp" and "emptyDir" in volumes["tmp"]
    # The Service reaches the pods' health port.
    service = find(rendered, "Service", "modeltemplate-operator")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "health"
    pdb = find(rendered, "PodDisruptionBudget", "modeltemplate-operator")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_gateway_deployment_is_hardened_and_reachable(rendered):
    deployment = find(rendered, "Deployment", "modeltemplate-gateway")
    container = _hardened_container(deployment, GATEWAY_ACCOUNT)
    assert container["command"] == ["modeltemplate-gateway"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = find(rendered, "Service", "modeltemplate-gateway")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pdb = find(rendered, "PodDisruptionBudget", "modeltemplate-gateway")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    operator = find(rendered, "Deployment", "modeltemplate-operator")
    assert container["image"] == operator["spec"]["template"]["spec"]["containers"][0]["image"]


def test_operator_config_is_accepted_by_the_operator(rendered):
    raw = yaml.safe_load(find(rendered, "ConfigMap")["data"]["config.yaml"])
    config = OperatorConfig.from_sources(raw, {})
    assert (config.gpu_preset, config.mig_strategy) == ("launch", "mixed")
    image = find(rendered, "Deployment", "modeltemplate-operator")["spec"]["template"]["spec"][
        "containers"
    ][0]["image"]
    assert config.forwarder_image == image  # the sidecar comes from the operator's image
    priority_classes = {d["metadata"]["name"] for d in rendered if d["kind"] == "PriorityClass"}
    assert {config.priority_class_high, config.priority_class_default} == priority_classes


def test_image_override_also_moves_the_forwarder_image(cluster, tmp_path):
    overlay = write_overlay(
        tmp_path / "overlay",
        images=[
            {
                "name": "ghcr.io/modelops-dev/modeltemplate-operator",
                "newName": "registry.local/mto",
                "newTag": "ci",
            }
        ],
        replacements=yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["replacements"],
    )
    docs = kustomize(cluster, overlay)
    assert (
        find(docs, "Deployment", "modeltemplate-operator")["spec"]["template"]["spec"][
            "containers"
        ][0]["image"]
        == "registry.local/mto:ci"
    )
    gateway = find(docs, "Deployment", "modeltemplate-gateway")
    assert gateway["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/mto:ci"
    config = yaml.safe_load(find(docs, "ConfigMap")["data"]["config.yaml"])
    assert config["forwarderImage"] == "registry.local/mto:ci"


def test_overlay_image_alone_leaves_the_forwarder_image(cluster, tmp_path):
    """What deploy/kustomization.yaml's header says: without the replacements repeated, an
    overlay's image does not reach forwarderImage (deploy/'s replacements ran before)."""
    images = [{"name": "ghcr.io/modelops-dev/modeltemplate-operator", "newTag": "ci"}]
    docs = kustomize(cluster, write_overlay(tmp_path / "overlay", images=images))
    image = find(docs, "Deployment", "modeltemplate-operator")["spec"]["template"]["spec"][
        "containers"
    ][0]["image"]
    config = yaml.safe_load(find(docs, "ConfigMap")["data"]["config.yaml"])
    assert image.endswith(":ci") and config["forwarderImage"].endswith(":0.1.0")


def test_rbac_has_no_wildcards_and_binds_only_the_service_account(rendered):
    roles = {d["metadata"]["name"]: d for d in rendered if d["kind"] in ("ClusterRole", "Role")}
    assert sorted(roles) == [
        "modeltemplate-editor",
        "modeltemplate-gateway",
        "modeltemplate-operator",
        "modeltemplate-viewer",
    ]
    # Roles for users of templates: bound per namespace by admins, never by deploy/ itself.
    for name, verbs in (
        ("modeltemplate-editor", ["get", "list", "watch", "create", "update", "patch", "delete"]),
        ("modeltemplate-viewer", ["get", "list", "watch"]),
    ):
        assert roles[name]["rules"] == [
            {
                "apiGroups": ["launch.modelops.dev"],
                "resources": ["modeltemplates", "models", "modeldeployments", "finetuningjobs"],
                "verbs": verbs,
            }
        ]
    # The gateway's own role: its watch caches, nothing more (callers act with their own keys).
    assert roles["modeltemplate-gateway"]["rules"] == [
        {
            "apiGroups": ["launch.modelops.dev"],
            "resources": ["modeltemplates", "models", "modeldeployments"],
            "verbs": ["list", "watch"],
        }
    ]
    granted = {}
    for rule in roles["modeltemplate-operator"]["rules"]:
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert "*" not in rule.get(field, []), rule
        assert "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                key = (group, resource, tuple(rule.get("resourceNames", [])))
                granted.setdefault(key, set()).update(rule["verbs"])
    assert granted == EXPECTED_RULES
    bindings = [d for d in rendered if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert sorted((b["roleRef"]["name"], b["subjects"]) for b in bindings) == [
        (
            "modeltemplate-gateway",
            [{"kind": "ServiceAccount", "name": GATEWAY_ACCOUNT, "namespace": NAMESPACE}],
        ),
        (
            "modeltemplate-operator",
            [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}],
        ),
    ]


def test_creator_identity_component_is_off_by_default(cluster, rendered, tmp_path):
    assert not [d for d in rendered if "AdmissionPolicy" in d["kind"]]
    docs = kustomize(
        cluster,
        write_overlay(tmp_path / "with-identity", components=["components/creator-identity"]),
    )
    policies = sorted(d["kind"] for d in docs if "AdmissionPolicy" in d["kind"])
    assert policies == [
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    assert len(docs) == len(rendered) + 4


def test_model_components_are_off_by_default_and_build(cluster, rendered, tmp_path):
    """template-in-use (deleting a template that has models is refused) and model-admission
    (a Model checked against its template at apply time) build on top of deploy/."""
    from modeltemplate_operator.admission import PATH

    kinds = {d["kind"] for d in rendered}
    assert not kinds & {"ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy"}
    docs = kustomize(
        cluster,
        write_overlay(
            tmp_path / "models",
            components=["components/template-in-use", "components/model-admission"],
        ),
    )
    added = [d for d in docs if d not in rendered]
    policy = find(added, "ValidatingAdmissionPolicy")
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["operations"] == ["DELETE"]
    webhook = find(added, "ValidatingWebhookConfiguration")
    (hook,) = webhook["webhooks"]
    service = hook["clientConfig"]["service"]
    assert service["path"] == PATH and service["namespace"] == NAMESPACE
    assert hook["rules"][0]["resources"] == ["models"] and hook["failurePolicy"] == "Ignore"
    certificate = find(added, "Certificate")
    ca_from = webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert ca_from == f"{NAMESPACE}/{certificate['metadata']['name']}"
    assert find(added, "Service")["metadata"]["name"] == service["name"]
    role = find(added, "ClusterRole")
    assert role["rules"] == [
        {"apiGroups": ["launch.modelops.dev"], "resources": ["modeltemplates"], "verbs": ["get"]}
    ]


# -- on the API server ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deployed(cluster):
    """deploy/ applied server-side twice: the generations seen after each apply, and what
    `kubectl diff` says after the second."""
    generations = []
    for _ in range(2):
        cluster.kubectl("apply", "--server-side", "-k", str(DEPLOY))
        items = json.loads(cluster.kubectl("get", "-k", str(DEPLOY), "-o", "json").stdout)["items"]
        generations.append(
            {f"{i['kind']}/{i['metadata']['name']}": i["metadata"].get("generation") for i in items}
        )
    wait_established(cluster, *PEERED_CRDS)
    diff = cluster.kubectl("diff", "--server-side", "-k", str(DEPLOY), check=False)
    # The in-cluster replicas stand down: on a cluster that can pull the image (kind) they
    # would be peers of the operator process the tests run, with the same priority.
    cluster.kubectl(
        "scale",
        "deployment/modeltemplate-operator",
        "deployment/modeltemplate-gateway",
        "-n",
        NAMESPACE,
        "--replicas=0",
    )
    return generations, diff


def test_apply_server_side_is_idempotent(deployed):
    (first, second), diff = deployed
    assert first == second and len(first) == 20 + len(OWNERS)  # and one CRD per owner kind
    assert diff.returncode == 0, diff.stdout + diff.stderr  # 0: no difference


def test_rbac_grants_exactly_the_listed_rules(cluster, deployed):
    """What the ServiceAccount may do beyond any ServiceAccount's defaults is EXPECTED_RULES."""
    cluster.kubectl("create", "serviceaccount", "rbac-baseline", "-n", NAMESPACE, check=False)
    for namespace in (NAMESPACE, "default"):
        extra = _rules_of(cluster, SA_USER, namespace) - _rules_of(
            cluster, f"system:serviceaccount:{NAMESPACE}:rbac-baseline", namespace
        )
        want = {(g, r, names, v) for (g, r, names), verbs in EXPECTED_RULES.items() for v in verbs}
        assert extra == want, namespace


def test_gateway_rbac_grants_only_its_watch_caches(cluster, deployed):
    """The gateway's own ServiceAccount may list and watch templates, models and model
    deployments, nothing else: whatever it does for a caller is done with the caller's token
    (tests/integration/test_gateway.py runs it with this ServiceAccount's token alone)."""
    cluster.kubectl("create", "serviceaccount", "rbac-baseline", "-n", NAMESPACE, check=False)
    gateway = f"system:serviceaccount:{NAMESPACE}:{GATEWAY_ACCOUNT}"
    for namespace in (NAMESPACE, "default"):
        extra = _rules_of(cluster, gateway, namespace) - _rules_of(
            cluster, f"system:serviceaccount:{NAMESPACE}:rbac-baseline", namespace
        )
        assert extra == {
            ("launch.modelops.dev", resource, (), verb)
            for resource in ("modeltemplates", "models", "modeldeployments")
            for verb in ("list", "watch")
        }, namespace


@pytest.mark.parametrize(
    "args",
    [
        ("get", "secrets", "-n", NAMESPACE),
        ("list", "secrets", "--all-namespaces"),
        ("watch", "secrets", "-n", "default"),
        ("delete", "namespaces"),
        ("create", "namespaces"),
        ("create", "pods", "-n", "default"),
        ("delete", "pods", "-n", "default"),
        ("create", "pods/exec", "-n", "default"),
        ("get", "pods/log", "-n", "default"),
        ("update", "deployments.apps", "-n", "default"),
        ("get", "deployments.apps", "-n", "default"),
        ("create", "modeltemplates.launch.modelops.dev", "-n", "default"),
        ("update", "modeltemplates.launch.modelops.dev", "-n", "default"),
        ("delete", "modeltemplates.launch.modelops.dev", "-n", "default"),
        ("patch", "customresourcedefinitions.apiextensions.k8s.io"),
        (
            "get",
            "customresourcedefinitions.apiextensions.k8s.io/modeltemplates.launch.modelops.dev",
        ),
        ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
        ("get", "customresourcedefinitions.apiextensions.k8s.io/scaledobjects.keda.sh"),
        ("patch", "clusterkopfpeerings.kopf.dev/someone-else"),
        ("delete", "clusterkopfpeerings.kopf.dev/modeltemplate-operator"),
        ("create", "kopfpeerings.kopf.dev", "-n", NAMESPACE),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        ("bind", "clusterroles.rbac.authorization.k8s.io"),
        ("escalate", "clusterroles.rbac.authorization.k8s.io"),
        ("impersonate", "users"),
        ("create", "serviceaccounts/token", "-n", NAMESPACE),
        ("patch", "nodes"),
        ("create", "mutatingwebhookconfigurations.admissionregistration.k8s.io"),
        ("create", "leases.coordination.k8s.io", "-n", NAMESPACE),
    ],
    ids=lambda a: " ".join(a),
)
def test_rbac_denies(cluster, deployed, args):
    result = cluster.kubectl("auth", "can-i", *args, f"--as={SA_USER}", check=False)
    assert result.returncode != 0 and result.stdout.strip() == "no", result.stdout + result.stderr


@pytest.fixture(scope="module")
def operator(cluster, deployed, rendered, tmp_path_factory):
    """The operator as the deploy/ ServiceAccount, with the deploy/ ConfigMap, peering on,
    and every sample applied in its own namespace."""
    work = tmp_path_factory.mktemp("deploy-operator")
    config_file = work / "config.yaml"
    config_file.write_text(find(rendered, "ConfigMap")["data"]["config.yaml"])
    kubeconfig = service_account_kubeconfig(cluster, work / "kubeconfig")
    cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(KEDA_CRD))
    wait_established(cluster, "scaledobjects.keda.sh")
    cluster.kubectl("create", "namespace", SAMPLE_NS, check=False)
    # No stale peers of earlier runs (they would pause this one until they expire); the
    # operator creates the peering object again at start-up, under its RBAC.
    cluster.kubectl("delete", "clusterkopfpeering", "modeltemplate-operator", "--ignore-not-found")
    # Two replicas, as deploy/ runs them: peering makes one act and the other stand by.
    proc = Replicas(
        [Operator(kubeconfig, config_file, work / f"operator-{n}.log") for n in range(2)]
    )
    try:
        for sample in SAMPLES:
            cluster.kubectl("apply", "-n", SAMPLE_NS, "-f", str(sample))
        yield proc
    finally:
        proc.stop()
        artifacts = REPO / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        for n, replica in enumerate(proc.operators):
            (artifacts / f"deploy-operator-{n}.log").write_text(replica.log())
        cluster.kubectl("delete", "namespace", SAMPLE_NS, "--wait=false", check=False)
        # Gone before the next tests ask whether KEDA is installed.
        cluster.kubectl("delete", "crd", "scaledobjects.keda.sh", "--timeout=60s", check=False)


def _templates(cluster) -> dict[str, dict]:
    return templates_in(cluster, SAMPLE_NS)


def _assert_no_forbidden(operator: Replicas) -> None:
    lines = operator.forbidden_lines()
    assert not lines, (
        "forbidden calls:\n" + "\n".join(lines[:20]) + "\n--- log tail ---\n" + operator.tail()
    )


def test_operator_under_deploy_rbac_brings_every_sample_to_ready(cluster, operator):
    templates = wait_for_samples(cluster, SAMPLE_NS, operator)
    _assert_no_forbidden(operator)
    assert ready_condition(templates[ASYNC_SAMPLE])["status"] == "False"
    for name, template in templates.items():
        if name != ASYNC_SAMPLE:
            assert ready_condition(template)["status"] == "True", (name, template["status"])
    # Scale-from-zero samples got a KEDA ScaledObject (created under the same RBAC).
    scaled = json.loads(
        cluster.kubectl("get", "scaledobjects.keda.sh", "-n", SAMPLE_NS, "-o", "json").stdout
    )
    assert [s["metadata"]["name"] for s in scaled["items"]] == ["qwen2-5-1-5b-mig-1g20gb"]
    # Peering is on: the operator keeps its ClusterKopfPeering.
    peering = json.loads(
        cluster.kubectl("get", "clusterkopfpeering", "modeltemplate-operator", "-o", "json").stdout
    )
    assert peering["status"], peering
    # The liveness endpoint the Deployment probes answers.
    # Both replicas list themselves in it, and the liveness endpoint the Deployment probes
    # answers on each (the standby is alive too).
    assert len(peering["status"]) == 2, peering["status"]
    for replica in operator.operators:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{replica.port}/healthz", timeout=5
        ) as response:
            assert response.status == 200


def test_operator_under_deploy_rbac_prunes_and_releases(cluster, operator):
    # Fixed workers: the HorizontalPodAutoscaler is pruned (delete).
    patch = {
        "spec": {"vendorConfiguration": {"endpointConfig": {"minWorkers": 2, "maxWorkers": 2}}}
    }
    cluster.kubectl(
        "patch",
        "modeltemplate",
        "minilm-reranker-cpu",
        "-n",
        SAMPLE_NS,
        "--type=merge",
        "-p",
        json.dumps(patch),
    )
    wait_for(
        lambda: (
            cluster.kubectl(
                "get", "hpa", "minilm-reranker-cpu", "-n", SAMPLE_NS, check=False
            ).returncode
            != 0
        ),
        timeout=30,
        what="the HPA of minilm-reranker-cpu to be pruned",
    )
    # Deletion: no finalizer holds the template; its children go by garbage collection.
    cluster.kubectl(
        "delete", "modeltemplate", "bge-base-embeddings-t4", "-n", SAMPLE_NS, "--wait=false"
    )
    wait_for(
        lambda: "bge-base-embeddings-t4" not in _templates(cluster),
        timeout=30,
        what="bge-base-embeddings-t4 to be deleted",
    )
    _assert_no_forbidden(operator)


def test_operator_log_has_no_forbidden_call(cluster, operator):
    """Last: every template deleted, then the whole run, start-up and
    shutdown included, never hit a 403."""
    cluster.kubectl("delete", "modeltemplates", "--all", "-n", SAMPLE_NS, "--timeout=60s")
    assert operator.stop() == [0, 0], operator.tail()
    _assert_no_forbidden(operator)


def test_creator_identity_validating_policy(cluster, namespace, tmp_path):
    """The GA half of the component: forged or changed creator annotations are refused.
    (Its MutatingAdmissionPolicy needs a beta API this control plane does not serve.)"""
    docs = [
        d
        for d in kustomize(
            cluster,
            write_overlay(tmp_path / "identity", components=["components/creator-identity"]),
        )
        if d["kind"].startswith("ValidatingAdmissionPolicy")
    ]
    binding = find(docs, "ValidatingAdmissionPolicyBinding")
    policy_name = f"modeltemplate-creator-identity-{namespace}"
    find(docs, "ValidatingAdmissionPolicy")["metadata"]["name"] = policy_name
    binding["metadata"]["name"] = policy_name
    binding["spec"]["policyName"] = policy_name
    # Only this test's namespace: other tests set these annotations freely.
    binding["spec"]["matchResources"] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    }
    cluster.kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
    )
    try:
        me = json.loads(cluster.kubectl("auth", "whoami", "-o", "json").stdout)["status"][
            "userInfo"
        ]["username"]
        sample = yaml.safe_load((DEPLOY / "samples" / "reranker-cpu.yaml").read_text())

        def create(name, annotations):
            body = {
                **sample,
                "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            }
            return cluster.kubectl("create", "-f", "-", input=json.dumps(body), check=False)

        forged = {"launch.modelops.dev/created-by-user-id": "someone-else"}
        probes = iter(range(1000))
        wait_for(
            lambda: create(f"probe-{next(probes)}", forged).returncode != 0,
            timeout=30,
            what="the policy to take effect",
        )
        refused = create("forged", forged)
        assert refused.returncode != 0 and "must be the creating identity" in refused.stderr, (
            refused.stderr
        )
        honest = {
            "launch.modelops.dev/created-by-user-id": me,
            "launch.modelops.dev/created-by-identity-type": "user",
        }
        assert create("honest", honest).returncode == 0
        changed = cluster.kubectl(
            "annotate",
            "modeltemplate",
            "honest",
            "-n",
            namespace,
            "--overwrite",
            "launch.modelops.dev/created-by-user-id=mallory",
            check=False,
        )
        assert changed.returncode != 0 and "cannot be changed" in changed.stderr, changed.stderr
    finally:
        cluster.kubectl(
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            policy_name,
            check=False,
        )


def test_samples_apply_with_kubectl(cluster, deployed, namespace):
    """What users run: every sample applies as it is (server-side dry run)."""
    result = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-n", namespace, "-f", str(DEPLOY / "samples")
    )
    assert result.stdout.count("serverside-applied") == len(SAMPLES), result.stdout


def test_samples_dir_is_plain_manifests():
    """deploy/samples has no kustomization: `kubectl apply -f deploy/samples/` applies it."""
    assert not list(Path(DEPLOY / "samples").glob("kustomization*"))
