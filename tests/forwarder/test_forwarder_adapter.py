"""deploy/prometheus-adapter: the rule's copies agree and name a series the forwarder exports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from modeltemplate_operator.forwarder.metrics import ForwarderMetrics

pytestmark = pytest.mark.unit

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus-adapter"


def _rules():
    rules = yaml.safe_load((DEPLOY / "rules.yaml").read_text())["rules"]
    helm = yaml.safe_load((DEPLOY / "values.yaml").read_text())["rules"]["custom"]
    cm = yaml.safe_load((DEPLOY / "configmap.yaml").read_text())
    plain = yaml.safe_load(cm["data"]["config.yaml"])["rules"]
    return rules, helm, plain


def test_the_three_copies_of_the_rule_are_identical():
    rules, helm, plain = _rules()
    assert rules == helm == plain
    assert [r["name"]["as"] for r in rules] == ["request-concurrency-average"]


def test_the_rule_reads_a_series_the_forwarder_exports_with_pod_and_namespace():
    (rule,) = _rules()[0]
    series = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{", rule["seriesQuery"]).group(1)
    exported = ForwarderMetrics(10).render().decode()
    assert re.search(r"^" + re.escape(series) + r" ", exported, re.M), series
    assert rule["resources"]["overrides"] == {
        "namespace": {"resource": "namespace"},
        "pod": {"resource": "pod"},
    }
    assert re.fullmatch(rule["name"]["matches"], series)
    assert "rate(<<.Series>>{<<.LabelMatchers>>}" in rule["metricsQuery"]
