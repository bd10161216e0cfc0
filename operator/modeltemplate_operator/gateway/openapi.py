"""The SGP shapes in ``/openapi.json``, generated from the models (snake_case names).

The routes read and write raw JSON (the body is validated by :mod:`..validation` so errors name
SGP paths, and pages are joined from cached bytes), so their schemas are declared here, from
:class:`..models.ModelTemplateSpec` and the descriptions of the read-only status fields.
"""

from __future__ import annotations

from typing import Any

from ..api.convert import SGP_READ_ONLY_FIELDS
from ..api.models import NAME_MAX_LENGTH, NAME_PATTERN, ModelTemplateSpec, ModelTemplateStatus
from ..limits import MAX_PROBLEMS_LISTED

__all__ = ["ref", "sgp_schemas", "json_body", "json_response", "unknown_keys"]

_REF = "#/components/schemas/{model}"


def ref(model: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=model)}


def json_body(model: str) -> dict[str, Any]:
    """``openapi_extra`` of a route whose JSON body is ``model``."""
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": ref(model)}}}
    }


def json_response(model: str, description: str = "Successful Response") -> dict[int, Any]:
    return {
        200: {"description": description, "content": {"application/json": {"schema": ref(model)}}}
    }


def sgp_schemas() -> dict[str, Any]:
    """Component schemas: ModelTemplateCreate, ModelTemplate, ModelTemplatePage,
    DeleteResponse, and every nested spec model."""
    spec = ModelTemplateSpec.model_json_schema(by_alias=False, ref_template=_REF)
    schemas: dict[str, Any] = spec.pop("$defs")
    name = {
        "type": "string",
        "maxLength": NAME_MAX_LENGTH,
        "pattern": NAME_PATTERN,
        "description": "Name of the template, unique in its account (a DNS-1035 label).",
    }
    account = {"type": "string", "description": "The account (namespace) of the template."}
    schemas["ModelTemplateCreate"] = {
        **spec,
        "title": "ModelTemplateCreate",
        "properties": {"account_id": account, "name": name, **spec["properties"]},
        "required": ["account_id", "name", *spec["required"]],
    }
    status = ModelTemplateStatus.model_json_schema(by_alias=False)["properties"]
    read_only = {key: status[key] for key in SGP_READ_ONLY_FIELDS}
    read_only["created_by_identity_type"] = {
        "type": "string",
        "enum": ["user", "service_account"],
        "description": status["created_by_identity_type"].get("description", ""),
    }
    for key in ("id", "created_at", "account_id", "created_by_user_id"):
        read_only[key] = {"type": "string", "description": status[key].get("description", "")}
    schemas["ModelTemplate"] = {
        "type": "object",
        "title": "ModelTemplate",
        "properties": {"name": name, **spec["properties"], **read_only},
        "required": [*SGP_READ_ONLY_FIELDS, "name", *spec["required"]],
    }
    integer = {"type": "integer"}
    schemas["ModelTemplatePage"] = {
        "type": "object",
        "title": "ModelTemplatePage",
        "properties": {
            "items": {"type": "array", "items": ref("ModelTemplate")},
            "total_item_count": integer | {"description": "The total number of items."},
            "current_page": integer | {"description": "The current page number (from 1)."},
            "items_per_page": integer | {"description": "The number of items per page."},
        },
        "required": ["items", "total_item_count", "current_page", "items_per_page"],
    }
    schemas["DeleteResponse"] = {
        "type": "object",
        "title": "DeleteResponse",
        "properties": {"count": integer, "success": {"type": "boolean"}},
        "required": ["count", "success"],
    }
    return schemas


#: Unknown keys named in one answer.
MAX_UNKNOWN_KEYS = MAX_PROBLEMS_LISTED


def unknown_keys(body: Any, schema: str, limit: int = MAX_UNKNOWN_KEYS) -> list[str]:
    """SGP paths of the keys of ``body`` that ``schema`` (one of :func:`sgp_schemas`) does not
    declare, where it declares its keys (``additionalProperties: false``): at most ``limit``.
    Iterative and cheap; the models then validate the rest (an unknown key costs them an error
    object each, ~1 kB: a 3 MiB body of them took 280 MB)."""
    schemas = _schemas()
    found: list[str] = []
    stack: list[tuple[Any, dict[str, Any], str]] = [(body, schemas[schema], "")]
    while stack and len(found) < limit:
        value, node, path = stack.pop()
        node = _resolve(node, schemas)
        if isinstance(value, dict):
            properties = node.get("properties")
            extra = node.get("additionalProperties")
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                if properties is not None and key in properties:
                    stack.append((item, properties[key], where))
                elif isinstance(extra, dict):
                    stack.append((item, extra, where))
                elif properties is not None and extra is False:
                    found.append(where)
                    if len(found) >= limit:
                        break
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            stack.extend((item, node["items"], f"{path}[{i}]") for i, item in enumerate(value))
    return found


_SCHEMAS: dict[str, Any] = {}


def _schemas() -> dict[str, Any]:
    if not _SCHEMAS:
        _SCHEMAS.update(sgp_schemas())
    return _SCHEMAS


def _resolve(node: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """``node`` with ``$ref`` followed and an ``anyOf``/``allOf`` of one object taken."""
    for _ in range(8):
        if "$ref" in node:
            node = schemas.get(node["$ref"].rsplit("/", 1)[-1], {})
            continue
        branches = [
            b for b in node.get("anyOf") or node.get("allOf") or [] if b.get("type") != "null"
        ]
        if len(branches) == 1 and "properties" not in node:
            node = branches[0]
            continue
        break
    return node
