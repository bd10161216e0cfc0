"""Models on the real control plane: made from their template with their creation parameters,
checked against the template's schema, following the template's changes and surviving its loss."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from pathlib import Path

import pytest
import yaml
from support.k8s import apply_list, apply_quota, get_json, wait_for
from support.manifests import tiny_template

from modeltemplate_operator.api import kinds

pytestmark = pytest.mark.integration
MODEL = kinds.MODEL
SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
TYPES = {"str": "text", "int": 3, "float": 0.5, "bool": True, "list": [1, "a"], "dict": {"k": 1}}
#: A value of the wrong type for each parameter type.
WRONG = {"str": 7, "int": "seven", "float": "half", "bool": "yes", "list": {"a": 1}, "dict": [1]}


def model(name: str, template: str, **spec) -> dict:
    return {
        "apiVersion": "launch.modelops.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {"templateRef": {"name": template}, **spec},
    }


def typed_template(name: str, **endpoint) -> dict:
    """A CPU template with one required creation parameter of every type: a pure template."""
    doc = tiny_template(name, **endpoint)
    doc["spec"]["vendorConfiguration"]["bundleConfig"]["command"] = [
        "serve",
        "--name=$(MODEL_PARAM_P_STR)",
        "--n=$(MODEL_PARAM_P_INT)",
    ]
    doc["spec"]["modelCreationParametersSchema"] = {
        "parameters": [{"name": f"p_{t}", "type": t, "required": True} for t in TYPES]
    }
    return doc


def valid_values() -> dict:
    return {f"p_{t}": value for t, value in TYPES.items()}


def ready(obj: dict) -> dict:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), {})


def condition_of(cluster, namespace, resource, name, ctype="Ready") -> dict:
    obj = get_json(cluster, resource, name, "-n", namespace)
    return next(
        (c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), {}
    )


def wait_condition(cluster, namespace, resource, name, status, reason=None, timeout=60):
    def met():
        c = condition_of(cluster, namespace, resource, name)
        return c.get("status") == status and (reason is None or c.get("reason") == reason)

    wait_for(met, timeout=timeout, what=f"{resource}/{name} Ready={status} {reason or ''}")
    return get_json(cluster, resource, name, "-n", namespace)


def owned_children(cluster, namespace, kind: str, name: str) -> set[str]:
    out = set()
    for resource in ("deployments", "services", "horizontalpodautoscalers", "poddisruptionbudgets"):
        for item in get_json(cluster, resource, "-n", namespace)["items"]:
            refs = item["metadata"].get("ownerReferences") or []
            if any(r["kind"] == kind and r["name"] == name for r in refs):
                out.add(f"{item['kind']}/{item['metadata']['name']}")
    return out


def main_container(cluster, namespace, name) -> dict:
    deployment = get_json(cluster, "deployment", name, "-n", namespace)
    return next(
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "main"
    )


def expand(args: list[str], env: dict[str, str]) -> list[str]:
    """``$(VAR)`` in a container's command as the kubelet expands it (defined variables only)."""
    return [
        re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), a) for a in args
    ]


