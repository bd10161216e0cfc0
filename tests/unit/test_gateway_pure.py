"""Pure parts of the SGP gateway: object <-> SGP JSON, error translation, paging, caches
(the gateway against the cluster: tests/integration/test_gateway.py)."""

from __future__ import annotations

import copy

import pytest

from modeltemplate_operator.api.convert import sgp_message, sgp_path
from modeltemplate_operator.api.validation import validate_manifest
from modeltemplate_operator.gateway.access import TtlCache, token_hash
from modeltemplate_operator.gateway.calls import Paging
from modeltemplate_operator.gateway.openapi import MAX_UNKNOWN_KEYS, unknown_keys
from modeltemplate_operator.gateway.sgp import (
    CREATED_AT_ANNOTATION,
    creator_annotations,
    from_api_server,
    manifest_errors,
    manifest_from_request,
    order_key,
    page_bounds,
    template_to_sgp,
)
from modeltemplate_operator.gateway.store import Store

pytestmark = pytest.mark.unit

BODY = {
    "account_id": "team-a",
    "name": "llm",
    "endpoint_type": "STREAMING",
    "model_type": "CHAT_COMPLETION",
    "vendor_configuration": {
        "bundle_config": {
            "registry": "docker.io",
            "image": "vllm/vllm-openai",
            "tag": "v0.6.3",
            "env": {"HF_HOME": "/data"},
            "streaming_command": ["serve", "--stream"],
        },
        "endpoint_config": {"gpus": 1, "gpu_type": "nvidia-hopper-h100", "max_workers": 4},
    },
    "model_request_parameters_schema": {
        "parameters": [{"name": "temperature", "type": "float", "required": False}]
    },
}


def stored(manifest: dict, *, uid: str = "uid-1", created: str = "2026-01-02T03:04:05Z") -> dict:
    """What the API server returns for a created manifest (metadata filled in)."""
    obj = copy.deepcopy(manifest)
    obj["metadata"].update(uid=uid, creationTimestamp=created, resourceVersion="7")
    return obj


def obj(name: str, uid: str, created: str, namespace: str = "a", precise: str = "") -> dict:
    annotations = {CREATED_AT_ANNOTATION: precise} if precise else {}
    body = {k: v for k, v in BODY.items() if k != "account_id"} | {"name": name}
    manifest = manifest_from_request(body, namespace, annotations)
    return stored(manifest, uid=uid, created=created)


def test_request_to_manifest_and_back_keeps_every_field_and_fills_defaults():
    annotations = {
        "launch.modelops.dev/created-by-user-id": "system:serviceaccount:team-a:ci",
        "launch.modelops.dev/created-by-identity-type": "service_account",
    }
    manifest = manifest_from_request(BODY, "team-a", annotations)
    assert validate_manifest(manifest) == []
    assert manifest["metadata"] == {
        "name": "llm",
        "namespace": "team-a",
        "annotations": annotations,
    }
    assert "accountId" not in manifest["spec"] and "account_id" not in manifest["spec"]
    assert manifest["spec"]["vendorConfiguration"]["endpointConfig"]["gpuType"] == (
        "nvidia-hopper-h100"
    )
    sgp = template_to_sgp(stored(manifest))
    for key in ("name", "endpoint_type", "model_type"):
        assert sgp[key] == BODY[key]
    bundle = sgp["vendor_configuration"]["bundle_config"]
    assert bundle["env"] == {"HF_HOME": "/data"} and bundle["healthcheck_route"] == "/readyz"
    endpoint = sgp["vendor_configuration"]["endpoint_config"]
    assert endpoint == {
        "cpus": 3,
        "memory": "8Gi",
        "storage": "16Gi",
        "gpus": 1,
        "gpu_type": "nvidia-hopper-h100",
        "min_workers": 0,
        "max_workers": 4,
        "per_worker": 10,
        "high_priority": False,
        "endpoint_type": None,  # a key of SGP's response shape: present as null when unset
    }
    assert "streaming_command" in bundle
    assert sgp["vendor_configuration"]["vendor"] == "LAUNCH" and sgp["endpoint_protocol"] == "SGP"
    assert sgp["model_request_parameters_schema"]["parameters"] == [
        # description is required in the client's type: filled with "" when not given
        {"name": "temperature", "type": "float", "required": False, "description": ""}
    ]
    assert (sgp["id"], sgp["created_at"], sgp["account_id"]) == (
        "uid-1",
        "2026-01-02T03:04:05Z",
        "team-a",
    )
    assert sgp["created_by_user_id"] == "system:serviceaccount:team-a:ci"
    assert sgp["created_by_identity_type"] == "service_account"


