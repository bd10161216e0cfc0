"""The forwarder's ``--request-parameters-schema``: the template's ``modelRequestParametersSchema``
as JSON text or a file holding it.

The schema and the check of a request's ``model_request_parameters`` are
:class:`~modeltemplate_operator.api.parameters.ParameterSchema`, shared with the operator.
"""

from __future__ import annotations

import json
import os

from ..api.parameters import ParameterSchema

__all__ = ["ParameterSchema", "load_schema"]


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
    return ParameterSchema.parse(doc)