def test_samples_a_pure_template_and_two_models_made_from_it(cluster, operator, namespace):
    cluster.kubectl("apply", "-n", namespace, "-f", str(SAMPLES / "vllm-family-h100.yaml"))
    cluster.kubectl("apply", "-n", namespace, "-f", str(SAMPLES / "models"))
    template = wait_condition(
        cluster, namespace, "modeltemplate", "vllm-h100", "True", "PureTemplate"
    )
    assert "model_name, hf_repo, tensor_parallel_size" in ready(template)["message"]
    assert owned_children(cluster, namespace, "ModelTemplate", "vllm-h100") == set()

    docs = list(yaml.safe_load_all((SAMPLES / "models" / "vllm-h100-models.yaml").read_text()))
    for doc in docs:
        name, params = doc["metadata"]["name"], doc["spec"]["creationParameters"]
        got = wait_condition(cluster, namespace, "model", name, "True", timeout=90)
        status = got["status"]
        assert status["id"] == got["metadata"]["uid"]
        assert status["modelTemplateId"] == template["metadata"]["uid"]
        assert status["templateGeneration"] == template["metadata"]["generation"]
        assert status["accountId"] == namespace
        assert status["endpointUrl"] == (f"http://{name}.{namespace}.svc.cluster.local/predict")
        children = owned_children(cluster, namespace, "Model", name)
        assert {"Deployment/" + name, "Service/" + name, "PodDisruptionBudget/" + name} <= children
        main = main_container(cluster, namespace, name)
        env = {e["name"]: e.get("value") for e in main["env"]}
        assert env["MODEL_PARAM_MODEL_NAME"] == params["model_name"]
        assert env["MODEL_PARAM_HF_REPO"] == params["hf_repo"]
        assert env["MODEL_PARAM_TENSOR_PARALLEL_SIZE"] == "1"
        assert json.loads(env["MODEL_PARAMS"]) == params
        command = expand(main["command"] + main.get("args", []), env)
        assert ["--model", params["hf_repo"]] == command[command.index("--model") :][:2]
        assert "--served-model-name" in command and params["model_name"] in command
        assert not [a for a in command if "$(" in a], command
        pods = get_json(
            cluster, "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={name}"
        )
        assert pods["items"] and all(
            p["metadata"]["labels"]["app.kubernetes.io/name"] == "model" for p in pods["items"]
        )
    # The override reached the second model only: an HPA between 1 and 2 workers.
    hpa = get_json(cluster, "hpa", "qwen2-5-7b-instruct", "-n", namespace)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 2)
    assert "HorizontalPodAutoscaler/llama-3-1-8b-instruct" not in owned_children(
        cluster, namespace, "Model", "llama-3-1-8b-instruct"
    )


def test_each_bad_parameter_set_is_named_and_renders_nothing(cluster, operator, namespace):
    apply_list(cluster, namespace, [typed_template("typed")])
    wait_condition(cluster, namespace, "modeltemplate", "typed", "True", "PureTemplate")
    cases: dict[str, tuple[dict, list[str]]] = {
        "missing": (
            {k: v for k, v in valid_values().items() if k != "p_int"},
            ["spec.creationParameters.p_int: required parameter is missing"],
        ),
    }
    for t in TYPES:
        values = valid_values() | {f"p_{t}": WRONG[t]}
        cases[f"wrong-{t}"] = (values, [f"spec.creationParameters.p_{t}: must be of type {t}"])
    models = [
        model(name, "typed", creationParameters=values) for name, (values, _) in cases.items()
    ]
    models.append(model("no-template", "does-not-exist", creationParameters=valid_values()))
    models.append(
        model("contradiction", "typed", creationParameters=valid_values(), modelType="EMBEDDING")
    )
    apply_list(cluster, namespace, models)
    for name, (_, expected) in cases.items():
        got = wait_condition(cluster, namespace, "model", name, "False", "InvalidParameters")
        valid = condition_of(cluster, namespace, "model", name, "Valid")
        assert valid["status"] == "False"
        for text in expected:
            assert text in valid["message"], (name, valid["message"])
        # Exactly the one bad parameter is named.
        assert valid["message"].count("spec.creationParameters.") == 1, valid["message"]
        assert got["status"]["observedGeneration"] == got["metadata"]["generation"]
    missing = wait_condition(cluster, namespace, "model", "no-template", "False", "TemplateMissing")
    assert (
        "spec.templateRef.name: ModelTemplate 'does-not-exist' not found"
        in ready(missing)["message"]
    )
    wait_condition(cluster, namespace, "model", "contradiction", "False", "InvalidParameters")
    assert (
        "spec.modelType"
        in condition_of(cluster, namespace, "model", "contradiction", "Valid")["message"]
    )
    for name in [*cases, "no-template", "contradiction"]:
        assert owned_children(cluster, namespace, "Model", name) == set(), name
    # A valid model of the same template runs, with every value in its env.
    apply_list(cluster, namespace, [model("good", "typed", creationParameters=valid_values())])
    wait_condition(cluster, namespace, "model", "good", "True", timeout=90)
    env = {e["name"]: e.get("value") for e in main_container(cluster, namespace, "good")["env"]}
    assert env["MODEL_PARAM_P_LIST"] == '[1,"a"]' and env["MODEL_PARAM_P_BOOL"] == "true"
    assert env["MODEL_PARAM_P_DICT"] == '{"k":1}' and env["MODEL_PARAM_P_FLOAT"] == "0.5"


