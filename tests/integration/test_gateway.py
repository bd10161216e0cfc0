"""The SGP API gateway, spoken to by SGP's official client (unchanged: only base_url, api_key
and account_id), in front of the real control plane with the operator running.

The gateway's only credential is a token of deploy/'s ``modeltemplate-gateway``
ServiceAccount (list/watch of templates); every key a test sends is a token minted with the
TokenRequest API for a ServiceAccount bound to a Role, as an admin would mint it.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import httpx
import pytest
import scale_gp
from _helpers_deploy import service_account_kubeconfig
from scale_gp import SGPClient
from support.gateway import READ_ONLY, GatewayProcess, create_body, seed_examples
from support.k8s import audit_events, get_json, wait_for
from support.manifests import tiny_template

from modeltemplate_operator.api.convert import manifest_to_sgp

REPO = Path(__file__).resolve().parents[2]
GATEWAY_SA = "modeltemplate-gateway"
GATEWAY_NS = "modeltemplate-system"
#: Seconds an access review is reused (short here, to see a revoked binding take effect).
ACCESS_TTL = 2
#: The roles deploy/ ships for users of templates, bound in the account's namespace.
ROLES = {"editor": "modeltemplate-editor", "reader": "modeltemplate-viewer"}


@pytest.fixture(scope="module")
def gateway(cluster, crd_installed, operator, tmp_path_factory, request):
    """The gateway process, authenticated as deploy/'s gateway ServiceAccount only; a log per
    test module (modules importing this fixture may run at once, in parallel processes)."""
    for name in ("namespace.yaml", "gateway-rbac.yaml", "user-roles.yaml"):
        cluster.kubectl("apply", "--server-side", "-f", str(REPO / "deploy" / "base" / name))
    work = tmp_path_factory.mktemp("gateway")
    kubeconfig = service_account_kubeconfig(
        cluster, work / "kubeconfig", service_account=GATEWAY_SA, namespace=GATEWAY_NS
    )
    log = REPO / "test-artifacts" / f"gateway-{request.module.__name__.rsplit('.', 1)[-1]}.log"
    log.unlink(missing_ok=True)
    proc = GatewayProcess(kubeconfig, log, f"--access-ttl={ACCESS_TTL}").start()
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


class Account:
    """A namespace with an editor and a reader ServiceAccount (bound to deploy/'s user roles),
    and their API keys (TokenRequest tokens, as ``kubectl create token`` mints them)."""

    def __init__(self, cluster, name: str):
        self.name = name
        self.keys: dict[str, str] = {}
        cluster.kubectl("create", "namespace", name)
        for role in ROLES:
            cluster.kubectl("create", "serviceaccount", role, "-n", name)
            cluster.kubectl(
                "create",
                "rolebinding",
                role,
                "-n",
                name,
                f"--clusterrole={ROLES[role]}",
                f"--serviceaccount={name}:{role}",
            )
            self.keys[role] = cluster.kubectl(
                "create", "token", role, "-n", name, "--duration=1h"
            ).stdout.strip()

    def client(self, gateway, role: str = "editor", **kwargs) -> SGPClient:
        return SGPClient(
            base_url=gateway.base_url,
            api_key=self.keys[role],
            account_id=self.name,
            _strict_response_validation=True,
            **kwargs,
        )


@pytest.fixture(scope="module")
def account(cluster):
    acc = Account(cluster, f"gw-{uuid.uuid4().hex[:6]}")
    yield acc
    cluster.kubectl("delete", "namespace", acc.name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def seed_item():
    items = seed_examples()
    assert items, "no example JSON found in the seed documents"
    return items[0]


def _tiny(name: str) -> dict:
    """A small CPU-only template as an SGP body (whole cpus: the client types them as int)."""
    return manifest_to_sgp(tiny_template(name, cpus=1))[0]


def _ready(cluster, namespace: str, name: str) -> None:
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Ready", "--timeout=90s", f"mt/{name}", timeout=100
    )


def _writes_to(cluster, name: str) -> list[dict]:
    """Audit log entries of writes to the ModelTemplate ``name`` (the local control plane
    logs every write)."""
    return [
        e
        for e in audit_events(cluster.audit_log)
        if (e.get("objectRef") or {}).get("resource") == "modeltemplates"
        and e["objectRef"].get("name") == name
    ]


def test_create_from_the_seed_example_get_delete(cluster, gateway, account, seed_item):
    client = account.client(gateway)
    body = create_body(seed_item, "seed-example")
    created = client.model_templates.create(account_id=account.name, **body)
    assert isinstance(created, scale_gp.types.ModelTemplate)
    # What kubectl sees: the same object, in the account's namespace, made Ready by the operator.
    mt = get_json(cluster, "mt", "seed-example", "-n", account.name)
    assert created.id == mt["metadata"]["uid"] and created.account_id == account.name
    assert created.created_by_user_id == f"system:serviceaccount:{account.name}:editor"
    assert created.created_by_identity_type == "service_account"
    spec = mt["spec"]["vendorConfiguration"]
    assert spec["endpointConfig"]["gpuType"] == "nvidia-tesla-t4"
    assert spec["fineTuningJobBundleConfig"]["mountLocation"] == (
        "/workspace/launch_specific/config.json"
    )
    _ready(cluster, account.name, "seed-example")
    # The write reached the API server as the caller, not as the gateway.
    creates = [e for e in _writes_to(cluster, "seed-example") if e["verb"] == "create"]
    assert [e["user"]["username"] for e in creates] == [created.created_by_user_id]

    got = client.model_templates.retrieve(created.id)
    assert got == created
    # The seed declares required creation parameters: a pure template, run only as Models.
    ready = {
        c["type"]: c
        for c in get_json(cluster, "mt", "seed-example", "-n", account.name)["status"]["conditions"]
    }["Ready"]
    assert ready["reason"] == "PureTemplate"
    missing = cluster.kubectl("get", "deployment", "seed-example", "-n", account.name, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr

    deleted = client.model_templates.delete(created.id)
    assert (deleted.count, deleted.success) == (1, True)
    with pytest.raises(scale_gp.NotFoundError):
        client.model_templates.retrieve(created.id)
    wait_for(
        lambda: (
            cluster.kubectl(
                "get", "deployment,service,pdb", "-n", account.name, "-o", "name", check=False
            ).stdout.strip()
            == ""
        ),
        timeout=60,
        what="the children to be garbage-collected",
    )
    assert cluster.kubectl("get", "mt", "seed-example", "-n", account.name, check=False).returncode


def test_every_seed_example_round_trips_field_by_field(gateway, account):
    """Each example JSON in the seeds: create, then get; every field sent comes back equal,
    every field of the seed's response shape is there, read-only fields filled in."""
    client = account.client(gateway)
    items = seed_examples()
    assert len(items) >= 2  # the list page and the overview each carry one
    for n, item in enumerate(items):
        body = create_body(item, f"seed-round-trip-{n}")
        created = client.model_templates.create(account_id=account.name, **body)
        got = client.model_templates.retrieve(created.id).to_dict(mode="json")

        def compare(sent, back, path):
            if isinstance(sent, dict):
                assert isinstance(back, dict), path
                for key, value in sent.items():
                    assert key in back, f"{path}.{key} missing in the response"
                    compare(value, back[key], f"{path}.{key}")
            else:
                assert back == sent, f"{path}: sent {sent!r}, got {back!r}"

        compare(body, got, "template")
        assert set(item) == set(got), set(item) ^ set(got)
        assert got["account_id"] == account.name and got["id"] == created.id
        assert got["created_by_identity_type"] == "service_account"
        assert got["created_at"].endswith("Z") or got["created_at"].endswith("+00:00")
        assert set(READ_ONLY) <= set(got)
        client.model_templates.delete(created.id)


def test_list_pages_are_stable_and_auto_pagination_ends(cluster, gateway):
    acc = Account(cluster, f"gw-list-{uuid.uuid4().hex[:6]}")
    try:
        client = acc.client(gateway)
        ids = [
            client.model_templates.create(account_id=acc.name, **_tiny(f"t-{n:02d}")).id
            for n in range(25)
        ]
        pages = [client.model_templates.list(limit=10, page=p) for p in (1, 2, 3, 4)]
        assert [len(p.items) for p in pages] == [10, 10, 5, 0]
        assert {p.total_item_count for p in pages} == {25}
        assert [(p.current_page, p.items_per_page) for p in pages] == [
            (1, 10),
            (2, 10),
            (3, 10),
            (4, 10),
        ]
        listed = [t.id for p in pages for t in p.items]
        assert listed == ids  # creation order (microsecond creation time, then id)
        assert [t.id for t in client.model_templates.list(limit=10)] == ids  # auto-pagination

        # A template created between page 1 and page 2 neither repeats nor hides an item.
        first = client.model_templates.list(limit=10, page=1)
        late = client.model_templates.create(account_id=acc.name, **_tiny("t-late")).id
        rest = [client.model_templates.list(limit=10, page=p) for p in (2, 3)]
        seen = [t.id for t in first.items] + [t.id for p in rest for t in p.items]
        assert seen == ids + [late] and rest[0].total_item_count == 26

        # A template deleted with kubectl leaves the list (the watch cache follows).
        cluster.kubectl("delete", "mt", "t-00", "-n", acc.name)
        wait_for(
            lambda: client.model_templates.list(limit=100).total_item_count == 25,
            timeout=10,
            what="the deletion to reach the gateway's cache",
        )
    finally:
        cluster.kubectl("delete", "namespace", acc.name, "--wait=false", check=False)


def test_errors(cluster, gateway, account):
    client = account.client(gateway)
    # 422: the models refuse the body; the field is named in SGP's snake_case path and
    # the request never reaches the API server.
    bad = _tiny("bad-workers")
    bad["vendor_configuration"]["endpoint_config"].update(min_workers=3, max_workers=1)
    with pytest.raises(scale_gp.UnprocessableEntityError) as refused:
        client.model_templates.create(account_id=account.name, **bad)
    (problem,) = refused.value.body["detail"]
    assert problem["loc"] == ["body", "vendor_configuration", "endpoint_config", "min_workers"]
    assert problem["msg"].startswith("vendor_configuration.endpoint_config.min_workers (3)")
    assert "max_workers (1)" in problem["msg"] and "maxWorkers" not in problem["msg"]
    assert _writes_to(cluster, "bad-workers") == []
    # 404: an unknown id.
    with pytest.raises(scale_gp.NotFoundError):
        client.model_templates.retrieve(str(uuid.uuid4()))
    with pytest.raises(scale_gp.NotFoundError):
        client.model_templates.delete(str(uuid.uuid4()))
    # 409: the name is taken; sent once (x-should-retry: false stops the client's retries).
    client.model_templates.create(account_id=account.name, **_tiny("taken"))
    with pytest.raises(scale_gp.ConflictError) as conflict:
        client.model_templates.create(account_id=account.name, **_tiny("taken"))
    assert conflict.value.response.headers["x-should-retry"] == "false"
    creates = [e for e in _writes_to(cluster, "taken") if e["verb"] == "create"]
    assert [e["responseStatus"]["code"] for e in creates] == [201, 409]
    # 401: no key at all, and a key the cluster does not accept.
    anonymous = httpx.get(f"{gateway.base_url}/v4/model-templates", timeout=10)
    assert anonymous.status_code == 401 and "API key" in anonymous.json()["detail"]
    forged = SGPClient(
        base_url=gateway.base_url,
        api_key="not-a-token",
        account_id=account.name,
        _strict_response_validation=True,
    )
    with pytest.raises(scale_gp.AuthenticationError):
        forged.model_templates.list()
    # 403: a read-only key may list and get, not create or delete.
    reader = account.client(gateway, "reader")
    with pytest.raises(scale_gp.PermissionDeniedError):
        reader.model_templates.create(account_id=account.name, **_tiny("by-reader"))
    taken = next(t for t in reader.model_templates.list() if t.name == "taken")
    with pytest.raises(scale_gp.PermissionDeniedError):
        reader.model_templates.delete(taken.id)
    # ... and nothing in an account it has no role in, even with the id (read from the cache).
    other = Account(cluster, f"gw-other-{uuid.uuid4().hex[:6]}")
    try:
        outsider = other.client(gateway, "reader")
        with pytest.raises(scale_gp.PermissionDeniedError):
            outsider.model_templates.list(account_id=account.name)
        stranger = SGPClient(
            base_url=gateway.base_url,
            api_key=other.keys["editor"],
            _strict_response_validation=True,
        )
        # another account's id answers as an unknown one (reproduced: 403 naming the account,
        # an existence oracle): the same 404, naming no account
        with pytest.raises(scale_gp.NotFoundError) as hidden:
            stranger.model_templates.retrieve(taken.id)
        with pytest.raises(scale_gp.NotFoundError) as unknown:
            stranger.model_templates.retrieve("00000000-0000-0000-0000-000000000000")
        assert account.name not in str(hidden.value.body)
        assert str(hidden.value.body).replace(taken.id, "X") == str(unknown.value.body).replace(
            "00000000-0000-0000-0000-000000000000", "X"
        )
    finally:
        cluster.kubectl("delete", "namespace", other.name, "--wait=false", check=False)


def test_gateway_runs_on_its_own_service_account_alone(cluster, gateway):
    """deploy/'s gateway role is all the watch caches need: no refusal in the gateway's log,
    and its ServiceAccount may only list and watch (templates, models, deployments)."""
    user = f"system:serviceaccount:{GATEWAY_NS}:{GATEWAY_SA}"
    for resource in ("modeltemplates", "models", "modeldeployments"):
        for verb in ("list", "watch", "create", "delete", "patch", "update", "get"):
            answer = cluster.kubectl(
                "auth",
                "can-i",
                verb,
                f"{resource}.launch.modelops.dev",
                "-A",
                f"--as={user}",
                check=False,
            )
            assert answer.stdout.strip() == ("yes" if verb in ("list", "watch") else "no"), (
                resource,
                verb,
            )
    # Each watch cache logs its first listing (read once the three are there: the gateway may be
    # answering before its log has them).
    log = gateway.wait_for_log(lambda text: text.count("watch cache: ") >= 3, timeout=30)
    # A status 403, not the digits of a port (the server's random port once began with them).
    refused = re.search(r"\b403\b", log) or "forbidden" in log.lower()
    assert "watch cache:" in log and not refused, log


def test_api_server_refusals_are_translated_to_sgp_paths(api_client, crd_installed, namespace):
    """What the API server itself refuses (OpenAPI schema, CEL) reaches an SGP caller as a
    422 naming snake_case paths — checked on the API server's own Status body."""
    from kubernetes.client.exceptions import ApiException

    from modeltemplate_operator.controller import kube
    from modeltemplate_operator.gateway.sgp import from_api_server

    manifest = tiny_template("refused", minWorkers=3, maxWorkers=1, perWorker=0)
    path = f"/apis/launch.modelops.dev/v1alpha1/namespaces/{namespace}/modeltemplates"
    with pytest.raises(ApiException) as refused:
        kube.request(api_client, "POST", path, body=manifest)
    error = from_api_server(refused.value.status, json.loads(refused.value.body))
    assert error.status == 422 and error.headers == {"x-should-retry": "false"}
    locs = {tuple(d["loc"]) for d in error.detail}
    assert ("body", "vendor_configuration", "endpoint_config", "per_worker") in locs, error.detail
    text = json.dumps(error.detail)
    assert "min_workers (3) must be <= max_workers (1)" in text, text
    assert "perWorker" not in text and "minWorkers" not in text and "spec." not in text


def test_a_revoked_role_binding_stops_reads_within_the_access_ttl(cluster, gateway):
    """Reads come from the cache, but only while RBAC still lets the caller read."""
    acc = Account(cluster, f"gw-revoke-{uuid.uuid4().hex[:6]}")
    try:
        made = acc.client(gateway).model_templates.create(account_id=acc.name, **_tiny("kept"))
        reader = acc.client(gateway, "reader")
        assert [t.id for t in reader.model_templates.list()] == [made.id]
        assert reader.model_templates.retrieve(made.id).id == made.id
        cluster.kubectl("delete", "rolebinding", "reader", "-n", acc.name)

        def refused() -> bool:
            try:
                reader.model_templates.retrieve(made.id)
            except scale_gp.NotFoundError:  # by id: what it may not read does not exist for it
                return True
            return False

        wait_for(refused, timeout=ACCESS_TTL + 10, interval=0.5, what="the read to be refused")
        with pytest.raises(scale_gp.PermissionDeniedError):
            reader.model_templates.list()
    finally:
        cluster.kubectl("delete", "namespace", acc.name, "--wait=false", check=False)
