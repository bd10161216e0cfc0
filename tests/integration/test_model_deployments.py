"""ModelDeployments on the real control plane: more running endpoints of one Model, each with
its own creation parameters and workers, through the one plan, renderer and checker."""

from __future__ import annotations

import pytest
from support.k8s import apply_list, get_json, wait_for
from test_model_lifecycle import (
    main_container,
    model,
    owned_children,
    typed_template,
    valid_values,
    wait_condition,
)

pytestmark = pytest.mark.integration


def deployment(name: str, model_name: str, **spec) -> dict:
    return {
        "apiVersion": "launch.modelops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"modelRef": {"name": model_name}, **spec},
    }


def env_of(cluster, namespace, name) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in main_container(cluster, namespace, name)["env"]}


def test_a_deployment_runs_its_model_with_its_own_parameters_and_workers(
    cluster, operator, namespace
):
    template = typed_template("base")
    apply_list(cluster, namespace, [template])
    apply_list(cluster, namespace, [model("m", "base", creationParameters=valid_values())])
    wait_condition(cluster, namespace, "model", "m", "True", timeout=90)
    apply_list(
        cluster,
        namespace,
        [deployment("m-large", "m", creationParameters={"p_int": 8}, minWorkers=2, maxWorkers=2)],
    )
    ready = wait_condition(cluster, namespace, "mdep", "m-large", "True", timeout=90)
    assert ready["status"]["modelTemplateId"]
    assert ready["status"]["endpointUrl"].startswith("http://m-large.")
    # Its own workload, owned by it: the Model's parameters with its own merged over them.
    assert "Deployment/m-large" in owned_children(cluster, namespace, "ModelDeployment", "m-large")
    env = env_of(cluster, namespace, "m-large")
    assert env["MODEL_PARAM_P_INT"] == "8" and env["MODEL_PARAM_P_STR"] == "text"
    assert env_of(cluster, namespace, "m")["MODEL_PARAM_P_INT"] == "3"  # the Model's own: as was
    assert get_json(cluster, "deployment", "m-large", "-n", namespace)["spec"]["replicas"] == 2

    # The one checker: a parameter of the wrong type is named, nothing more is rendered.
    apply_list(cluster, namespace, [deployment("bad", "m", creationParameters={"p_int": "x"})])
    bad = wait_condition(cluster, namespace, "mdep", "bad", "False", "InvalidParameters")
    messages = [c["message"] for c in bad["status"]["conditions"]]
    assert any("spec.creationParameters.p_int: must be of type int" in m for m in messages)
    assert owned_children(cluster, namespace, "ModelDeployment", "bad") == set()

    # A template change reaches the deployment through its Model.
    template["spec"]["vendorConfiguration"]["bundleConfig"]["tag"] = "2"
    apply_list(cluster, namespace, [template])
    wait_for(
        lambda: (
            main_container(cluster, namespace, "m-large")["image"] == "docker.io/modelops/tiny:2"
        ),
        timeout=90,
        what="the deployment on the template's new image",
    )

    # Its Model gone: it says so and keeps its workers.
    cluster.kubectl("delete", "model", "m", "-n", namespace)
    gone = wait_condition(cluster, namespace, "mdep", "m-large", "False", "ModelMissing")
    assert any(
        "spec.modelRef.name: Model 'm' not found" in c["message"]
        for c in gone["status"]["conditions"]
    )
    assert "Deployment/m-large" in owned_children(cluster, namespace, "ModelDeployment", "m-large")
