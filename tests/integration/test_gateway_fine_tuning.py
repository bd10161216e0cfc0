"""SGP's /v4/fine-tuning-jobs through the gateway, spoken to by SGP's official client: create
from a template id, get, list, events, delete — each call made with the caller's own token."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import scale_gp
import yaml
from support.k8s import apply_list, get_json, wait_for
from test_gateway import Account, gateway  # noqa: F401 - the gateway fixture

pytestmark = pytest.mark.integration
SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"


@pytest.fixture(scope="module")
def account(cluster):
    acc = Account(cluster, f"gw-ft-{uuid.uuid4().hex[:6]}")
    yield acc
    cluster.kubectl("delete", "namespace", acc.name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def template_id(cluster, account):
    doc = yaml.safe_load((SAMPLES / "finetunable-llm-a100.yaml").read_text())
    doc["metadata"] = {"name": "llm-a100"}
    # SGP's client types know str/int/float/bool parameters only (its responses are checked).
    schema = doc["spec"]["modelRequestParametersSchema"]
    schema["parameters"] = [p for p in schema["parameters"] if p["type"] != "list"]
    apply_list(cluster, account.name, [doc])
    return get_json(cluster, "mt", "llm-a100", "-n", account.name)["metadata"]["uid"]


def test_create_get_list_events_delete(cluster, gateway, account, template_id):  # noqa: F811
    client = account.client(gateway)
    wait_for(lambda: _known(client, template_id), what="the template in the gateway's cache")
    created = client.fine_tuning_jobs.create(
        account_id=account.name,
        training_dataset_id="s3://datasets/support/train.jsonl",
        validation_dataset_id="https://datasets.example/support/validation.jsonl",
        base_model_id=template_id,
        vendor_configuration={
            "vendor": "LAUNCH",
            "hyperparameters": {"epochs": 2},
            "output": "s3://weights/support-v1",
            "suffix": "support-v1",
        },
    )
    assert isinstance(created, scale_gp.types.FineTuningJob)
    assert created.status == "PENDING" and created.account_id == account.name
    # answered from what was created, before the operator has seen the job (reproduced:
    # base_model_id null and the suffix dropped until then)
    assert created.base_model_id == template_id
    assert created.vendor_configuration.suffix == "support-v1"
    fetched = client.fine_tuning_jobs.retrieve(created.id)
    assert fetched.base_model_id == template_id, fetched
    assert created.created_by_user_id == f"system:serviceaccount:{account.name}:editor"
    [ftj] = get_json(cluster, "ftj", "-n", account.name)["items"]
    assert ftj["metadata"]["uid"] == created.id
    assert ftj["spec"]["templateRef"] == {"name": "llm-a100"}
    assert ftj["spec"]["trainingDataset"] == {"url": "s3://datasets/support/train.jsonl"}
    assert ftj["spec"]["validationDataset"] == {
        "url": "https://datasets.example/support/validation.jsonl"
    }
    assert ftj["spec"]["outputModelName"] == "llm-a100-support-v1"

    # kwok completes the Job's pod: COMPLETED, with the Model made from the template.
    done = wait_for(
        lambda: (j := client.fine_tuning_jobs.retrieve(created.id)).status == "COMPLETED" and j,
        what="the job COMPLETED",
    )
    model = get_json(cluster, "model", "llm-a100-support-v1", "-n", account.name)
    assert done.fine_tuned_model_id == model["metadata"]["uid"]
    assert done.base_model_id == template_id
    assert done.training_dataset_id == "s3://datasets/support/train.jsonl"
    assert done.vendor_configuration.hyperparameters == {"epochs": 2}
    assert done.vendor_configuration.output == "s3://weights/support-v1"

    page = client.fine_tuning_jobs.list(account_id=account.name)
    assert [j.id for j in page.items] == [created.id]
    events = list(client.fine_tuning_jobs.events.list(created.id))
    assert [e.message for e in events][0] == "fine-tuning job created"
    assert events[-1].message.startswith("Succeeded: ") and events[-1].level == "info"

    # A reader may read but not delete; the editor deletes (the Job goes with it).
    reader = account.client(gateway, "reader")
    assert reader.fine_tuning_jobs.retrieve(created.id).id == created.id
    with pytest.raises(scale_gp.PermissionDeniedError):
        reader.fine_tuning_jobs.delete(created.id)
    assert client.fine_tuning_jobs.delete(created.id).success
    wait_for(
        lambda: not get_json(cluster, "ftj", "-n", account.name)["items"], what="the job deleted"
    )
    with pytest.raises(scale_gp.NotFoundError):
        client.fine_tuning_jobs.retrieve(created.id)


def test_bad_requests_name_the_field(gateway, account, template_id):  # noqa: F811
    client = account.client(gateway)
    with pytest.raises(scale_gp.UnprocessableEntityError) as bad:
        client.fine_tuning_jobs.create(
            account_id=account.name, training_dataset_id="train.jsonl", base_model_id=template_id
        )
    assert bad.value.body["detail"][0]["loc"] == ["body", "training_dataset_id"]
    with pytest.raises(scale_gp.UnprocessableEntityError) as bad:
        client.fine_tuning_jobs.create(
            account_id=account.name, training_dataset_id="s3://a/b", base_model_id="nope"
        )
    assert bad.value.body["detail"][0]["loc"] == ["body", "base_model_id"]


def test_a_run_whose_model_cannot_be_made_is_refused_up_front(cluster, gateway, account):  # noqa: F811
    """A suffix asks for a Model made from the template with the weights as a creation
    parameter: on a template without that parameter the run could never finish (reproduced:
    accepted with 200, then PENDING forever). Refused at once, naming the field, as a Model's
    create is; nothing is created."""
    doc = yaml.safe_load((SAMPLES / "finetunable-llm-a100.yaml").read_text())
    doc["metadata"] = {"name": "llm-no-weights"}
    schema = doc["spec"]["modelCreationParametersSchema"]
    schema["parameters"] = [p for p in schema["parameters"] if p["name"] != "model_weights_uri"]
    requests = doc["spec"]["modelRequestParametersSchema"]
    requests["parameters"] = [p for p in requests["parameters"] if p["type"] != "list"]
    apply_list(cluster, account.name, [doc])
    template_id = get_json(cluster, "mt", "llm-no-weights", "-n", account.name)["metadata"]["uid"]
    client = account.client(gateway)
    wait_for(lambda: _known(client, template_id), what="the template in the gateway's cache")
    with pytest.raises(scale_gp.UnprocessableEntityError) as refused:
        client.fine_tuning_jobs.create(
            account_id=account.name,
            training_dataset_id="s3://datasets/support/train.jsonl",
            base_model_id=template_id,
            vendor_configuration={"vendor": "LAUNCH", "suffix": "v2"},
        )
    (problem,) = refused.value.body["detail"]
    assert problem["loc"] == ["body", "vendor_configuration", "suffix"], problem
    assert "model_weights_uri" in problem["msg"], problem
    jobs = get_json(cluster, "ftj", "-n", account.name)["items"]
    assert [j for j in jobs if j["spec"]["templateRef"]["name"] == "llm-no-weights"] == []


def _known(client, template_id: str) -> bool:
    try:
        client.model_templates.retrieve(template_id)
    except scale_gp.NotFoundError:
        return False
    return True
