"""One rule, two evaluators: a CEL ``x-kubernetes-validations`` entry and its Python twin.

An :class:`XRule` is attached either to a model class (``__x_rules__``; ``self`` is the object)
or to a field through ``Annotated`` metadata (``self`` is the field value). The CRD generator
emits the CEL side; pydantic runs the Python side when a manifest is parsed, so the API server,
the operator and the offline validator apply the same rule with the same message.

Messages start with the field name relative to the object the rule sits on (``minWorkers (3)
must be <= maxWorkers (1)``); the validator prefixes the object's path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError, core_schema

__all__ = ["XRule", "K8sModel", "X_RULE_ERROR", "cel_list", "cel_string_list"]

#: pydantic error type of a failed :class:`XRule`.
X_RULE_ERROR = "x_rule"


@dataclass(frozen=True)
class XRule:
    """A validation rule with a CEL expression and the equivalent Python check.

    ``check(self) -> bool`` is True when valid; ``describe(self) -> str`` renders the message the
    CEL ``message``/``messageExpression`` renders. For field rules the message (CEL and Python)
    starts with ``field`` followed by the value, e.g. ``cpus (0) must be ...``.
    """

    rule: str
    check: Callable[[Any], bool]
    describe: Callable[[Any], str]
    message: str | None = None
    message_expression: str | None = None
    field_path: str | None = None
    reason: str | None = None

    def to_cel(self) -> dict[str, str]:
        out: dict[str, str] = {"rule": self.rule}
        if self.message is not None:
            out["message"] = self.message
        if self.message_expression is not None:
            out["messageExpression"] = self.message_expression
        if self.field_path is not None:
            out["fieldPath"] = self.field_path
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    # --- use as Annotated metadata on a field ------------------------------------------------
    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        schema = handler(source)

        def validate(value: Any) -> Any:
            if not self.check(value):
                text = self.describe(value)
                raise PydanticCustomError(
                    X_RULE_ERROR, "{message}", {"message": text, "messages": [text], "field": True}
                )
            return value

        return core_schema.no_info_after_validator_function(validate, schema)

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        js = dict(handler(schema))
        js["x-kubernetes-validations"] = [*js.get("x-kubernetes-validations", []), self.to_cel()]
        return js


class K8sModel(BaseModel):
    """Base of the spec models: camelCase aliases, unknown fields refused, object rules run."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=False,
        use_attribute_docstrings=False,
    )

    #: Object-level rules; ``self`` is the model instance.
    __x_rules__: ClassVar[tuple[XRule, ...]] = ()

    @model_validator(mode="after")
    def _run_x_rules(self) -> K8sModel:
        failed = [rule.describe(self) for rule in type(self).__x_rules__ if not rule.check(self)]
        if failed:
            raise PydanticCustomError(
                X_RULE_ERROR,
                "{message}",
                {"message": "; ".join(failed), "messages": failed, "field": False},
            )
        return self


def cel_list(values: list[str]) -> str:
    """A list of strings as CEL's ``'%s'.format([list])`` renders it: ``["a", "b"]``."""
    return json.dumps(list(values))


def cel_string_list(values: tuple[str, ...] | list[str]) -> str:
    """A CEL list literal of strings."""
    return (
        "["
        + ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)
        + "]"
    )
