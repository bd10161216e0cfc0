"""Hypothesis: the API server (CRD schema + CEL), the models and the offline validator agree on
which manifests are valid; for valid ones the server's defaulting equals the models', and every
child the operator renders from them is one the API server accepts (server-side dry run).

``FUZZ_EXAMPLES`` sets the number of examples (``make test``: 80; ``make chaos``: more)."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from kubernetes import client
from kubernetes.client.rest import ApiException
from pydantic import ValidationError
from support.strategies import manifests

from modeltemplate_operator import GROUP, PLURAL, VERSION
from modeltemplate_operator.api import kinds
from modeltemplate_operator.api.models import ModelTemplate
from modeltemplate_operator.api.validation import parse_manifest, validate_manifest
from modeltemplate_operator.controller.cluster import FIELD_MANAGER
from modeltemplate_operator.controller.kube import APPLY_PATCH, request
from modeltemplate_operator.plan.config import OperatorConfig
from modeltemplate_operator.plan.resolution import plan_for
from modeltemplate_operator.render.workloads import render

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "80"))

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]


def server_dry_run(api: client.CustomObjectsApi, manifest: dict) -> tuple[dict | None, str | None]:
    try:
        created = api.create_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, manifest, dry_run="All", field_validation="Strict"
        )
        return created, None
    except ApiException as exc:
        if exc.status not in (400, 422):
            raise
        body = json.loads(exc.body) if exc.body else {}
        return None, body.get("message", str(exc))


def children_refused(api_client, created: dict) -> list[str]:
    """The rendered children of a (dry-run) created template the API server refuses."""
    plan = plan_for(parse_manifest(created), OperatorConfig(), keda_installed=False)
    refused = []
    for child in render(plan):
        path = kinds.for_object(child).path("default", child["metadata"]["name"])
        query = [("fieldManager", FIELD_MANAGER), ("force", "true"), ("dryRun", "All")]
        try:
            request(api_client, "PATCH", path, body=child, query=query, content_type=APPLY_PATCH)
        except ApiException as exc:
            refused.append(f"{child['kind']}: {exc.status} {exc.body}")
    return refused


@pytest.fixture(scope="module")
def custom_api(api_client, crd_installed):
    return client.CustomObjectsApi(api_client)


def test_models_crd_and_validator_agree(custom_api, api_client):
    counts = {"valid": 0, "invalid": 0}

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(manifests())
    def check(manifest):
        errors = validate_manifest(manifest)
        try:
            model = ModelTemplate.model_validate(manifest)
        except ValidationError:
            model = None
        created, server_error = server_dry_run(custom_api, manifest)
        assert (model is not None) == (errors == []), errors
        assert (created is not None) == (errors == []), (
            f"validator: {errors or 'valid'}\nAPI server: {server_error or 'valid'}\n"
            f"spec: {json.dumps(manifest['spec'])}"
        )
        if created is not None:
            counts["valid"] += 1
            assert created["spec"] == model.to_manifest()["spec"]
            assert children_refused(api_client, created) == [], json.dumps(manifest["spec"])
        else:
            counts["invalid"] += 1

    check()
    assert counts["valid"] and counts["invalid"], counts