def test_a_template_change_reaches_its_models_and_its_loss_leaves_them_running(
    cluster, operator, namespace
):
    template = typed_template("base")
    apply_list(cluster, namespace, [template])
    apply_list(
        cluster,
        namespace,
        [model(f"m{i}", "base", creationParameters=valid_values()) for i in range(2)],
    )
    for i in range(2):
        wait_condition(cluster, namespace, "model", f"m{i}", "True", timeout=90)
    bundle = template["spec"]["vendorConfiguration"]["bundleConfig"]
    bundle["tag"] = "2"
    apply_list(cluster, namespace, [template])
    generation = get_json(cluster, "modeltemplate", "base", "-n", namespace)["metadata"][
        "generation"
    ]

    def on_new_generation():
        for i in range(2):
            got = get_json(cluster, "model", f"m{i}", "-n", namespace)
            if got["status"].get("templateGeneration") != generation:
                return False
            if main_container(cluster, namespace, f"m{i}")["image"] != "docker.io/modelops/tiny:2":
                return False
        return True

    wait_for(on_new_generation, timeout=90, what="models on the template's new generation")

    # The template goes: the models report it and keep their workers.
    cluster.kubectl("delete", "modeltemplate", "base", "-n", namespace)
    for i in range(2):
        gone = wait_condition(cluster, namespace, "model", f"m{i}", "False", "TemplateMissing")
        assert gone["status"]["templateGeneration"] == generation
        assert f"Deployment/m{i}" in owned_children(cluster, namespace, "Model", f"m{i}")
    # Back again: the models are Ready on it.
    template["metadata"].pop("resourceVersion", None)
    apply_list(cluster, namespace, [template])
    for i in range(2):
        wait_condition(cluster, namespace, "model", f"m{i}", "True", timeout=90)
    # A model deleted takes its workload with it (garbage collection of owned children).
    cluster.kubectl("delete", "model", "m0", "-n", namespace)
    wait_for(
        lambda: owned_children(cluster, namespace, "Model", "m0") == set(),
        timeout=60,
        what="m0's children collected",
    )


def _arrived(model: dict, generation: int) -> bool:
    """Is the model Ready on its template's ``generation``?"""
    on_generation = (model.get("status") or {}).get("templateGeneration") == generation
    return on_generation and ready(model).get("status") == "True"


def _family(cluster, namespace, name: str) -> tuple[dict, list[str]]:
    """A pure template and three Ready models made from it."""
    template = typed_template(name)
    names = [f"{name}-{x}" for x in "abc"]
    apply_list(cluster, namespace, [template])
    apply_list(
        cluster, namespace, [model(n, name, creationParameters=valid_values()) for n in names]
    )
    for n in names:
        wait_condition(cluster, namespace, "model", n, "True", timeout=90)
    return template, names


