"""Conversion between SGP model template JSON (snake_case) and ModelTemplate manifests.

Mapping (1:1, driven by the pydantic models' field names and aliases):

- ``name`` <-> ``metadata.name``;
- every spec field: ``snake_case`` <-> ``camelCase`` (``vendor_configuration.bundle_config.
  healthcheck_route`` <-> ``spec.vendorConfiguration.bundleConfig.healthcheckRoute``);
  map values (``env``) and list items are converted key by key, env names are kept as written;
- the SGP read-only fields ``id``, ``created_at``, ``account_id``, ``created_by_user_id``,
  ``created_by_identity_type`` <-> ``status.{id,createdAt,accountId,createdByUserId,
  createdByIdentityType}`` (ignored by ``kubectl apply``: status is a subresource);
- the Kubernetes-only extensions ``secretEnv`` and ``imagePullSecrets`` have no SGP field: they
  are dropped with a warning when converting to SGP unless ``keep_extensions`` is set (then they
  are written as ``secret_env`` / ``image_pull_secrets``).

Only keys are renamed: defaults are not filled in, so a round trip returns the input. Unknown
keys are kept as they are, for the validator to report.

Field paths in error messages follow the same mapping: :func:`sgp_path` turns
``spec.vendorConfiguration.endpointConfig.minWorkers`` into
``vendor_configuration.endpoint_config.min_workers`` and :func:`sgp_message` rewrites every
path and field name of a message, so an SGP caller reads the names it sent.
"""

from __future__ import annotations

import re
import types
import typing
from functools import cache
from typing import Any

from pydantic import BaseModel

from .. import API_VERSION, KIND
from .models import ModelTemplateSpec, ModelTemplateStatus

__all__ = [
    "SGP_READ_ONLY_FIELDS",
    "EXTENSION_FIELDS",
    "sgp_to_manifest",
    "manifest_to_sgp",
    "spec_to_sgp",
    "spec_from_sgp",
    "sgp_path",
    "sgp_message",
]

