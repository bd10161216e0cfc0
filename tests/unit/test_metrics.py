"""The operator's metrics: the registry, what deploy/ scrapes and what the dashboard queries."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from modeltemplate_operator.controller import metrics
from modeltemplate_operator.forwarder.metrics import ForwarderMetrics
from modeltemplate_operator.gateway.metrics import GatewayMetrics
from modeltemplate_operator.serving.usage import Usage

pytestmark = pytest.mark.unit

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "modeltemplate-operator.json"
METRIC_NAME = re.compile(r"\b((?:modeltemplate_\w+|process_\w+))\b")


def test_owners_are_counted_by_kind_and_their_latest_ready_reason():
    reasons = metrics.ReadyReasons()
    reasons.set(("ModelTemplate", "ns", "a"), "WorkersReady")
    reasons.set(("ModelTemplate", "ns", "b"), "WorkersNotReady")
    reasons.set(("ModelTemplate", "ns", "b"), "WorkersReady")
    reasons.set(("ModelTemplate", "ns", "c"), "InvalidSpec")
    reasons.set(("ModelTemplate", "ns", "c"), None)  # deleted
    reasons.set(("Model", "ns", "a"), "WorkersReady")  # a model named like a template
    assert reasons.counts() == {("ModelTemplate", "WorkersReady"): 2, ("Model", "WorkersReady"): 1}
    (family,) = reasons.collect()
    assert [(s.labels, s.value) for s in family.samples] == [
        ({"kind": "Model", "reason": "WorkersReady"}, 1),
        ({"kind": "ModelTemplate", "reason": "WorkersReady"}, 2),
    ]


def test_the_registry_exports_every_documented_series():
    exported = metrics.names()
    documented = set(re.findall(r"``(modeltemplate_operator_\w+)", metrics.__doc__))
    for name in documented | {"modeltemplate_operator_child_prunes_total"}:
        assert name in exported or f"{name}_bucket" in exported, name
    assert "process_resident_memory_bytes" in exported


def _exported() -> set[str]:
    forwarder = ForwarderMetrics(per_worker=1)
    return metrics.names() | metrics.names(forwarder.registry) | _gateway_names()


def _gateway_names() -> set[str]:
    """What a gateway's registry exports (a gateway over no cluster: nothing is asked)."""
    gateway = SimpleNamespace(usage=Usage(), access=SimpleNamespace(on_review=None), watchers=[])
    GatewayMetrics(gateway)
    return metrics.names(gateway.usage.registry)


def _queries(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return exprs + [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]


def test_the_dashboard_queries_only_metrics_the_code_exports():
    dashboard = json.loads(DASHBOARD.read_text())
    used = {name for q in _queries(dashboard) for name in METRIC_NAME.findall(q)}
    assert used, "no metric found in the dashboard"
    assert sorted(used - _exported()) == []
    # It covers what operators watch: the queue, latency, errors, reasons, the forwarders, the
    # gateway.
    for needed in (
        "modeltemplate_operator_workqueue_depth",
        "modeltemplate_operator_reconcile_duration_seconds_bucket",
        "modeltemplate_operator_templates",
        "modeltemplate_forwarder_requests_in_flight",
        "modeltemplate_forwarder_request_duration_seconds_bucket",
        "modeltemplate_gateway_requests_total",
        "modeltemplate_gateway_request_seconds_bucket",
        "modeltemplate_gateway_access_reviews_total",
        "modeltemplate_gateway_cached_objects",
        "modeltemplate_gateway_watch_event_age_seconds",
    ):
        assert needed in used, needed


def test_the_metrics_port_is_wired_from_the_deployment_to_the_service_monitor():
    deployment = yaml.safe_load((DEPLOY / "base" / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert int(env[metrics.PORT_ENV]) == ports["metrics"]
    service = yaml.safe_load((DEPLOY / "base" / "service.yaml").read_text())
    by_name = {p["name"]: p for p in service["spec"]["ports"]}
    monitor = yaml.safe_load(
        (DEPLOY / "components" / "metrics" / "servicemonitor.yaml").read_text()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert by_name[endpoint["port"]]["targetPort"] == "metrics"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