def test_read_only_fields_of_a_body_are_ignored():
    body = BODY | {"id": "forged", "created_by_user_id": "mallory", "created_at": "1999"}
    manifest = manifest_from_request(body, "team-a", {})
    assert "status" not in manifest and validate_manifest(manifest) == []


def test_client_wire_types_and_unknown_creator():
    manifest = manifest_from_request(BODY, "team-a", {})
    endpoint = manifest["spec"]["vendorConfiguration"]["endpointConfig"]
    endpoint.update(cpus="4", memory=2147483648, storage="20Gi")
    sgp = template_to_sgp(stored(manifest))
    endpoint = sgp["vendor_configuration"]["endpoint_config"]
    assert (endpoint["cpus"], endpoint["memory"], endpoint["storage"]) == (4, "2147483648", "20Gi")
    # Made with kubectl, without the creator-identity component: no creator is known.
    assert (sgp["created_by_user_id"], sgp["created_by_identity_type"]) == ("", "user")


def test_model_errors_name_sgp_paths():
    body = copy.deepcopy(BODY)
    body["vendor_configuration"]["endpoint_config"].update(min_workers=5, max_workers=2)
    body["model_request_parameters_schema"]["parameters"][0]["type"] = "complex"
    error = manifest_errors(validate_manifest(manifest_from_request(body, "a", {})))
    assert error.status == 422
    by_loc = {tuple(d["loc"]): d["msg"] for d in error.detail}
    assert by_loc[("body", "vendor_configuration", "endpoint_config", "min_workers")] == (
        "vendor_configuration.endpoint_config.min_workers (5) must be <= max_workers (2)"
    )
    loc = ("body", "model_request_parameters_schema", "parameters", 0, "type")
    assert by_loc[loc].startswith("model_request_parameters_schema.parameters[0].type (complex)")


@pytest.mark.parametrize(
    ("manifest_path", "sgp"),
    [
        ("metadata.name", "name"),
        ("spec.endpointType", "endpoint_type"),
        ("spec.vendorConfiguration.endpointConfig.minWorkers", "vendor_configuration.endpoint_config.min_workers"),
        ("spec.vendorConfiguration.bundleConfig.healthcheckRoute", "vendor_configuration.bundle_config.healthcheck_route"),
        ("spec.modelCreationParametersSchema.parameters[2].name", "model_creation_parameters_schema.parameters[2].name"),
        ("spec.vendorConfiguration.bundleConfig.env.MY_VAR", "vendor_configuration.bundle_config.env.MY_VAR"),
        ("spec.vendorConfiguration.fineTuningJobBundleConfig.resources.gpuType", "vendor_configuration.fine_tuning_job_bundle_config.resources.gpu_type"),
        ("spec.somethingUnknown.deeper", "somethingUnknown.deeper"),
    ],
)  # fmt: skip
def test_sgp_paths(manifest_path, sgp):
    assert sgp_path(manifest_path) == sgp


def test_sgp_message_rewrites_paths_and_field_names_only():
    message = 'Invalid value: "object": gpus (0) must be > 0 when gpuType (nvidia-tesla-t4) is set'
    assert sgp_message(message) == message.replace("gpuType", "gpu_type")
    assert sgp_message("spec.vendorConfiguration.endpointConfig.perWorker (0) must be >= 1") == (
        "vendor_configuration.endpoint_config.per_worker (0) must be >= 1"
    )
    assert sgp_message("iPhone and camelCaseWords stay") == "iPhone and camelCaseWords stay"


def test_api_server_errors():
    denied = from_api_server(403, {"message": 'User "x" cannot create resource "modeltemplates"'})
    assert (denied.status, denied.headers) == (403, {"x-should-retry": "false"})
    assert 'User "x" cannot create' in denied.detail
    assert from_api_server(401, {"message": "Unauthorized"}).status == 401
    taken = from_api_server(409, {"reason": "AlreadyExists", "message": "exists"}, name="llm")
    assert (taken.status, taken.headers["x-should-retry"]) == (409, "false")
    assert "llm" in taken.detail
    assert from_api_server(404, {"message": 'namespaces "nope" not found'}).status == 404
    assert from_api_server(429, {}).status == 503 and from_api_server(500, None).status == 502
    invalid = from_api_server(
        422,
        {
            "reason": "Invalid",
            "message": 'ModelTemplate.launch.modelops.dev "x" is invalid: ...',
            "details": {
                "causes": [
                    {
                        "reason": "FieldValueInvalid",
                        "message": "Invalid value: 0: spec.vendorConfiguration.endpointConfig"
                        ".perWorker in body should be greater than or equal to 1",
                        "field": "spec.vendorConfiguration.endpointConfig.perWorker",
                    },
                    {"reason": "FieldValueForbidden", "message": "no", "field": "<nil>"},
                ]
            },
        },
    )
    assert invalid.status == 422
    first, second = invalid.detail
    assert first["loc"] == ["body", "vendor_configuration", "endpoint_config", "per_worker"]
    assert first["msg"] == (
        "vendor_configuration.endpoint_config.per_worker: Invalid value: 0: "
        "vendor_configuration.endpoint_config.per_worker in body should be greater than or "
        "equal to 1"
    )
    assert (second["loc"], second["msg"]) == (["body"], "no")


