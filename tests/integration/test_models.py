"""Models on the real control plane: made from their template with their creation parameters,
checked against the template's schema, following the template's changes and surviving its loss."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from support.k8s import apply_list, get_json, wait_for
from support.manifests import tiny_template

pytestmark = pytest.mark.integration
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