class History:
    """Every version of the namespace's Deployments and Models, from two watches."""

    def __init__(self, api_client, namespace: str) -> None:
        from kubernetes import client, watch

        custom = client.CustomObjectsApi(api_client)
        listers = [
            (client.AppsV1Api(api_client).list_namespaced_deployment, (namespace,)),
            (
                custom.list_namespaced_custom_object,
                (MODEL.group, MODEL.version, namespace, MODEL.plural),
            ),
        ]
        self.objects: list[dict] = []
        self._watches = [watch.Watch() for _ in listers]
        self._threads = [
            threading.Thread(target=self._run, args=(w, *lister), daemon=True)
            for w, lister in zip(self._watches, listers, strict=True)
        ]
        for t in self._threads:
            t.start()

    def _run(self, w, lister, args) -> None:
        with contextlib.suppress(Exception):  # the stream ends with the test
            for event in w.stream(lister, *args, timeout_seconds=600):  # > the waits below
                self.objects.append(event["raw_object"])

    def stop(self) -> None:
        for w in self._watches:
            w.stop()

    def _in_write_order(self) -> list[dict]:
        """The versions in the order the API server wrote them: the resourceVersions of one
        etcd are its revision numbers (opaque to clients in general; this test runs its own
        etcd)."""
        return sorted(self.objects, key=lambda o: int(o["metadata"]["resourceVersion"]))

    def moves(self, names: list[str], image: str, generation: int) -> tuple[list[str], int]:
        """The models in the order their workloads moved to ``image``, and how many at most ran
        ``image`` while not Ready on ``generation`` yet, over the whole history."""
        order, moving, arrived, most = [], set(), set(), 0
        for obj in self._in_write_order():
            name = obj["metadata"]["name"]
            if name not in names or name in arrived:
                continue  # arrived: its Deployment's later versions are not a move
            if obj["kind"] == "Deployment":
                if obj["spec"]["template"]["spec"]["containers"][0]["image"] == image:
                    moving.add(name)
                    if name not in order:
                        order.append(name)
            elif _arrived(obj, generation):
                moving.discard(name)
                arrived.add(name)
            most = max(most, len(moving))
        return order, most

    def arrived(self, generation: int) -> set[str]:
        """The models the watch has seen Ready on ``generation``."""
        return {
            o["metadata"]["name"]
            for o in list(self.objects)
            if o["kind"] == MODEL.kind and _arrived(o, generation)
        }

    def waited(self) -> bool:
        """Did a model say it waits for its turn?"""
        return any(
            c.get("type") == "UpToDate" and c.get("reason") == "WaitingForRollout"
            for obj in self.objects
            if obj["kind"] == MODEL.kind
            for c in (obj.get("status") or {}).get("conditions") or []
        )


def test_a_template_change_rolls_to_its_models_one_at_a_time(
    cluster, operator, namespace, api_client
):
    template, names = _family(cluster, namespace, "wave")
    wait_for(
        lambda: (
            (
                get_json(cluster, "modeltemplate", "wave", "-n", namespace)["status"].get("models")
                or {}
            ).get("ready")
            == 3
        ),
        what="the template counting its 3 models",
    )
    history = History(api_client, namespace)
    template["spec"]["vendorConfiguration"]["bundleConfig"]["tag"] = "2"
    apply_list(cluster, namespace, [template])
    generation = get_json(cluster, "modeltemplate", "wave", "-n", namespace)["metadata"][
        "generation"
    ]
    image = "docker.io/modelops/tiny:2"
    try:
        wait_for(  # both watches caught up: every model arrived, every workload seen moving
            lambda: (
                history.arrived(generation) == set(names)
                and set(history.moves(names, image, generation)[0]) == set(names)
            ),
            timeout=180,
            what="every model on the new generation",
        )
    finally:
        history.stop()
    order, most_in_flight = history.moves(names, image, generation)
    print(f"\nrollout order {order}, at most {most_in_flight} model(s) moving at once")
    assert order == names  # in name order
    assert most_in_flight == 1  # one moved at a time, and the history saw it move
    assert history.waited()

    def template_models():
        return get_json(cluster, "modeltemplate", "wave", "-n", namespace)["status"]["models"]

    try:
        wait_for(
            lambda: template_models() == {"total": 3, "updated": 3, "ready": 3},
            what="the template saying its rollout is done",
        )
    except AssertionError:
        raise AssertionError(template_models()) from None