def test_order_key_uses_microseconds_when_the_gateway_set_them():
    early = obj("a", "uid-z", "2026-01-01T00:00:05Z", precise="2026-01-01T00:00:05.100000Z")
    late = obj("b", "uid-a", "2026-01-01T00:00:05Z", precise="2026-01-01T00:00:05.900000Z")
    by_kubectl = obj("c", "uid-0", "2026-01-01T00:00:05Z")
    previous_second = obj("d", "uid-9", "2026-01-01T00:00:04Z")
    ordered = sorted([late, by_kubectl, early, previous_second], key=order_key)
    assert [o["metadata"]["name"] for o in ordered] == ["d", "c", "a", "b"]
    same = [obj("x", uid, "2026-01-01T00:00:05Z") for uid in ("u2", "u1")]
    assert [order_key(o)[1] for o in sorted(same, key=order_key)] == ["u1", "u2"]


@pytest.mark.parametrize(
    ("page", "limit", "total", "bounds"),
    [(1, 10, 25, (0, 10)), (3, 10, 25, (20, 25)), (4, 10, 25, (25, 25)), (1, 100, 0, (0, 0))],
)
def test_page_bounds(page, limit, total, bounds):
    assert page_bounds(page, limit, total) == bounds


def test_store_pages_per_namespace_and_overall():
    store = Store()
    for n in range(5):
        store.upsert(obj(f"t{n}", f"u{n}", f"2026-01-01T00:00:0{n}Z", namespace="ab"[n % 2]))
    first = Paging(1, 2).of(store.ordered("a"))
    assert [e.name for e in first["items"]] == ["t0", "t2"] and first["total_item_count"] == 3
    assert [e.name for e in Paging(2, 2).of(store.ordered("a"))["items"]] == ["t4"]
    assert Paging(3, 2).of(store.ordered("a"))["items"] == []
    assert [e.name for e in store.ordered(None)] == ["t0", "t1", "t2", "t3", "t4"]
    assert store.get("u3").namespace == "b" and store.get("nope") is None


def test_store_tombstones_and_read_your_writes():
    clock = [0.0]
    store = Store(clock=lambda: clock[0])
    created = obj("t", "u1", "2026-01-01T00:00:00Z")
    store.upsert(created)
    newer = copy.deepcopy(created)
    newer["spec"]["modelType"] = "GENERIC"
    store.upsert(newer)
    store.upsert(created, only_new=True)  # a create's answer never replaces what the watch saw
    assert b'"GENERIC"' in store.get("u1").json
    store.remove("u1", tombstone=True)
    store.upsert(created)  # a late watch event of the deleted template
    assert store.get("u1") is None and len(store) == 0
    store.remove("u1")  # the watch's DELETED event lifts the tombstone
    store.upsert(created)
    assert store.get("u1") is not None
    store.replace([obj("other", "u2", "2026-01-01T00:00:00Z")])
    assert store.get("u1") is None and len(store.ordered(None)) == 1


def test_ttl_cache_expires_and_stays_bounded():
    clock = [0.0]
    cache = TtlCache(10, max_entries=3, clock=lambda: clock[0])
    cache.put("k", True)
    clock[0] = 9.9
    assert cache.get("k") is True
    clock[0] = 10.0
    assert cache.get("k") is None
    for n in range(10):
        cache.put(n, n)
    assert len(cache._data) <= 3 and cache.get(9) == 9
    assert token_hash("secret") != "secret" and len(token_hash("secret")) == 64


def test_openapi_declares_the_sgp_shapes_and_every_reference_resolves():
    import json
    import re

    from kubernetes import client

    from modeltemplate_operator.gateway.app import create_app
    from modeltemplate_operator.gateway.kubeapi import KubeAPI

    app = create_app(KubeAPI(client.Configuration(host="https://127.0.0.1:1")))
    schema = app.openapi()
    components = schema["components"]["schemas"]
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(schema)))
    assert refs <= set(components), refs - set(components)
    routes = schema["paths"]["/v4/model-templates"]
    body = routes["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ModelTemplateCreate"}
    create = components["ModelTemplateCreate"]
    assert {"account_id", "name", "endpoint_type", "model_type", "vendor_configuration"} == set(
        create["required"]
    )
    template = components["ModelTemplate"]
    assert {"id", "created_at", "created_by_user_id", "created_by_identity_type"} <= set(
        template["required"]
    )
    assert "min_workers" in components["EndpointConfig"]["properties"]  # snake_case names
    params = {p["name"]: p for p in routes["get"]["parameters"]}
    assert (
        params["limit"]["schema"]["maximum"] == 10000 and params["page"]["schema"]["minimum"] == 1
    )