SGP_READ_ONLY_FIELDS = (
    "id",
    "created_at",
    "account_id",
    "created_by_user_id",
    "created_by_identity_type",
)
#: Manifest fields (python names) with no SGP counterpart.
EXTENSION_FIELDS = ("secret_env", "image_pull_secrets")


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (``X``, ``X | None``, ``list[X]``, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is dict:
        return None
    if origin in (typing.Union, types.UnionType, list, typing.Annotated) or origin is not None:
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _rename(
    data: Any,
    model: type[BaseModel],
    *,
    to_manifest: bool,
    dropped: list[str],
    keep_ext: bool,
    path: str,
) -> Any:
    if isinstance(data, list):
        return [
            _rename(
                v,
                model,
                to_manifest=to_manifest,
                dropped=dropped,
                keep_ext=keep_ext,
                path=f"{path}[{i}]",
            )
            for i, v in enumerate(data)
        ]
    if not isinstance(data, dict):
        return data
    by_key = {}
    for name, field in model.model_fields.items():
        alias = field.alias or name
        by_key[name if to_manifest else alias] = (name, alias, field)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in by_key:
            out[key] = value
            continue
        name, alias, field = by_key[key]
        if not to_manifest and name in EXTENSION_FIELDS and not keep_ext:
            dropped.append(f"{path}.{key}" if path else key)
            continue
        new_key = alias if to_manifest else name
        sub = _model_of(field.annotation)
        if sub is not None:
            value = _rename(
                value,
                sub,
                to_manifest=to_manifest,
                dropped=dropped,
                keep_ext=keep_ext,
                path=f"{path}.{key}" if path else key,
            )
        out[new_key] = value
    return out


def spec_from_sgp(sgp_spec: dict[str, Any]) -> dict[str, Any]:
    """Rename the spec part of an SGP model template (snake_case) to camelCase."""
    return _rename(
        sgp_spec, ModelTemplateSpec, to_manifest=True, dropped=[], keep_ext=True, path=""
    )


def spec_to_sgp(
    spec: dict[str, Any], *, keep_extensions: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """Rename a manifest spec to SGP snake_case; returns (spec, dropped extension paths)."""
    dropped: list[str] = []
    out = _rename(
        spec,
        ModelTemplateSpec,
        to_manifest=False,
        dropped=dropped,
        keep_ext=keep_extensions,
        path="spec",
    )
    return out, dropped


def sgp_to_manifest(sgp: dict[str, Any], *, namespace: str | None = None) -> dict[str, Any]:
    """An SGP model template (as returned by the SGP API) as a ModelTemplate manifest."""
    if not isinstance(sgp, dict):
        raise ValueError("an SGP model template must be a JSON object")
    metadata: dict[str, Any] = {}
    if "name" in sgp:
        metadata["name"] = sgp["name"]
    if namespace:
        metadata["namespace"] = namespace
    spec_in = {k: v for k, v in sgp.items() if k != "name" and k not in SGP_READ_ONLY_FIELDS}
    status_in = {k: sgp[k] for k in SGP_READ_ONLY_FIELDS if k in sgp}
    manifest: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": spec_from_sgp(spec_in),
    }
    if status_in:
        manifest["status"] = _rename(
            status_in, ModelTemplateStatus, to_manifest=True, dropped=[], keep_ext=True, path=""
        )
    return manifest


def manifest_to_sgp(
    manifest: dict[str, Any], *, keep_extensions: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """A ModelTemplate manifest as an SGP model template; returns (sgp, warnings)."""
    if not isinstance(manifest, dict):
        raise ValueError("a manifest must be a mapping")
    warnings: list[str] = []
    sgp: dict[str, Any] = {}
    name = (manifest.get("metadata") or {}).get("name")
    if name is not None:
        sgp["name"] = name
    spec, dropped = spec_to_sgp(manifest.get("spec") or {}, keep_extensions=keep_extensions)
    sgp.update(spec)
    for path in dropped:
        warnings.append(f"{path} has no SGP field: dropped (use --keep-extensions to keep it)")
    status = manifest.get("status") or {}
    renamed = _rename(
        status, ModelTemplateStatus, to_manifest=False, dropped=[], keep_ext=True, path=""
    )
    for key in SGP_READ_ONLY_FIELDS:
        if key in renamed:
            sgp[key] = renamed[key]
    return sgp, warnings


_PATH_PART = re.compile(r"([^.\[]+)((?:\[[^\]]*\])*)")
#: A manifest field path inside a message: metadata.x or spec.x.y[0].z.
_MANIFEST_PATH = re.compile(r"\b(?:metadata|spec)(?:\.[A-Za-z_][A-Za-z0-9_]*|\[[^\]\s]*\])+")
_CAMEL_WORD = re.compile(r"\b[a-z]+(?:[A-Z][a-z0-9]*)+\b")


def sgp_path(path: str) -> str:
    """A manifest field path as the SGP field path (``metadata.name`` -> ``name``;
    ``spec.vendorConfiguration.bundleConfig.healthcheckRoute`` ->
    ``vendor_configuration.bundle_config.healthcheck_route``; list indexes and map keys kept)."""
    if path == "metadata.name":
        return "name"
    if not path.startswith("spec.") and not path.startswith("spec["):
        return path
    model: type[BaseModel] | None = ModelTemplateSpec
    out: list[str] = []
    for key, index in _PATH_PART.findall(path[len("spec.") :]):
        field = _field_by_alias(model, key) if model is not None else None
        if field is None:
            out.append(key + index)
            model = None
            continue
        name, annotation = field
        out.append(name + index)
        model = _model_of(annotation)
    return ".".join(out)


def sgp_message(message: str) -> str:
    """A validation message with manifest paths and camelCase field names in SGP's terms."""
    message = _MANIFEST_PATH.sub(lambda m: sgp_path(m.group(0)), message)
    names = _snake_names()
    return _CAMEL_WORD.sub(lambda m: names.get(m.group(0), m.group(0)), message)


def _field_by_alias(model: type[BaseModel], key: str) -> tuple[str, Any] | None:
    for name, field in model.model_fields.items():
        if (field.alias or name) == key:
            return name, field.annotation
    return None


@cache
def _snake_names() -> dict[str, str]:
    """camelCase alias -> snake_case name of every spec field (all nesting levels)."""
    names: dict[str, str] = {}
    todo: list[type[BaseModel]] = [ModelTemplateSpec]
    seen: set[type[BaseModel]] = set()
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            if field.alias and field.alias != name:
                names[field.alias] = name
            sub = _model_of(field.annotation)
            if sub is not None:
                todo.append(sub)
    return names


# --- Models ---------------------------------------------------------------------------------
#
# An SGP model (``/v4/models``) <-> a Model resource:
#
# - ``name`` <-> ``metadata.name``; ``model_template_id`` (the template's id, its uid) <->
#   ``spec.templateRef.name`` (the caller resolves one to the other: the template must be in the
#   model's namespace); ``model_creation_parameters`` <-> ``spec.creationParameters`` (values
#   kept as they are); ``model_type`` <-> ``spec.modelType``;
# - ``display_name`` and ``description`` <-> the annotations :data:`MODEL_SGP_ANNOTATIONS`
#   (a Model has no spec field for them: they describe, they change nothing that runs);
# - ``model_vendor`` is always ``LAUNCH`` (a Model is served by this operator);
# - the read-only ``id``, ``created_at``, ``account_id`` come from ``metadata`` (uid,
#   creationTimestamp, namespace), like a template's in the gateway.
#
# The SGP fields with no Model counterpart are :data:`MODEL_UNSUPPORTED_FIELDS`: refused on the
# way in (naming the field), never silently dropped.

#: SGP model field -> annotation of the Model carrying it.
MODEL_SGP_ANNOTATIONS = {
    "display_name": "launch.modelops.dev/display-name",
    "description": "launch.modelops.dev/description",
}
MODEL_VENDOR = "LAUNCH"
MODEL_UNSUPPORTED_FIELDS = (
    "base_model_id",
    "base_model_metadata",
    "model_card",
    "training_data_card",
    "model_group_id",
)
#: Model manifest path -> SGP field (message paths; nested parameter paths keep their suffix).
_MODEL_PATHS = {
    "metadata.name": "name",
    "spec.templateRef.name": "model_template_id",
    "spec.templateRef": "model_template_id",
    "spec.creationParameters": "model_creation_parameters",
    "spec.modelType": "model_type",
}


def model_manifest_from_sgp(
    sgp: dict[str, Any], *, template_name: str, namespace: str | None = None
) -> dict[str, Any]:
    """The Model manifest an SGP model body asks for; ``template_name`` is the name of the
    template ``model_template_id`` designates. Read-only and unsupported fields are not copied
    (the caller refuses the unsupported ones first)."""
    metadata: dict[str, Any] = {"name": sgp.get("name")}
    if namespace:
        metadata["namespace"] = namespace
    annotations = {
        MODEL_SGP_ANNOTATIONS[key]: sgp[key]
        for key in MODEL_SGP_ANNOTATIONS
        if sgp.get(key) is not None
    }
    if annotations:
        metadata["annotations"] = annotations
    spec: dict[str, Any] = {"templateRef": {"name": template_name}}
    if sgp.get("model_creation_parameters") is not None:
        spec["creationParameters"] = sgp["model_creation_parameters"]
    if sgp.get("model_type") is not None:
        spec["modelType"] = sgp["model_type"]
    return {"apiVersion": API_VERSION, "kind": "Model", "metadata": metadata, "spec": spec}


def model_manifest_to_sgp(
    manifest: dict[str, Any], *, template_id: str | None, template_model_type: str | None = None
) -> dict[str, Any]:
    """A Model manifest as an SGP model: the mapped fields only (the gateway adds the
    client's other required fields). ``template_id``: the uid of the template the model names
    (None when it is not found); ``model_type`` falls back to ``template_model_type``."""
    meta = manifest.get("metadata") or {}
    spec = manifest.get("spec") or {}
    annotations = meta.get("annotations") or {}
    sgp: dict[str, Any] = {
        "name": meta.get("name"),
        "model_template_id": template_id,
        "model_creation_parameters": spec.get("creationParameters") or {},
        "model_type": spec.get("modelType") or template_model_type,
        "model_vendor": MODEL_VENDOR,
    }
    for key, annotation in MODEL_SGP_ANNOTATIONS.items():
        if annotation in annotations:
            sgp[key] = annotations[annotation]
    if "uid" in meta:
        sgp["id"] = meta["uid"]
    if "namespace" in meta:
        sgp["account_id"] = meta["namespace"]
    if "creationTimestamp" in meta:
        sgp["created_at"] = meta["creationTimestamp"]
    return sgp


def sgp_model_path(path: str) -> str:
    """A Model manifest field path as the SGP model field path
    (``spec.creationParameters.tp`` -> ``model_creation_parameters.tp``); paths with no SGP
    counterpart (``spec.minWorkers``) are kept."""
    for prefix in sorted(_MODEL_PATHS, key=len, reverse=True):
        if path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "["):
            return _MODEL_PATHS[prefix] + path[len(prefix) :]
    return path
