"""Property tests: the models and the offline validator agree; valid manifests are stable."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from support.strategies import manifests, valid_manifests

from modeltemplate_operator.api.convert import manifest_to_sgp, sgp_to_manifest
from modeltemplate_operator.api.models import ModelTemplate, is_quantity, parse_quantity
from modeltemplate_operator.api.validation import validate_manifest

pytestmark = pytest.mark.unit

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(manifests())
def test_models_and_validator_agree(manifest):
    errors = validate_manifest(manifest)
    try:
        ModelTemplate.model_validate(manifest)
        parsed = True
    except ValidationError:
        parsed = False
    assert parsed == (errors == []), errors
    for e in errors:  # every message names a field path
        assert e.startswith(("spec.", "metadata.")), e


@SETTINGS
@given(valid_manifests())
def test_valid_manifests_parse_and_dump_stably(manifest):
    assert validate_manifest(manifest) == []
    mt = ModelTemplate.model_validate(manifest)
    dumped = mt.to_manifest()
    assert validate_manifest(dumped) == []
    assert ModelTemplate.model_validate(dumped).to_manifest() == dumped


@SETTINGS
@given(manifests())
def test_sgp_round_trip_is_lossless_without_extensions(manifest):
    sgp, _ = manifest_to_sgp(manifest, keep_extensions=True)
    back = sgp_to_manifest(sgp)
    assert back == manifest


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_quantity_integers(n):
    assert parse_quantity(n) == n == parse_quantity(str(n))
    assert parse_quantity(f"{n}m") * 1000 == n
    assert parse_quantity(f"{n}Ki") == n * 1024


@given(st.text(max_size=8))
def test_quantity_parser_never_crashes(text):
    assert is_quantity(text) in (True, False)
