"""Pure translation between ModelTemplate objects and the SGP model template API.

One key mapping: :mod:`..convert`. This module adds what the HTTP API needs on top of it: the
read-only fields from metadata, the seed defaults (from the models), the wire types of the
official client, the paging order, and error bodies in SGP's shape (FastAPI's ``detail``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from .. import API_VERSION, KIND
from ..api.convert import (
    SGP_READ_ONLY_FIELDS,
    manifest_to_sgp,
    sgp_message,
    sgp_path,
    spec_from_sgp,
)
from ..api.models import ModelTemplateSpec
from ..limits import bounded
from ..observed import CREATED_BY_TYPE_ANNOTATION, CREATED_BY_USER_ANNOTATION

__all__ = [
    "CREATED_AT_ANNOTATION",
    "SGP_NAME_ANNOTATION",
    "object_name",
    "ApiError",
    "manifest_from_request",
    "creator_annotations",
    "template_to_sgp",
    "order_key",
    "page_bounds",
    "validation_error",
    "from_api_server",
    "manifest_errors",
]

#: The caller's name of a model or deployment (SGP names are free text).
SGP_NAME_ANNOTATION = "launch.modelops.dev/sgp-name"
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")

#: Creation time with microseconds, set by the gateway: orders templates created in the same
#: second (metadata.creationTimestamp has whole seconds).
CREATED_AT_ANNOTATION = "launch.modelops.dev/created-at"
IDENTITY_TYPES = ("user", "service_account")
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$")


@dataclass
class ApiError(Exception):
    """An HTTP error in SGP's shape: ``{"detail": ...}``."""

    status: int
    detail: Any
    retry: bool | None = None
    #: Seconds to wait before retrying (``Retry-After``).
    retry_after: int | None = None

    @property
    def headers(self) -> dict[str, str]:
        headers = {} if self.retry is None else {"x-should-retry": str(self.retry).lower()}
        if self.retry_after is not None:
            headers["retry-after"] = str(self.retry_after)
        return headers

    def body(self) -> dict[str, Any]:
        return {"detail": bounded(self.detail)}  # never the input echoed at length


def validation_error(
    problems: list[tuple[str, str]], kind: str = "value_error", where: str = "body"
) -> ApiError:
    """422 naming each field: ``problems`` are (SGP path, message); ``where``: the part of the
    request they are in (``body``, ``header``, ``query``)."""
    detail = [{"loc": [where, *_loc(path)], "msg": msg, "type": kind} for path, msg in problems]
    return ApiError(422, detail, retry=False)


def _loc(path: str) -> list[str | int]:
    out: list[str | int] = []
    for key, index in re.findall(r"([^.\[]+)((?:\[[^\]]*\])*)", path):
        out.append(key)
        out += [int(i) if i.isdigit() else i for i in re.findall(r"\[([^\]]*)\]", index)]
    return out


def message_path(message: str) -> str:
    """The SGP field path a validation message starts with (``""`` when it names none)."""
    head = re.match(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[[^\]]*\])*)", message)
    return head.group(1) if head else ""


def object_name(name: str) -> tuple[str | None, str | None]:
    """``(name, generateName)`` of the object for an SGP name: the name itself when it is a DNS
    label, else its DNS-safe form as a prefix the API server completes uniquely."""
    if _DNS_LABEL.match(name):
        return name, None
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    slug = re.sub(r"^[^a-z]+", "", slug)[:40].rstrip("-") or "deployment"
    return None, slug + "-"


def manifest_from_request(body: Any, namespace: str, annotations: dict[str, str]) -> dict:
    """The ModelTemplate an SGP create body asks for (``account_id`` and read-only fields
    dropped). Raises 422 when the body is not an object."""
    if not isinstance(body, dict):
        raise validation_error([("", "the body must be a JSON object")])
    spec_in = {
        k: v
        for k, v in body.items()
        if k not in ("name", "account_id") and k not in SGP_READ_ONLY_FIELDS
    }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": body.get("name"), "namespace": namespace, "annotations": annotations},
        "spec": spec_from_sgp(spec_in),
    }


