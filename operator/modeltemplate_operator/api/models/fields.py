"""Field types of the spec and its validation rules, each Python check paired with its CEL twin.

The constrained string types (registry, image, tag, routes, Secret names, env names, parameter
identifiers) carry their regular expression; :data:`PATTERN_HELP` explains each pattern in
the offline validator's messages. The quantity types (``cpus``, ``memory``, ``storage``)
accept an integer or a Kubernetes quantity string. The :class:`~.rules.XRule` s below are the
object rules the classes in ``spec.py`` attach: per-GPU-type resource caps, ``gpus`` and
``gpuType`` set together, container rules (reserved env names, ``secretEnv`` disjoint from
``env``, unique names), ``minWorkers <= maxWorkers`` and the endpoint type consistency.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, StrictInt, StrictStr

from ...limits import MAX_EXEC_STRING_LENGTH
from .constants import MAX_ENV_VARS, RESERVED_ENV_NAMES, RESERVED_ENV_PREFIXES
from .gpus import CPU_ONLY_CAPS, GPU_TYPE_CAPS, caps_for
from .quantity import is_quantity, parse_quantity
from .rules import XRule, cel_list, cel_string_list

__all__ = [
    "IDENTIFIER_PATTERN",
    "ENV_NAME_PATTERN",
    "PATTERN_HELP",
    "RESERVED_HELP",
    "is_reserved_env_name",
    "Registry",
    "ImageName",
    "ImageTag",
    "Route",
    "FilePath",
    "SecretName",
    "SecretKey",
    "Identifier",
    "EnvName",
    "EnvMap",
    "Command",
    "Cpus",
    "Memory",
    "Storage",
    "bounded_int",
    "RESOURCE_RULES",
    "CONTAINER_RULES",
    "LIST_MAP",
    "unique_names_rule",
    "WORKERS_ORDERED",
    "ENDPOINT_TYPE_CONSISTENT",
]

# --------------------------------------------------------------------------------------------
# Patterns and field types
# --------------------------------------------------------------------------------------------


#: Parameter names of the creation/request parameter schemas.
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
#: Names of environment variables (``bundleConfig.env`` keys and ``secretEnv[].name``).
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REGISTRY_PATTERN = rf"^{_DNS_LABEL}(?:\.{_DNS_LABEL})*(?::[0-9]{{1,5}})?(?:/{_PATH_COMPONENT})*$"
IMAGE_PATTERN = rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$"
TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
ROUTE_PATTERN = r"^/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*$"
FILE_PATH_PATTERN = r"^(?:/[A-Za-z0-9._~%@+=:,-]+)+$"
SECRET_NAME_PATTERN = r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"

#: Human explanations of the patterns, used in the offline validator's messages.
#: Values that reach exec(2) (env values, command arguments): no NUL character, which no C
#: string can hold; the container would be accepted and never start.
EXEC_STRING_PATTERN = r"^[^\x00]*$"
#: At most MAX_EXEC_STRING_LENGTH characters (the one number, in :mod:`..limits`).

PATTERN_HELP: dict[str, str] = {
    EXEC_STRING_PATTERN: "a string without NUL characters",
    REGISTRY_PATTERN: "a registry host (DNS name, optional :port, optional lowercase path)",
    IMAGE_PATTERN: "a lowercase image repository path such as vllm/vllm-openai",
    TAG_PATTERN: "an image tag: letters, digits, _ . -, at most 128 characters, not starting with . or -",
    ROUTE_PATTERN: "an HTTP path starting with /",
    FILE_PATH_PATTERN: "an absolute file path",
    SECRET_NAME_PATTERN: "a Secret name (DNS-1123 subdomain)",
    SECRET_KEY_PATTERN: "a Secret key (letters, digits, - . _)",
    ENV_NAME_PATTERN: "an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
    IDENTIFIER_PATTERN: "an identifier ([A-Za-z_][A-Za-z0-9_]*)",
}


def is_reserved_env_name(name: str) -> bool:
    """True for names in :data:`RESERVED_ENV_NAMES` or with a reserved prefix."""
    return name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES)


_RESERVED_LIST = cel_string_list(RESERVED_ENV_NAMES)
_RESERVED_PREFIX_CEL = " || ".join(f"{{v}}.startsWith('{p}')" for p in RESERVED_ENV_PREFIXES)


def _reserved_cel(var: str) -> str:
    return f"({var} in {_RESERVED_LIST} || " + _RESERVED_PREFIX_CEL.format(v=var) + ")"


RESERVED_HELP = (
    "reserved: "
    + ", ".join(RESERVED_ENV_NAMES)
    + " and names starting with "
    + " or ".join(RESERVED_ENV_PREFIXES)
)

_ENV_NAME_RESERVED = XRule(
    rule="!" + _reserved_cel("self"),
    check=lambda v: not is_reserved_env_name(v),
    describe=lambda v: f"name ({v}) is a reserved environment variable name ({RESERVED_HELP})",
    message_expression=f"'name (%s) is a reserved environment variable name ({RESERVED_HELP})'.format([self])",
)

_ENV_KEYS_VALID = XRule(
    rule=f"self.all(k, k.matches('{ENV_NAME_PATTERN}'))",
    check=lambda env: all(_match(ENV_NAME_PATTERN, k) for k in env),
    describe=lambda env: (
        "env has invalid variable names "
        + cel_list([k for k in env if not _match(ENV_NAME_PATTERN, k)])
        + ": names must match [A-Za-z_][A-Za-z0-9_]*"
    ),
    message_expression=f"'env has invalid variable names %s: names must match [A-Za-z_][A-Za-z0-9_]*'.format([self.filter(k, !k.matches('{ENV_NAME_PATTERN}'))])",
)

_ENV_KEYS_NOT_RESERVED = XRule(
    rule="!self.exists(k, " + _reserved_cel("k") + ")",
    check=lambda env: not any(is_reserved_env_name(k) for k in env),
    describe=lambda env: (
        "env sets reserved variable names "
        + cel_list([k for k in env if is_reserved_env_name(k)])
        + f" ({RESERVED_HELP})"
    ),
    message_expression=f"'env sets reserved variable names %s ({RESERVED_HELP})'.format([self.filter(k, "
    + _reserved_cel("k")
    + ")])",
)


def _match(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern.removeprefix("^").removesuffix("$"), value) is not None


def _pstr(pattern: str, max_length: int, min_length: int = 1) -> Any:
    return Annotated[
        str, Field(strict=True, pattern=pattern, max_length=max_length, min_length=min_length)
    ]


Registry = _pstr(REGISTRY_PATTERN, 255)
ImageName = _pstr(IMAGE_PATTERN, 255)
ImageTag = _pstr(TAG_PATTERN, 128)
Route = _pstr(ROUTE_PATTERN, 256)
FilePath = _pstr(FILE_PATH_PATTERN, 1024)
SecretName = _pstr(SECRET_NAME_PATTERN, 253)
SecretKey = _pstr(SECRET_KEY_PATTERN, 253)
Identifier = _pstr(IDENTIFIER_PATTERN, 128)
EnvName = Annotated[
    str,
    Field(strict=True, pattern=ENV_NAME_PATTERN, max_length=128, min_length=1),
    _ENV_NAME_RESERVED,
]
ExecString = Annotated[
    str, Field(strict=True, pattern=EXEC_STRING_PATTERN, max_length=MAX_EXEC_STRING_LENGTH)
]
EnvMap = Annotated[
    dict[str, ExecString],
    Field(max_length=MAX_ENV_VARS),
    _ENV_KEYS_VALID,
    _ENV_KEYS_NOT_RESERVED,
]
Command = Annotated[list[ExecString], Field(max_length=256)]


def _quantity_type(name: str) -> Any:
    rule = XRule(
        rule="isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('0'))",
        check=lambda v: is_quantity(v) and parse_quantity(v) > 0,
        describe=lambda v: (
            f"{name} ({v}) must be a positive Kubernetes quantity (e.g. 3, 500m, 8Gi)"
        ),
        message_expression=f"'{name} (%s) must be a positive Kubernetes quantity (e.g. 3, 500m, 8Gi)'.format([self])",
    )
    return Annotated[StrictInt | Annotated[StrictStr, Field(max_length=64)], rule]


Cpus = _quantity_type("cpus")
Memory = _quantity_type("memory")
Storage = _quantity_type("storage")


def bounded_int(ge: int | None = None, le: int | None = None) -> Any:
    """A strict integer type with optional bounds."""
    return Annotated[int, Field(strict=True, ge=ge, le=le)]


# --------------------------------------------------------------------------------------------
# Resource rules shared by endpointConfig and fineTuningJobBundleConfig.resources
# --------------------------------------------------------------------------------------------


def _cel_caps(attr: str) -> str:
    mapping = (
        "{" + ", ".join(f"'{t}': '{getattr(c, attr)}'" for t, c in GPU_TYPE_CAPS.items()) + "}"
    )
    return (
        f"(has(self.gpuType) && self.gpuType in {mapping} ? {mapping}[self.gpuType] : "
        f"'{getattr(CPU_ONLY_CAPS, attr)}')"
    )


def _cap_rule(attr: str) -> XRule:
    cap = _cel_caps(attr)

    def check(obj: Any) -> bool:
        value = getattr(obj, attr)
        if value is None or not is_quantity(value):
            return True
        return parse_quantity(value) <= parse_quantity(getattr(caps_for(obj.gpu_type), attr))

    def describe(obj: Any) -> str:
        where = f"gpuType {obj.gpu_type}" if obj.gpu_type is not None else "a worker without GPUs"
        return f"{attr} ({getattr(obj, attr)}) must be <= {getattr(caps_for(obj.gpu_type), attr)} for {where}"

    return XRule(
        rule=(
            f"!has(self.{attr}) || !isQuantity(string(self.{attr})) || "
            f"quantity(string(self.{attr})).compareTo(quantity({cap})) <= 0"
        ),
        check=check,
        describe=describe,
        message_expression=(
            f"'{attr} (%s) must be <= %s for %s'.format([self.{attr}, {cap}, "
            "has(self.gpuType) ? 'gpuType ' + self.gpuType : 'a worker without GPUs'])"
        ),
        field_path=f".{attr}",
    )


_GPU_TYPE_REQUIRED = XRule(
    rule="!has(self.gpus) || self.gpus == 0 || has(self.gpuType)",
    check=lambda o: o.gpus == 0 or o.gpu_type is not None,
    describe=lambda o: f"gpuType must be set when gpus ({o.gpus}) > 0",
    message_expression="'gpuType must be set when gpus (%d) > 0'.format([self.gpus])",
    field_path=".gpuType",
)
_GPUS_REQUIRED = XRule(
    rule="!has(self.gpuType) || (has(self.gpus) && self.gpus > 0)",
    check=lambda o: o.gpu_type is None or o.gpus > 0,
    describe=lambda o: f"gpus ({o.gpus}) must be > 0 when gpuType ({o.gpu_type}) is set",
    message_expression="'gpus (%d) must be > 0 when gpuType (%s) is set'.format([has(self.gpus) ? self.gpus : 0, self.gpuType])",
    field_path=".gpus",
)
RESOURCE_RULES = (
    _GPU_TYPE_REQUIRED,
    _GPUS_REQUIRED,
    _cap_rule("cpus"),
    _cap_rule("memory"),
    _cap_rule("storage"),
)


# --------------------------------------------------------------------------------------------
# Container rules shared by bundleConfig and fineTuningJobBundleConfig
# --------------------------------------------------------------------------------------------


def unique_names_rule(field: str) -> XRule:
    """Python side of a uniqueness the CRD enforces with ``x-kubernetes-list-type: map``."""

    def dupes(obj: Any) -> list[str]:
        seen: set[str] = set()
        out: list[str] = []
        for item in getattr(obj, _snake(field)) or ():
            if item.name in seen and item.name not in out:
                out.append(item.name)
            seen.add(item.name)
        return out

    return XRule(
        rule="",  # enforced by the schema: x-kubernetes-list-type map, key name
        check=lambda o: not dupes(o),
        describe=lambda o: f"{field} has duplicate names ({', '.join(dupes(o))})",
    )


def _snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


_SECRET_ENV_DISJOINT = XRule(
    rule="!has(self.env) || !has(self.secretEnv) || self.secretEnv.all(e, !(e.name in self.env))",
    check=lambda o: not (o.env and o.secret_env and any(e.name in o.env for e in o.secret_env)),
    describe=lambda o: (
        "secretEnv names are also set in env "
        + cel_list([e.name for e in o.secret_env if e.name in o.env])
    ),
    message_expression="'secretEnv names are also set in env %s'.format([self.secretEnv.filter(e, e.name in self.env).map(e, e.name)])",
    field_path=".secretEnv",
)
_REPOSITORY_LENGTH = XRule(
    rule="size(self.registry) + size(self.image) < 255",
    check=lambda o: len(o.registry) + len(o.image) < 255,
    describe=lambda o: (
        f"image ({o.registry}/{o.image}) must be at most 255 characters including the registry"
    ),
    message_expression="'image (%s/%s) must be at most 255 characters including the registry'.format([self.registry, self.image])",
    field_path=".image",
)
CONTAINER_RULES = (
    _REPOSITORY_LENGTH,
    _SECRET_ENV_DISJOINT,
    unique_names_rule("secretEnv"),
    unique_names_rule("imagePullSecrets"),
)

LIST_MAP = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}


# --------------------------------------------------------------------------------------------
# Rules of one object
# --------------------------------------------------------------------------------------------

WORKERS_ORDERED = XRule(
    rule="!has(self.minWorkers) || !has(self.maxWorkers) || self.minWorkers <= self.maxWorkers",
    check=lambda o: o.min_workers <= o.max_workers,
    describe=lambda o: f"minWorkers ({o.min_workers}) must be <= maxWorkers ({o.max_workers})",
    message_expression="'minWorkers (%d) must be <= maxWorkers (%d)'.format([self.minWorkers, self.maxWorkers])",
    field_path=".minWorkers",
)

ENDPOINT_TYPE_CONSISTENT = XRule(
    rule=(
        "!has(self.vendorConfiguration) || !has(self.vendorConfiguration.endpointConfig) || "
        "!has(self.vendorConfiguration.endpointConfig.endpointType) || !has(self.endpointType) || "
        "self.vendorConfiguration.endpointConfig.endpointType == self.endpointType"
    ),
    check=lambda o: (
        o.vendor_configuration.endpoint_config.endpoint_type is None
        or o.vendor_configuration.endpoint_config.endpoint_type == o.endpoint_type
    ),
    describe=lambda o: (
        "vendorConfiguration.endpointConfig.endpointType "
        f"({o.vendor_configuration.endpoint_config.endpoint_type}) must equal endpointType "
        f"({o.endpoint_type}) when set"
    ),
    message_expression=(
        "'vendorConfiguration.endpointConfig.endpointType (%s) must equal endpointType (%s) "
        "when set'.format([self.vendorConfiguration.endpointConfig.endpointType, self.endpointType])"
    ),
    field_path=".vendorConfiguration.endpointConfig.endpointType",
)