def test_a_model_failing_on_the_new_generation_stops_the_wave(cluster, operator, namespace):
    template, names = _family(cluster, namespace, "stuck")
    # The new generation's pods are refused: they ask for more memory than the quota leaves.
    apply_quota(cluster, namespace, "memory", {"requests.memory": "10Gi"})
    template["spec"]["vendorConfiguration"]["endpointConfig"]["memory"] = "20Gi"
    apply_list(cluster, namespace, [template])
    failed = wait_condition(
        cluster, namespace, "model", "stuck-a", "False", "FailedCreate", timeout=90
    )
    generation = get_json(cluster, "modeltemplate", "stuck", "-n", namespace)["metadata"][
        "generation"
    ]
    assert failed["status"]["templateGeneration"] == generation

    def blocked():
        models = (
            get_json(cluster, "modeltemplate", "stuck", "-n", namespace)["status"].get("models")
            or {}
        )
        return models.get("rolloutBlockedBy") == "stuck-a" and models

    models = wait_for(blocked, what="the template naming the model that stopped the wave")
    assert models["outdated"] == ["stuck-b", "stuck-c"]
    for n in ("stuck-b", "stuck-c"):
        m = get_json(cluster, "model", n, "-n", namespace)
        assert m["status"]["templateGeneration"] == generation - 1
        assert ready(m)["status"] == "True"
        up_to_date = {c["type"]: c for c in m["status"]["conditions"]}["UpToDate"]
        assert "stopped at model stuck-a" in up_to_date["message"]
        resources = main_container(cluster, namespace, n)["resources"]
        assert resources["requests"]["memory"] == "128Mi"


def test_the_policy_refuses_deleting_a_template_that_has_models(cluster, operator, namespace):
    policy_file = (
        Path(__file__).resolve().parents[2]
        / "deploy/components/template-in-use/validating-policy.yaml"
    )
    policy, binding = yaml.safe_load_all(policy_file.read_text())
    suffix = namespace  # cluster-scoped objects of this test only, bound to its namespace
    policy["metadata"]["name"] += f"-{suffix}"
    binding["metadata"]["name"] += f"-{suffix}"
    binding["spec"]["policyName"] = policy["metadata"]["name"]
    binding["spec"]["matchResources"] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    }
    apply_list(cluster, namespace, [policy, binding])
    try:
        apply_list(cluster, namespace, [typed_template("kept")])
        apply_list(cluster, namespace, [model("user", "kept", creationParameters=valid_values())])
        wait_for(
            lambda: (
                (
                    get_json(cluster, "modeltemplate", "kept", "-n", namespace)["status"].get(
                        "models"
                    )
                    or {}
                ).get("total")
                == 1
            ),
            what="the template counting its model",
        )

        def refused():
            out = cluster.kubectl(
                "delete", "modeltemplate", "kept", "-n", namespace, "--dry-run=server", check=False
            )
            return out.returncode != 0 and out.stderr

        message = wait_for(refused, what="the policy in force")
        assert "ModelTemplate kept still has 1 Model(s) made from it" in message, message
        real = cluster.kubectl("delete", "modeltemplate", "kept", "-n", namespace, check=False)
        assert real.returncode != 0 and "delete them first" in real.stderr
        assert get_json(cluster, "modeltemplate", "kept", "-n", namespace)
        # Once its models are gone, the template goes too.
        cluster.kubectl("delete", "model", "user", "-n", namespace)
        wait_for(
            lambda: (
                "models"
                not in get_json(cluster, "modeltemplate", "kept", "-n", namespace)["status"]
            ),
            what="the template counting no model",
        )
        cluster.kubectl("delete", "modeltemplate", "kept", "-n", namespace)
    finally:
        cluster.kubectl(
            "delete", "validatingadmissionpolicybinding", binding["metadata"]["name"], check=False
        )
        cluster.kubectl(
            "delete", "validatingadmissionpolicy", policy["metadata"]["name"], check=False
        )
