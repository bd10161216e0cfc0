"""The template's ``modelRequestParametersSchema`` and the check of ``model_request_parameters``.

Schema shape (SGP ``model_request_parameters_schema``)::

    {"parameters": [{"name": "temperature", "type": "float",
                     "description": "...", "required": false}, ...]}

Types: ``str``, ``int``, ``float`` (an int is accepted), ``bool``, ``list``, ``dict``.
A ``null`` value counts as absent. Parameters the schema does not declare are passed through.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}
# Spellings people use for the same types.
_ALIASES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
}

BODY_KEY = "model_request_parameters"


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class ParameterSchema:
    parameters: tuple[Parameter, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return bool(self.parameters)

    @property
    def has_required(self) -> bool:
        return any(p.required for p in self.parameters)

    def check(self, body: object, *, require_key: bool) -> list[dict]:
        """Problems with ``body[model_request_parameters]``, one dict per bad field.

        ``require_key``: whether a body without the key is checked as an empty object
        (so missing required parameters are reported) or skipped.
        """
        if not self.parameters:
            return []
        if not isinstance(body, dict):
            if not require_key:
                return []
            return [
                {
                    "field": BODY_KEY,
                    "problem": "request body must be a JSON object carrying " + BODY_KEY,
                }
            ]
        values = body.get(BODY_KEY)
        if values is None:
            if not require_key:
                return []
            values = {}
        if not isinstance(values, dict):
            return [{"field": BODY_KEY, "problem": "must be an object"}]
        errors = []
        for p in self.parameters:
            value = values.get(p.name)
            where = f"{BODY_KEY}.{p.name}"
            if value is None:
                if p.required:
                    errors.append({"field": where, "problem": "required parameter is missing"})
                continue
            allowed = TYPES[p.type]
            ok = isinstance(value, allowed) and not (
                isinstance(value, bool) and bool not in allowed
            )
            if not ok:
                errors.append(
                    {
                        "field": where,
                        "problem": f"must be of type {p.type}, got {_json_type(value)}",
                    }
                )
        return errors


def _json_type(value: object) -> str:
    for name, cls in (
        ("bool", bool),
        ("int", int),
        ("float", float),
        ("str", str),
        ("list", list),
        ("dict", dict),
    ):
        if isinstance(value, cls):
            return name
    return type(value).__name__


def parse_schema(doc: object) -> ParameterSchema:
    """Validate a decoded schema document and build a ParameterSchema (raises ValueError)."""
    if doc is None:
        return ParameterSchema()
    if isinstance(doc, list):
        doc = {"parameters": doc}
    if not isinstance(doc, dict) or not isinstance(doc.get("parameters", []), list):
        raise ValueError('schema must be an object {"parameters": [...]}')
    params = []
    seen = set()
    for i, item in enumerate(doc.get("parameters") or []):
        if not isinstance(item, dict):
            raise ValueError(f"parameters[{i}] must be an object")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"parameters[{i}].name must be a non-empty string")
        if name in seen:
            raise ValueError(f"parameters[{i}].name {name!r} is declared twice")
        seen.add(name)
        ptype = item.get("type")
        if isinstance(ptype, str):
            ptype = _ALIASES.get(ptype.strip().lower(), ptype.strip().lower())
        if ptype not in TYPES:
            raise ValueError(
                f"parameters[{i}].type {item.get('type')!r} must be one of {', '.join(TYPES)}"
            )
        required = item.get("required", False)
        if not isinstance(required, bool):
            raise ValueError(f"parameters[{i}].required must be true or false")
        params.append(
            Parameter(
                name=name,
                type=ptype,
                required=required,
                description=str(item.get("description") or ""),
            )
        )
    return ParameterSchema(tuple(params))


def load_schema(raw: str) -> ParameterSchema:
    """``raw`` is the schema as JSON text, or a path to a file holding it; empty means none."""
    text = raw.strip()
    if not text:
        return ParameterSchema()
    if text[0] not in "{[":
        if not os.path.isfile(text):
            raise ValueError(f"neither JSON nor a readable file: {text!r}")
        with open(text, encoding="utf-8") as fh:
            text = fh.read()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    return parse_schema(doc)
