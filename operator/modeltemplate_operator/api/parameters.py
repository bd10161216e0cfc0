"""Parameter values checked against a parameters schema: the one checker for every caller.

A template declares two schemas of the same shape (SGP ``model_creation_parameters_schema`` and
``model_request_parameters_schema``)::

    {"parameters": [{"name": "temperature", "type": "float",
                     "description": "...", "required": false}, ...]}

:class:`ParameterSchema` is a small neutral form of it (plain dataclasses, no pydantic), built
from the template's model (:meth:`ParameterSchema.from_model`) or from the decoded JSON
(:meth:`ParameterSchema.parse`, which also accepts common type spellings such as ``string``).
:meth:`ParameterSchema.check_values` reports every problem of a values object, one
``{"field", "problem"}`` dict per bad parameter: a required parameter missing or a value of the
wrong type, and any value (declared or not) nested deeper than
:data:`~.limits.MAX_VALUE_DEPTH` levels. Types: ``str``, ``int``, ``float`` (an int is
accepted), ``bool``, ``list``, ``dict``. A ``null`` value counts as absent. Parameters the
schema does not declare are not type-checked. :meth:`ParameterSchema.check_request` applies it to the ``model_request_parameters``
object of an inference request body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..limits import MAX_VALUE_DEPTH, depth_exceeds

if TYPE_CHECKING:
    from .models import ParametersSchema

__all__ = ["TYPES", "REQUEST_BODY_KEY", "Parameter", "ParameterSchema"]

#: The parameter types and the JSON values (decoded) each accepts.
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

#: The key of an inference request body that carries the request parameters.
REQUEST_BODY_KEY = "model_request_parameters"


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

    @classmethod
    def from_model(cls, schema: ParametersSchema | None) -> ParameterSchema:
        """The neutral form of a template's (already validated) parameters schema."""
        if schema is None:
            return cls()
        return cls(
            tuple(
                Parameter(str(p.name), str(p.type), p.required, p.description or "")
                for p in schema.parameters
            )
        )

    @classmethod
    def parse(cls, doc: object) -> ParameterSchema:
        """Validate a decoded schema document and build a ParameterSchema (raises ValueError)."""
        if doc is None:
            return cls()
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
        return cls(tuple(params))

    def check_values(self, values: object, where: str) -> list[dict[str, str]]:
        """Problems with the values object found at ``where`` (the path named in messages):
        each value nested too deep, then each missing required parameter and each value of the
        wrong type, in schema order."""
        if not isinstance(values, dict):
            return [{"field": where, "problem": "must be an object"}]
        errors = [
            {"field": f"{where}.{name}", "problem": f"nested deeper than {MAX_VALUE_DEPTH} levels"}
            for name, value in values.items()
            if depth_exceeds(value, MAX_VALUE_DEPTH)
        ]
        for p in self.parameters:
            value = values.get(p.name)
            path = f"{where}.{p.name}"
            if value is None:
                if p.required:
                    errors.append({"field": path, "problem": "required parameter is missing"})
                continue
            allowed = TYPES[p.type]
            ok = isinstance(value, allowed) and not (
                isinstance(value, bool) and bool not in allowed
            )
            if not ok:
                errors.append(
                    {"field": path, "problem": f"must be of type {p.type}, got {_json_type(value)}"}
                )
        return errors

    def check_request(self, body: object, *, require_key: bool) -> list[dict[str, str]]:
        """Problems with ``body[model_request_parameters]`` of an inference request.

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
                    "field": REQUEST_BODY_KEY,
                    "problem": "request body must be a JSON object carrying " + REQUEST_BODY_KEY,
                }
            ]
        values = body.get(REQUEST_BODY_KEY)
        if values is None:
            if not require_key:
                return []
            values = {}
        return self.check_values(values, REQUEST_BODY_KEY)


def _json_type(value: Any) -> str:
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
