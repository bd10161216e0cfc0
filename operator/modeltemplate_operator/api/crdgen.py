"""Generate the CustomResourceDefinitions, one per owner kind (:data:`.kinds.OWNERS`), from the
pydantic models.

    python -m modeltemplate_operator.api.crdgen crds/      # writes crds/<group>_<plural>.yaml each

:data:`CRDS` is the table of owner kinds (:data:`.kinds.OWNERS`: names, root class, printer
columns, references). :func:`crd_dict` returns a CRD as a plain dict (used by the tests and the
operator; the ModelTemplate's unless another owner kind is given); :func:`crd_yaml` its deterministic YAML text. The schema is derived
from the root class's ``model_json_schema()``: ``$ref`` inlined, optionals made plain optional fields,
``int | str`` turned into ``x-kubernetes-int-or-string``, pydantic-only keywords dropped, the
models' :class:`~modeltemplate_operator.api.models.XRule` s emitted as ``x-kubernetes-validations``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from .. import VERSION
from . import kinds
from .kinds import MODEL_TEMPLATE, OwnerKind
from .models.rules import XRule

__all__ = [
    "CRDS",
    "crd_filename",
    "crd_dict",
    "crd_yaml",
    "openapi_schema",
    "write_crds",
    "main",
]

CATEGORIES = ["modelops"]
INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]

#: Every generated CRD, in the order they are written: one per owner kind of the table.
CRDS: tuple[OwnerKind, ...] = kinds.OWNERS


def crd_filename(crd: OwnerKind) -> str:
    return f"{crd.group}_{crd.plural}.yaml"


def _selectable_fields(crd: OwnerKind) -> list[dict[str, str]]:
    """``kubectl get --field-selector``: the kind's own fields and each owner it names
    (``kubectl get mdl --field-selector spec.templateRef.name=<template>``)."""
    paths = [*crd.selectable_fields, *(ref.json_path for ref in crd.refs)]
    return [{"jsonPath": p} for p in paths]


# Output order of schema keywords (anything else is dropped).
_KEY_ORDER = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "x-kubernetes-int-or-string",
    "anyOf",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "items",
    "additionalProperties",
    "properties",
    "required",
    "x-kubernetes-validations",
)


def _model_classes(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """All pydantic model classes reachable from ``root``, by class name (= $defs key)."""
    found: dict[str, type[BaseModel]] = {}

    def visit(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp.__name__ in found:
                return
            found[tp.__name__] = tp
            for field in tp.model_fields.values():
                visit(field.annotation)
            return
        for arg in getattr(tp, "__args__", ()) or ():
            visit(arg)
        origin = getattr(tp, "__origin__", None)
        if origin is not None and origin is not tp:
            visit(origin)

    visit(root)
    return found


def _class_rules(cls: type[BaseModel] | None) -> list[dict[str, str]]:
    rules: tuple[XRule, ...] = getattr(cls, "__x_rules__", ()) if cls else ()
    return [r.to_cel() for r in rules if r.rule]


_RULE_KEYS = ("rule", "message", "messageExpression", "fieldPath", "reason")


def _ordered_rule(rule: dict[str, str]) -> dict[str, str]:
    return {k: rule[k] for k in _RULE_KEYS if k in rule}


def _description(text: str) -> str:
    return " ".join(text.split())


class _Converter:
    def __init__(self, schema: dict[str, Any], classes: dict[str, type[BaseModel]]):
        self.defs: dict[str, Any] = schema.get("$defs", {})
        self.classes = classes

    def convert(self, node: dict[str, Any], cls_name: str | None = None) -> dict[str, Any]:
        node = dict(node)
        if "$ref" in node:
            name = node.pop("$ref").rsplit("/", 1)[-1]
            base = self.convert(self.defs[name], cls_name=name)
            overlay = (
                self.convert({k: v for k, v in node.items() if k != "title"}, None) if node else {}
            )
            merged = {
                **base,
                **{k: v for k, v in overlay.items() if k != "x-kubernetes-validations"},
            }
            rules = base.get("x-kubernetes-validations", []) + overlay.get(
                "x-kubernetes-validations", []
            )
            if rules:
                merged["x-kubernetes-validations"] = rules
            return self._ordered(merged)
        if "anyOf" in node:
            variants = [v for v in node.pop("anyOf") if v.get("type") != "null"]
            if node.get("default", "unset") is None:
                node.pop("default")
            if len(variants) == 1:
                inner = variants[0]
                return self.convert({**inner, **node} if "$ref" not in inner else {**node, **inner})
            types = sorted(v.get("type") for v in variants)
            if types == ["integer", "string"]:
                out = {k: v for k, v in node.items()}
                out["x-kubernetes-int-or-string"] = True
                out["anyOf"] = [dict(t) for t in INT_OR_STRING]
                for v in variants:
                    if v.get("type") == "string" and "maxLength" in v:
                        out["maxLength"] = v["maxLength"]
                return self._ordered(out)
            raise ValueError(f"unsupported union in schema: {variants}")

        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("title", "const") or (key == "default" and value is None):
                continue
            if key == "description":
                out[key] = _description(value)
            elif key == "properties":
                out[key] = {k: self.convert(v) for k, v in value.items()}
            elif key == "items":
                out[key] = self.convert(value)
            elif key == "additionalProperties":
                if value is True:
                    out["x-kubernetes-preserve-unknown-fields"] = True
                elif isinstance(value, dict):
                    out[key] = self.convert(value)
            elif key == "propertyNames":
                continue
            elif key == "x-kubernetes-validations":
                out[key] = [_ordered_rule(r) for r in value]
            else:
                out[key] = value
        rules = _class_rules(self.classes.get(cls_name)) if cls_name else []
        if rules:
            out["x-kubernetes-validations"] = out.get("x-kubernetes-validations", []) + rules
        if "enum" in out and "type" not in out:
            out["type"] = "string"
        return self._ordered(out)

    @staticmethod
    def _ordered(node: dict[str, Any]) -> dict[str, Any]:
        out = {k: node[k] for k in _KEY_ORDER if k in node}
        if "x-kubernetes-validations" in out:
            out["x-kubernetes-validations"] = [
                _ordered_rule(r) for r in out["x-kubernetes-validations"]
            ]
        return out


def _explained(node: dict[str, Any]) -> None:
    """Type and default in the descriptions: `kubectl explain` shows no defaults, and shows
    integer-or-string fields as <Object>."""
    extra = []
    if node.get("x-kubernetes-int-or-string"):
        extra.append("Type: integer or string.")
    if "default" in node:
        value = node["default"]
        extra.append(f"Defaults to {value if isinstance(value, str) else json.dumps(value)}.")
    if extra:
        node["description"] = " ".join([node.get("description", ""), *extra]).strip()
        node.update(_Converter._ordered(node))
    for child in (node.get("properties") or {}).values():
        _explained(child)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _explained(node[key])


def openapi_schema(crd: OwnerKind = MODEL_TEMPLATE) -> dict[str, Any]:
    """The structural openAPIV3Schema of a generated resource (the ModelTemplate by default)."""
    raw = crd.root.model_json_schema(by_alias=True, mode="validation")
    classes = _model_classes(crd.root)
    conv = _Converter(raw, classes)
    props = raw["properties"]
    root: dict[str, Any] = {
        "description": _description(crd.root.__doc__ or ""),
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation "
                "of an object.",
                "type": "string",
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this "
                "object represents.",
                "type": "string",
            },
            "metadata": {"type": "object"},
            "spec": conv.convert(props["spec"]),
            "status": conv.convert(props["status"]),
        },
        "required": ["spec"],
    }
    # status is written by the operator; keep fields the models do not know yet.
    root["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] = True
    # Until the operator writes status, the API server shows observedGeneration 0 (defaults
    # apply on every read): kstatus (Flux, kpt) then waits for the operator instead of calling
    # a template it has never seen Current.
    root["properties"]["status"]["default"] = {"observedGeneration": 0}
    root["properties"]["status"] = _Converter._ordered(root["properties"]["status"])
    rules = _class_rules(crd.root)
    if rules:
        root["x-kubernetes-validations"] = rules
    _explained(root["properties"]["spec"])
    _explained(root["properties"]["status"])
    return root


def crd_dict(crd: OwnerKind = MODEL_TEMPLATE) -> dict[str, Any]:
    """A CustomResourceDefinition (the ModelTemplate's by default) as a dict (deterministic
    key order)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": crd.crd_name,
            "labels": {"app.kubernetes.io/name": "modeltemplate-operator"},
        },
        "spec": {
            "group": crd.group,
            "names": {
                "kind": crd.kind,
                "listKind": f"{crd.kind}List",
                "plural": crd.plural,
                "singular": crd.kind.lower(),
                "shortNames": list(crd.short_names),
                "categories": list(CATEGORIES),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(c) for c in crd.printer_columns],
                    **(
                        {"selectableFields": _selectable_fields(crd)}
                        if _selectable_fields(crd)
                        else {}
                    ),
                    "schema": {"openAPIV3Schema": openapi_schema(crd)},
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # never emit &anchors / *aliases
        return True


def crd_yaml(crd: OwnerKind = MODEL_TEMPLATE) -> str:
    header = (
        "# Generated by `make crds` (python -m modeltemplate_operator.api.crdgen) — do not edit.\n"
    )
    return header + yaml.dump(
        crd_dict(crd), Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True
    )


def write_crds(directory: str | Path) -> Path:
    """Write every CRD of :data:`CRDS` into ``directory``; returns the ModelTemplate's path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for crd in CRDS:
        (out / crd_filename(crd)).write_text(crd_yaml(crd), encoding="utf-8")
    (out / "Kustomization").write_text(
        _KUSTOMIZATION + "".join(f"  - {crd_filename(crd)}\n" for crd in CRDS), encoding="utf-8"
    )
    return out / crd_filename(MODEL_TEMPLATE)


_KUSTOMIZATION = """\
# Named "Kustomization" (no .yaml) so that `kubectl apply -f crds/` skips it.
# Lets deploy/ (and any overlay) reference the generated CRDs as `../crds`.
# Generated with the CRDs by `make crds`, one entry per owner kind.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", default="crds", help="output directory")
    args = parser.parse_args(argv)
    write_crds(args.directory)
    for crd in CRDS:
        print(f"wrote {Path(args.directory) / crd_filename(crd)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
