"""Validation of ModelTemplate manifests with human-readable messages.

:func:`validate_manifest` parses a manifest dict with the pydantic models (which run every
rule of the CRD: OpenAPI constraints and the Python twins of the CEL rules) and returns one
message per problem, each naming the camelCase field path and the offending value, e.g.
``spec.vendorConfiguration.endpointConfig.minWorkers (3) must be <= maxWorkers (1)``.

The operator runs the same function on every object it reconciles and reports the result in
status, so a rule the API server did not apply (a CRD installed without CEL, validation
ratcheting of an old object, an object written before a rule existed) is never silently
accepted. Every spec rule of this API is expressible in the CRD (OpenAPI or CEL) and lives
in the models, so parsing with the models is the whole check.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from .. import API_VERSION, KIND, MODEL_DEPLOYMENT_KIND, MODEL_KIND
from .models import PATTERN_HELP, X_RULE_ERROR, Model, ModelDeployment, ModelTemplate

__all__ = [
    "parse_model_manifest",
    "parse_deployment_manifest",
    "ManifestInvalid",
    "validate_manifest",
    "parse_manifest",
    "format_errors",
    "format_path",
]

_QUANTITY_FIELDS = {"cpus", "memory", "storage"}
_UNION_TAGS = {"int", "str", "constrained-str"}

_TYPE_NAMES = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "string_type": "a string",
    "bool_type": "a boolean",
    "dict_type": "an object",
    "list_type": "a list",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "float_type": "a number",
}


class ManifestInvalid(ValueError):
    """A manifest failed validation; ``errors`` holds the messages."""

    def __init__(self, errors: Sequence[str]):
        super().__init__("\n".join(errors))
        self.errors = list(errors)


def format_path(loc: Iterable[Any]) -> str:
    """``('spec', 'x', 0, 'name')`` -> ``spec.x[0].name``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _show(value: Any) -> str:
    """A value inside a message: scalars as written, containers as JSON."""
    if isinstance(value, str):
        return (
            value if value and value.strip() == value and value.isprintable() else json.dumps(value)
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) or value is None:
        return json.dumps(value)
    try:
        text = json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _show_typed(value: Any) -> str:
    """Like _show, but strings always quoted (``"120"`` is not ``120``)."""
    return json.dumps(value) if isinstance(value, str) else _show(value)


def _got(value: Any) -> str:
    """What was given instead: ``null``, or the type and the value (``string "3"``)."""
    return "null" if value is None else f"{_type_of(value)} {_show_typed(value)}"


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    if value is None:
        return "null"
    return type(value).__name__


def _message(err: dict[str, Any]) -> list[str]:
    loc = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    path = format_path(loc)
    if kind == X_RULE_ERROR:
        messages = ctx.get("messages") or [ctx.get("message", err["msg"])]
        if ctx.get("field"):
            parent = format_path(loc[:-1])
        else:
            parent = path
        return [f"{parent}.{m}" if parent else m for m in messages]
    if kind == "missing":
        return [f"{path}: required field is missing"]
    if kind == "extra_forbidden":
        return [f"{path}: unknown field"]
    if kind == "enum":
        return [f"{path} ({_show(value)}) must be one of {ctx.get('expected', '')}"]
    if kind == "literal_error":
        return [f"{path} ({_show(value)}) must be {ctx.get('expected', '')}"]
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        help_text = PATTERN_HELP.get(pattern)
        what = f"{help_text} (pattern {pattern})" if help_text else f"match the pattern {pattern}"
        return [f"{path} ({_show(value)}) must be {what}"]
    if kind == "string_too_long":
        return [f"{path} ({_show(value)}) must be at most {ctx['max_length']} characters"]
    if kind == "string_too_short":
        return [f"{path} ({_show(value)}) must be at least {ctx['min_length']} characters"]
    if kind == "too_long":
        actual = ctx.get("actual_length")
        if actual is None and hasattr(value, "__len__"):
            actual = len(value)
        has = f" (has {actual})" if actual is not None else ""
        return [f"{path} must have at most {ctx['max_length']} items{has}"]
    if kind == "too_short":
        return [f"{path} must have at least {ctx['min_length']} items"]
    if kind == "greater_than_equal":
        return [f"{path} ({_show(value)}) must be >= {ctx['ge']}"]
    if kind == "less_than_equal":
        return [f"{path} ({_show(value)}) must be <= {ctx['le']}"]
    if kind == "greater_than":
        return [f"{path} ({_show(value)}) must be > {ctx['gt']}"]
    if kind == "less_than":
        return [f"{path} ({_show(value)}) must be < {ctx['lt']}"]
    if kind in _TYPE_NAMES:
        return [f"{path} must be {_TYPE_NAMES[kind]} (got {_got(value)})"]
    return [f"{path} ({_show(value)}): {err['msg']}"]