def test_every_route_is_typed_secured_and_named():
    from kubernetes import client

    from modeltemplate_operator.gateway.app import create_app
    from modeltemplate_operator.gateway.kubeapi import KubeAPI

    app = create_app(KubeAPI(client.Configuration(host="https://127.0.0.1:1")))
    schema = app.openapi()
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": schema["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    ids = []
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            ids.append(op["operationId"])
            assert op["security"] == [{"ApiKey": []}], (method, path)
            assert {"200", "401", "404", "422"} <= set(op["responses"]), (method, path)
            content = op["responses"]["200"].get("content") or {}
            typed = [c.get("schema") for c in content.values() if c.get("schema")]
            assert typed or "text/event-stream" in content, (method, path, content)
            if method == "post" and "{" not in path.rsplit("/", 1)[-1]:
                assert "requestBody" in op or path.startswith("/v1/"), (method, path)
    assert len(ids) == len(set(ids)) and "models-create" in ids
    for path in (
        "/v4/models/{model_instance_id}/deployments",
        "/v4/models/{model_deployment_id}/chat-completions",
        "/v4/model-deployments/{model_deployment_id}/usage-statistics",
    ):
        assert path in schema["paths"], path


def test_docs_are_served_from_the_package_not_a_cdn_and_requests_are_counted():
    from fastapi.testclient import TestClient
    from kubernetes import client

    from modeltemplate_operator.gateway.app import create_app
    from modeltemplate_operator.gateway.kubeapi import KubeAPI

    app = create_app(KubeAPI(client.Configuration(host="https://127.0.0.1:1")))
    with TestClient(app) as http:
        for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
            html = http.get(page).text
            assert f"/docs-assets/{asset}" in html and "cdn" not in html and "https://" not in html
            script = http.get(f"/docs-assets/{asset}")
            assert script.status_code == 200 and len(script.content) > 100_000
        http.get("/v4/models/some-id")  # no key: 401, counted under its route template
        metrics = http.get("/metrics").text
    assert 'modeltemplate_gateway_requests_total{code="200",method="GET",route="/docs"} 1.0' in (
        metrics
    )
    assert 'code="401",method="GET",route="/v4/models/{model_id}"' in metrics
    assert 'modeltemplate_gateway_cached_objects{kind="models"} 0.0' in metrics


def test_creator_annotations():
    from datetime import UTC, datetime

    now = datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC)
    robot = creator_annotations("system:serviceaccount:team-a:ci", now)
    assert robot == {
        "launch.modelops.dev/created-by-user-id": "system:serviceaccount:team-a:ci",
        "launch.modelops.dev/created-by-identity-type": "service_account",
        CREATED_AT_ANNOTATION: "2026-01-02T03:04:05.000678Z",
    }
    person = creator_annotations("alice@example.com", now)
    assert person["launch.modelops.dev/created-by-identity-type"] == "user"
    later = obj("x", "u", "2026-01-02T03:04:05Z", precise=robot[CREATED_AT_ANNOTATION])
    assert order_key(later) == ("2026-01-02T03:04:05.000678000", "u")


def test_a_name_conflict_names_the_entity_it_is_about():
    taken = from_api_server(409, {"reason": "AlreadyExists"}, name="ft-1", what="fine tuning job")
    assert taken.status == 409 and "a fine tuning job named 'ft-1' already exists" in str(
        taken.body()
    )


def test_unknown_keys_are_named_by_path_and_at_most_a_bound():
    assert unknown_keys(BODY, "ModelTemplateCreate") == []
    odd = copy.deepcopy(BODY)
    odd["foo"] = 1
    odd["vendor_configuration"]["bundle_config"]["zz"] = 2
    odd["vendor_configuration"]["bundle_config"]["env"]["ANY_NAME"] = "x"  # a map: any key
    assert sorted(unknown_keys(odd, "ModelTemplateCreate")) == [
        "foo",
        "vendor_configuration.bundle_config.zz",
    ]
    many = {f"k{i}": 1 for i in range(100_000)}
    assert len(unknown_keys(many, "ModelTemplateCreate")) == MAX_UNKNOWN_KEYS