def creator_annotations(username: str, now: datetime) -> dict[str, str]:
    """Who creates the template (the names the creator-identity admission policy checks) and
    when, to the microsecond (the paging order)."""
    return {
        CREATED_BY_USER_ANNOTATION: username,
        CREATED_BY_TYPE_ANNOTATION: "service_account"
        if username.startswith("system:serviceaccount:")
        else "user",
        CREATED_AT_ANNOTATION: now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def manifest_errors(messages: list[str]) -> ApiError:
    """422 from the messages of :func:`..validation.parse_manifest` (camelCase paths)."""
    translated = [sgp_message(m) for m in messages]
    return validation_error([(message_path(m), m) for m in translated])


def template_to_sgp(obj: dict[str, Any]) -> dict[str, Any]:
    """A ModelTemplate object (as the API server returns it) as an SGP model template: every
    field of the seed response shape, defaults filled, typed as the official client expects."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    spec = obj.get("spec") or {}
    try:
        spec = ModelTemplateSpec.model_validate(spec).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
    except ValidationError:
        pass  # an object the API server accepted before a rule existed: shown as stored
    sgp, _ = manifest_to_sgp({"metadata": {"name": meta.get("name")}, "spec": spec})
    for key in ("model_creation_parameters_schema", "model_request_parameters_schema"):
        for parameter in (sgp.get(key) or {}).get("parameters") or []:
            parameter.setdefault("description", "")  # required in the client's type
    vendor = sgp.get("vendor_configuration") or {}
    # Keys of the seed response shape present as null when unset, as SGP answers them.
    for part, key in (
        ("bundle_config", "streaming_command"),
        ("endpoint_config", "endpoint_type"),
        ("fine_tuning_job_bundle_config", "env"),
    ):
        if isinstance(vendor.get(part), dict):
            vendor[part].setdefault(key, None)
    for resources in (
        vendor.get("endpoint_config"),
        (vendor.get("fine_tuning_job_bundle_config") or {}).get("resources"),
    ):
        _client_types(resources)
    identity = annotations.get(CREATED_BY_TYPE_ANNOTATION)
    sgp.update(
        id=meta.get("uid"),
        created_at=meta.get("creationTimestamp"),
        account_id=meta.get("namespace"),
        created_by_user_id=annotations.get(CREATED_BY_USER_ANNOTATION, ""),
        created_by_identity_type=identity if identity in IDENTITY_TYPES else "user",
    )
    return sgp


def _client_types(resources: dict[str, Any] | None) -> None:
    """The official client types cpus as an integer and memory/storage as strings: whole cpus
    written as strings become integers, integer memory/storage become strings."""
    if not resources:
        return
    cpus = resources.get("cpus")
    if isinstance(cpus, str) and cpus.isdigit():
        resources["cpus"] = int(cpus)
    for key in ("memory", "storage"):
        if isinstance(resources.get(key), int):
            resources[key] = str(resources[key])


def order_key(obj: dict[str, Any]) -> tuple[str, str]:
    """Paging order: creation time (microseconds when the gateway created it), then id."""
    meta = obj.get("metadata") or {}
    precise = _TIME.match((meta.get("annotations") or {}).get(CREATED_AT_ANNOTATION, ""))
    match = precise or _TIME.match(meta.get("creationTimestamp") or "")
    when = f"{match.group(1)}.{(match.group(2) or '').ljust(9, '0')}" if match else ""
    return when, meta.get("uid") or ""


def page_bounds(page: int, limit: int, total: int) -> tuple[int, int]:
    """Slice of page ``page`` (from 1) of ``limit`` items; empty past the end."""
    start = min((page - 1) * limit, total)
    return start, min(start + limit, total)


_NOT_A_PATH = ("", "<nil>")


def from_api_server(
    status: int, body: dict[str, Any] | None, *, name: str = "", what: str = "model template"
) -> ApiError:
    """An API-server refusal (a ``Status``) as the SGP error a client should see (``what``:
    the entity a name conflict is about)."""
    body = body if isinstance(body, dict) else {}
    message = sgp_message(str(body.get("message") or f"API server answered {status}"))
    reason = body.get("reason")
    if status == 401:
        return ApiError(401, "invalid API key: the cluster does not accept it as a token", False)
    if status == 403:
        return ApiError(403, message, False)
    if status == 404:
        return ApiError(404, message, False)
    if status == 409 and reason == "AlreadyExists":
        return ApiError(409, f"a {what} named {name!r} already exists", False)
    if status == 409:
        return ApiError(409, message, False)
    if status in (400, 422):
        causes = (body.get("details") or {}).get("causes") or []
        problems = [
            (
                "" if c.get("field") in _NOT_A_PATH else sgp_path(c["field"]),
                sgp_message(
                    f"{c['field']}: {c.get('message', '')}"
                    if c.get("field") not in _NOT_A_PATH
                    else c.get("message", "")
                ),
            )
            for c in causes
        ]
        return validation_error(problems or [("", message)])
    if status == 429 or status >= 500:
        return ApiError(503 if status == 429 else 502, message)
    return ApiError(status, message)
