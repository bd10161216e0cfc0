"""The gateway's ``/v4/models`` routes, spoken to by SGP's official client (unchanged), on the
real control plane: models are Model resources in the account's namespace, made from a template
created through the same client, written and read with the caller's token."""

from __future__ import annotations

import pytest
import scale_gp
from scale_gp import SGPClient
from support.k8s import audit_events, get_json
from test_gateway import Account, _tiny, _writes_to, gateway  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

#: The creation parameters of a vLLM-like template: what a model must say.
PARAMETERS = [
    {"name": "model_name", "type": "str", "description": "served name", "required": True},
    {"name": "hf_repo", "type": "str", "description": "weights", "required": True},
    {"name": "tensor_parallel_size", "type": "int", "description": "GPUs", "required": True},
    {"name": "trust_remote_code", "type": "bool", "description": "", "required": False},
]
GOOD = {"model_name": "llama", "hf_repo": "meta/llama-3-8b", "tensor_parallel_size": 1}


@pytest.fixture(scope="module")
def account(cluster):
    acc = Account(cluster, "gw-models")
    yield acc
    cluster.kubectl("delete", "namespace", acc.name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def template(gateway, account):  # noqa: F811 - pytest fixture by name
    body = _tiny("vllm")
    body["model_creation_parameters_schema"] = {"parameters": PARAMETERS}
    return account.client(gateway).model_templates.create(account_id=account.name, **body)


def _create(client: SGPClient, account: Account, template, name: str, params: dict, **kw):
    kw.setdefault("model_type", "GENERIC")
    return client.models.create(
        account_id=account.name,
        name=name,
        model_template_id=template.id,
        model_creation_parameters=params,
        **kw,
    )


def test_create_get_list_delete(cluster, gateway, account, template):  # noqa: F811
    client = account.client(gateway)
    created = _create(client, account, template, "llama-8b", GOOD, display_name="Llama 8B")
    assert isinstance(created, scale_gp.types.ModelInstance)
    # What kubectl sees: a Model naming the template, with the parameters as sent.
    mdl = get_json(cluster, "mdl", "llama-8b", "-n", account.name)
    assert created.id == mdl["metadata"]["uid"] and created.account_id == account.name
    assert mdl["spec"]["templateRef"] == {"name": "vllm"}
    assert mdl["spec"]["creationParameters"] == GOOD
    assert created.model_template_id == template.id
    assert created.model_creation_parameters == GOOD
    assert created.display_name == "Llama 8B" and created.model_vendor == "LAUNCH"
    assert created.created_by_user_id == f"system:serviceaccount:{account.name}:editor"
    # The write reached the API server as the caller.
    writes = [
        e
        for e in audit_events(cluster.audit_log)
        if (e.get("objectRef") or {}).get("resource") == "models"
        and e["objectRef"].get("name") == "llama-8b"
        and e["verb"] == "create"
    ]
    assert [w["user"]["username"] for w in writes] == [
        f"system:serviceaccount:{account.name}:editor"
    ]

    assert created.deployment_count == 0
    # The operator makes it Ready: then it counts as deployed.
    cluster.kubectl(
        "wait",
        "-n",
        account.name,
        "--for=condition=Ready",
        "--timeout=90s",
        "mdl/llama-8b",
        timeout=100,
    )
    got = client.models.retrieve(created.id)
    assert isinstance(got, scale_gp.types.ModelInstanceWithViews)
    assert (got.id, got.name, got.model_template_id) == (created.id, "llama-8b", template.id)
    assert got.deployment_count == 1

    second = _create(client, account, template, "llama-70b", GOOD | {"tensor_parallel_size": 4})
    reader = account.client(gateway, role="reader")
    page = reader.models.list(account_id=account.name, limit=1)
    assert [m.name for m in page.items] == ["llama-8b"]  # creation order, stable
    names = [m.name for m in reader.models.list(account_id=account.name, limit=1)]
    assert names == ["llama-8b", "llama-70b"]  # auto-paging walks page 2
    assert second.model_creation_parameters["tensor_parallel_size"] == 4

    # A reader may not delete; the editor may, once.
    with pytest.raises(scale_gp.PermissionDeniedError):
        reader.models.delete(second.id)
    assert client.models.delete(second.id).success is True
    with pytest.raises(scale_gp.NotFoundError):
        client.models.retrieve(second.id)
    with pytest.raises(scale_gp.NotFoundError):
        client.models.delete(second.id)


@pytest.mark.parametrize(
    ("params", "field", "says"),
    [
        ({k: v for k, v in GOOD.items() if k != "hf_repo"}, "hf_repo", "required"),
        (GOOD | {"tensor_parallel_size": "two"}, "tensor_parallel_size", "must be of type int"),
        (GOOD | {"trust_remote_code": "yes"}, "trust_remote_code", "must be of type bool"),
    ],
)
def test_bad_parameters_are_422_naming_the_parameter(
    cluster,
    gateway,  # noqa: F811
    account,
    template,
    params,
    field,
    says,
):
    client = account.client(gateway)
    with pytest.raises(scale_gp.UnprocessableEntityError) as caught:
        _create(client, account, template, "bad-params", params)
    detail = caught.value.body["detail"]
    assert [d["loc"] for d in detail] == [["body", "model_creation_parameters", field]]
    assert says in detail[0]["msg"] and field in detail[0]["msg"]
    # Nothing was created.
    gone = cluster.kubectl("get", "mdl", "bad-params", "-n", account.name, check=False)
    assert gone.returncode != 0


def test_bad_bodies_are_422_naming_the_field(gateway, account, template):  # noqa: F811
    client = account.client(gateway)
    with pytest.raises(scale_gp.UnprocessableEntityError) as caught:
        client.models.create(
            account_id=account.name,
            name="x",
            model_type="GENERIC",
            model_template_id="no-such-template",
        )
    assert [d["loc"] for d in caught.value.body["detail"]] == [["body", "model_template_id"]]
    with pytest.raises(scale_gp.UnprocessableEntityError) as caught:
        _create(client, account, template, "", GOOD)
    assert [d["loc"] for d in caught.value.body["detail"]] == [["body", "name"]]
    with pytest.raises(scale_gp.UnprocessableEntityError) as caught:
        client.models.create(
            account_id=account.name,
            name="typed",
            model_type="EMBEDDING",
            model_template_id=template.id,
            model_creation_parameters=GOOD,
            model_card="card",
        )
    locs = sorted(d["loc"][-1] for d in caught.value.body["detail"])
    assert locs == ["model_card"]  # refused before the template is read
    with pytest.raises(scale_gp.UnprocessableEntityError) as caught:
        _create(client, account, template, "typed", GOOD, model_type="EMBEDDING")
    assert [d["loc"] for d in caught.value.body["detail"]] == [["body", "model_type"]]


def test_free_text_names_are_kept_and_objects_named_from_them(cluster, gateway, account, template):  # noqa: F811, E501
    client = account.client(gateway)
    first = _create(client, account, template, "Llama 3 (8B) — test", GOOD)
    second = _create(client, account, template, "Llama 3 (8B) — test", GOOD)
    assert first.name == second.name == "Llama 3 (8B) — test" and first.id != second.id
    names = {
        m["metadata"]["uid"]: m["metadata"]["name"]
        for m in get_json(cluster, "mdl", "-n", account.name)["items"]
    }
    assert names[first.id].startswith("llama-3-8b-test-") and names[first.id] != names[second.id]
    assert client.models.retrieve(first.id).name == "Llama 3 (8B) — test"


def test_conflict_bad_key_and_other_account(cluster, gateway, account, template):  # noqa: F811
    client = account.client(gateway)
    _create(client, account, template, "twice", GOOD)
    with pytest.raises(scale_gp.ConflictError):
        _create(client, account, template, "twice", GOOD)
    bad = SGPClient(base_url=gateway.base_url, api_key="not-a-token", account_id=account.name)
    with pytest.raises(scale_gp.AuthenticationError):
        bad.models.list(account_id=account.name)
    # A key of another account cannot read this one's models.
    other = Account(cluster, "gw-models-other")
    try:
        with pytest.raises(scale_gp.PermissionDeniedError):
            other.client(gateway).models.list(account_id=account.name)
    finally:
        cluster.kubectl("delete", "namespace", other.name, "--wait=false", check=False)
