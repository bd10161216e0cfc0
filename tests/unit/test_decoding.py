"""The JSON decoder of Kopf's lists and watches: any object the API server accepted decodes."""

from __future__ import annotations

import json

import pytest

from modeltemplate_operator import decoding
from modeltemplate_operator.limits import MAX_DOCUMENT_DEPTH, depth_exceeds, text_too_deep

pytestmark = pytest.mark.unit


def _model(levels: int) -> str:
    """A Model's watch line whose creation parameter nests ``levels`` deep (as the issue's)."""
    value = "[" * levels + "]" * levels
    return (
        '{"type":"ADDED","object":{"kind":"Model","metadata":{"name":"poison","namespace":"a"},'
        f'"spec":{{"templateRef":{{"name":"t"}},"creationParameters":{{"x":{value}}}}}}}}}'
    )


@pytest.mark.parametrize("levels", [10, 800, 1_000, 9_000, 9_990])
def test_every_depth_the_api_server_stores_decodes(levels):
    event = decoding.loads(_model(levels))
    assert event["object"]["metadata"]["name"] == "poison"
    params = event["object"]["spec"]["creationParameters"]
    assert not depth_exceeds(event, MAX_DOCUMENT_DEPTH)
    # still deeper than any free-form value may be: the reconcile names the field
    assert depth_exceeds(params["x"], 32) is (levels > 32)


def test_python_json_gives_up_where_the_api_server_does_not():
    with pytest.raises(RecursionError):
        json.loads(_model(1_000))


def test_ordinary_objects_decode_as_before():
    line = json.dumps({"a": [{"b": "[[[{{{" * 50, "c": [1, 2.5, None, True]}] * 100})
    assert not text_too_deep(line)
    assert decoding.loads(line) == json.loads(line)
    assert decoding.loads(line.encode()) == json.loads(line)


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"s": '\\"[[' * 200 + "{" * 100})
    assert not text_too_deep(text)
    assert text_too_deep("[" * 65 + "]" * 65) and not text_too_deep("[" * 64 + "]" * 64)


def test_prune_cuts_exactly_at_the_limit():
    value = json.loads("[" * 70 + "]" * 70)
    pruned = decoding.prune(value, 64)
    assert not depth_exceeds(pruned, 64) and depth_exceeds(pruned, 63)


@pytest.mark.parametrize(
    "url, bounded",
    [
        ("https://k:6443/api/v1/namespaces/a/pods?watch=false", True),
        ("https://k:6443/apis/apps/v1/deployments", True),
        ("https://k:6443/apis/policy/v1/namespaces/a/poddisruptionbudgets", True),
        ("https://k:6443/apis/launch.modelops.dev/v1alpha1/models", False),
        ("https://k:6443/apis/apiextensions.k8s.io/v1/customresourcedefinitions", False),
        ("https://k:6443/apis/keda.sh/v1alpha1/scaledobjects", False),
        ("https://k:6443/apis", False),
    ],
)
def test_lists_of_kubernetes_own_kinds_skip_the_depth_measure(url, bounded):
    assert decoding.schema_bounds_depth(url) is bounded


@pytest.mark.parametrize("levels", [10, 9_000])
def test_text_said_to_be_bounded_that_is_not_is_still_cut(levels):
    """Should a list said to be bounded nest past orjson's limit after all, the checked path
    decodes it: wrong bookkeeping costs time, never the operator."""
    event = decoding.loads(_model(levels), schema_bounded=True)
    assert event["object"]["metadata"]["name"] == "poison"
    assert not depth_exceeds(event, 1_100)
