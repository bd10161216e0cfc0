"""SGP model deployments through the gateway, spoken to by SGP's official client (strict), on
the real control plane with the operator running: a Model's own endpoint is its default
deployment; ``deployments.create`` makes a ModelDeployment that the operator brings to Ready
(``wait_for_ready``), update rolls it, delete stops it, and the caller's token decides."""

from __future__ import annotations

import pytest
import scale_gp
from scale_gp.types.models import ModelDeployment
from support.k8s import get_json
from test_gateway import Account, _tiny, gateway  # noqa: F401 - the fixture
from test_gateway_models import GOOD, PARAMETERS

from devtools.endpoints import wait_ready

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def account(cluster):
    acc = Account(cluster, "gw-deploys")
    yield acc
    cluster.kubectl("delete", "namespace", acc.name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def model(cluster, gateway, account):  # noqa: F811 - pytest fixture by name
    client = account.client(gateway)
    body = _tiny("vllm")
    body["model_creation_parameters_schema"] = {"parameters": PARAMETERS}
    template = client.model_templates.create(account_id=account.name, **body)
    made = client.models.create(
        account_id=account.name,
        name="llama",
        model_type="GENERIC",
        model_template_id=template.id,
        model_creation_parameters=GOOD,
    )
    wait_ready(cluster, account.name, "mdl/llama")
    return made


def test_deploy_list_update_delete(cluster, gateway, account, model):  # noqa: F811
    client = account.client(gateway, timeout=90)
    deployments = client.models.deployments

    # The model's own endpoint is its default deployment, listed first.
    [default] = deployments.list(model.id).items
    assert isinstance(default, ModelDeployment)
    assert (default.id, default.name, default.status) == (model.id, "llama", "READY")
    assert default.model_endpoint_id == f"{account.name}/llama"

    # A free-text name: kept as given, the object's name derived from it.
    made = deployments.create(
        model.id,
        account_id=account.name,
        name="Llama canary #1",
        model_creation_parameters={"tensor_parallel_size": 2},
        vendor_configuration={
            "vendor": "LAUNCH",
            "min_workers": 1,
            "max_workers": 2,
            "per_worker": 4,
        },
        deployment_metadata={"team": "search"},
    )
    assert made.status == "READY", made  # wait_for_ready (default): answered once Ready
    assert made.name == "Llama canary #1" and made.model_instance_id == model.id
    [mdep] = get_json(cluster, "mdep", "-n", account.name)["items"]
    assert mdep["metadata"]["uid"] == made.id
    assert mdep["metadata"]["name"].startswith("llama-canary-1-")
    assert mdep["spec"] == {
        "modelRef": {"name": "llama"},
        "creationParameters": {"tensor_parallel_size": 2},
        "minWorkers": 1,
        "maxWorkers": 2,
        "perWorker": 4,
    }
    assert made.model_creation_parameters == {"tensor_parallel_size": 2}
    assert made.vendor_configuration.max_workers == 2
    assert made.deployment_metadata["team"] == "search"
    # Its endpoint runs the merged parameters through the one renderer.
    dep = get_json(cluster, "deployment", mdep["metadata"]["name"], "-n", account.name)
    env = {
        e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env.get("MODEL_PARAM_TENSOR_PARALLEL_SIZE") == "2", env

    assert client.models.retrieve(model.id).deployment_count == 2
    assert [d.id for d in deployments.list(model.id).items] == [model.id, made.id]
    assert made.id in [d.id for d in deployments.list_all(account_id=account.name).items]
    got = deployments.retrieve(made.id, model_instance_id=model.id)
    assert (got.id, got.status) == (made.id, "READY")

    # update: workers and parameters change, the endpoint rolls.
    changed = deployments.update(
        made.id, model_instance_id=model.id, vendor_configuration={"max_workers": 3}
    )
    assert changed.vendor_configuration.max_workers == 3 and changed.status == "READY"
    assert (
        get_json(cluster, "mdep", mdep["metadata"]["name"], "-n", account.name)["spec"][
            "maxWorkers"
        ]
        == 3
    )

    # The default deployment goes with the model; a reader may look, not deploy.
    with pytest.raises(scale_gp.ConflictError):
        deployments.delete(model.id, model_instance_id=model.id)
    reader = account.client(gateway, role="reader")
    assert reader.models.deployments.retrieve(made.id, model_instance_id=model.id).id == made.id
    with pytest.raises(scale_gp.PermissionDeniedError):
        reader.models.deployments.create(model.id, account_id=account.name, name="nope")

    assert deployments.delete(made.id, model_instance_id=model.id).success is True
    with pytest.raises(scale_gp.NotFoundError):
        deployments.retrieve(made.id, model_instance_id=model.id)


def test_bad_deployments_are_422_naming_the_field(cluster, gateway, account, model):  # noqa: F811
    client = account.client(gateway)
    cases = [
        (
            {"model_creation_parameters": {"tensor_parallel_size": "two"}},
            ["body", "model_creation_parameters", "tensor_parallel_size"],
        ),
        (
            {"vendor_configuration": {"min_workers": -1}},
            ["body", "vendor_configuration", "min_workers"],
        ),
        ({"vendor_configuration": {"gpus": 8}}, ["body", "vendor_configuration", "gpus"]),
    ]
    for extra, loc in cases:
        with pytest.raises(scale_gp.UnprocessableEntityError) as caught:
            client.models.deployments.create(
                model.id, account_id=account.name, name="bad", wait_for_ready=False, **extra
            )
        assert [d["loc"] for d in caught.value.body["detail"]] == [loc], caught.value.body
    # nothing was created
    assert get_json(cluster, "mdep", "-n", account.name)["items"] == []
    # an unknown model: 404 before anything else
    with pytest.raises(scale_gp.NotFoundError):
        client.models.deployments.create("no-such-model", account_id=account.name, name="x")
