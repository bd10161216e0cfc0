"""The ModelTemplate resource: apiVersion, kind, metadata, spec, status."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from ... import API_VERSION, KIND
from .rules import X_RULE_ERROR, K8sModel, XRule
from .spec import ModelTemplateSpec
from .status import ModelTemplateStatus

__all__ = ["ObjectMeta", "ModelTemplate", "NAME_PATTERN", "NAME_MAX_LENGTH"]

#: metadata.name is the SGP model template name and names the rendered Service: a DNS-1035
#: label of at most 63 characters.
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_MAX_LENGTH = 63


class ObjectMeta(BaseModel):
    """The parts of Kubernetes object metadata the operator reads; everything else is kept."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str | None) -> str | None:
        # Python twin of the CRD's root rule (_NAME_RULE); checked here so that it runs even
        # when the spec has errors, as the API server does.
        if not _name_ok(name):
            text = _name_message(name)
            raise PydanticCustomError(
                X_RULE_ERROR, "{message}", {"message": text, "messages": [text], "field": True}
            )
        return name


def _name_ok(name: str | None) -> bool:
    import re

    return name is None or (
        len(name) <= NAME_MAX_LENGTH
        and re.fullmatch(NAME_PATTERN.removeprefix("^").removesuffix("$"), name) is not None
    )


def _name_message(name: str | None) -> str:
    return (
        f"name ({name}) must be a DNS-1035 label of at most 63 characters (lowercase letters, "
        "digits and -, starting with a letter)"
    )


_NAME_RULE = XRule(
    rule=(
        f"!has(self.metadata.name) || (size(self.metadata.name) <= {NAME_MAX_LENGTH} && "
        f"self.metadata.name.matches('{NAME_PATTERN}'))"
    ),
    check=lambda o: _name_ok(o.metadata.name),
    describe=lambda o: (
        f"metadata.name ({o.metadata.name}) must be a DNS-1035 label of at most "
        "63 characters (lowercase letters, digits and -, starting with a letter)"
    ),
    message_expression=(
        "'metadata.name (%s) must be a DNS-1035 label of at most 63 characters (lowercase "
        "letters, digits and -, starting with a letter)'.format([self.metadata.name])"
    ),
)


def _batch_name_limit(max_workers: int) -> int:
    """A BATCH template's Job names its pods ``<name>-<index>``, a DNS label of at most 63."""
    return NAME_MAX_LENGTH - 1 - len(str(max(1, max_workers) - 1))


_CEL_MAX_WORKERS = (
    "(has(self.spec.vendorConfiguration.endpointConfig) && "
    "has(self.spec.vendorConfiguration.endpointConfig.maxWorkers) ? "
    "self.spec.vendorConfiguration.endpointConfig.maxWorkers : 1)"
)
_CEL_BATCH_LIMIT = (
    f"({NAME_MAX_LENGTH} - 1 - size(string({_CEL_MAX_WORKERS} > 1 ? {_CEL_MAX_WORKERS} - 1 : 0)))"
)
_BATCH_NAME_RULE = XRule(
    rule=(
        "!has(self.metadata.name) || self.spec.endpointType != 'BATCH' || "
        f"size(self.metadata.name) <= {_CEL_BATCH_LIMIT}"
    ),
    check=lambda o: (
        o.metadata.name is None
        or o.spec.endpoint_type != "BATCH"
        or len(o.metadata.name) <= _batch_name_limit(o.spec.endpoint_config.max_workers)
    ),
    describe=lambda o: (
        f"metadata.name ({o.metadata.name}) must be at most "
        f"{_batch_name_limit(o.spec.endpoint_config.max_workers)} characters for a BATCH "
        "template: its Job names each pod <name>-<index>, at most 63 characters"
    ),
    message_expression=(
        "'metadata.name (%s) must be at most %d characters for a BATCH template: its Job names "
        "each pod <name>-<index>, at most 63 characters'.format([self.metadata.name, "
        f"{_CEL_BATCH_LIMIT}])"
    ),
)


class Resource(K8sModel):
    """What every resource of the operator's CRDs can do (no fields: each kind lists its own)."""

    def to_manifest(self, *, include_status: bool = False) -> dict[str, Any]:
        """The manifest as a plain dict (camelCase, defaults filled, unset optionals omitted)."""
        exclude = None if include_status else {"status"}
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=exclude)


class ModelTemplate(Resource):
    """An SGP Model Template served by the operator as a Launch-style workload."""

    __x_rules__ = (_NAME_RULE, _BATCH_NAME_RULE)

    api_version: Literal["launch.modelops.dev/v1alpha1"] = Field(
        API_VERSION, description="launch.modelops.dev/v1alpha1"
    )
    kind: Literal["ModelTemplate"] = Field(KIND, description="ModelTemplate")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ModelTemplateSpec = Field(description="The SGP model template, in camelCase.")
    status: ModelTemplateStatus | None = Field(
        None, description="Observed state, written by the operator."
    )