def format_errors(exc: ValidationError) -> list[str]:
    """Messages for a pydantic ValidationError of :class:`ModelTemplate`."""
    errors = exc.errors(include_url=False)
    out: list[str] = []
    unions: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for err in errors:
        loc = tuple(err["loc"])
        if len(loc) >= 2 and loc[-1] in _UNION_TAGS and loc[-2] in _QUANTITY_FIELDS:
            unions.setdefault(loc[:-1], []).append(err)
            continue
        out.extend(_message(err))
    for loc, errs in unions.items():
        specific = [e for e in errs if e["type"] not in _TYPE_NAMES]
        if specific:
            for e in specific:
                out.extend(_message({**e, "loc": loc}))
        else:
            value = errs[0].get("input")
            out.append(
                f"{format_path(loc)} must be an integer or a quantity string (got {_got(value)})"
            )
    return list(dict.fromkeys(out))


_Parsed = TypeVar("_Parsed", ModelTemplate, Model, ModelDeployment)


def _parse(manifest: Any, kind: str, model: type[_Parsed]) -> _Parsed:
    if not isinstance(manifest, dict):
        raise ManifestInvalid([f"manifest must be an object (got {_type_of(manifest)})"])
    errors: list[str] = []
    if manifest.get("apiVersion") != API_VERSION:
        errors.append(f"apiVersion ({_show(manifest.get('apiVersion'))}) must be {API_VERSION}")
    if manifest.get("kind") != kind:
        errors.append(f"kind ({_show(manifest.get('kind'))}) must be {kind}")
    if errors:
        raise ManifestInvalid(errors)
    try:
        return model.model_validate(manifest)
    except ValidationError as exc:
        raise ManifestInvalid(format_errors(exc)) from None


def parse_manifest(manifest: Any) -> ModelTemplate:
    """Parse a manifest dict into a :class:`ModelTemplate`; raises :class:`ManifestInvalid`."""
    return _parse(manifest, KIND, ModelTemplate)


def validate_manifest(manifest: Any) -> list[str]:
    """All problems of a ModelTemplate manifest (empty list: valid). No cluster needed."""
    try:
        parse_manifest(manifest)
    except ManifestInvalid as exc:
        return exc.errors
    return []


def parse_model_manifest(manifest: Any) -> Model:
    """Parse a Model manifest dict (the CRD's rules, messages naming the field); raises
    :class:`ManifestInvalid`."""
    return _parse(manifest, MODEL_KIND, Model)


def parse_deployment_manifest(manifest: Any) -> ModelDeployment:
    """Parse a ModelDeployment manifest dict; raises :class:`ManifestInvalid`."""
    return _parse(manifest, MODEL_DEPLOYMENT_KIND, ModelDeployment)


def validate_kind(manifest: Any) -> list[str]:
    """All problems of a manifest of any kind of the project (the owner kinds of
    :data:`~.kinds.OWNERS`, each checked by its pydantic root: the rules of its CRD); an object
    of another kind is one problem naming the kinds known. No cluster needed."""
    from .kinds import OWNER_BY_KIND

    kind = manifest.get("kind") if isinstance(manifest, dict) else None
    owner = OWNER_BY_KIND.get(kind) if isinstance(kind, str) else None
    if owner is None or owner.root is None:
        if not isinstance(manifest, dict):
            return [f"manifest must be an object (got {_type_of(manifest)})"]
        known = ", ".join(k for k, o in OWNER_BY_KIND.items() if o.root is not None)
        if kind is None:
            # No kind at all: the template's rules (the kind is one of its errors).
            return validate_manifest(manifest)
        return [f"kind ({_show(kind)}) must be one of {known}"]
    try:
        _parse(manifest, owner.kind, owner.root)
    except ManifestInvalid as exc:
        return exc.errors
    return []
