"""A thin JSON REST call on top of the official client's connection and credentials.

Apply bodies are encoded and answers decoded with orjson (several times faster than json);
answers nobody reads are not decoded, and none is turned into the client's model classes.

Server-side apply, merge patches of status and calls on arbitrary kinds need raw paths; this
is the one place that builds such requests.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import urllib3
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from .metrics import API_REQUESTS

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def request(
    api: ApiClient,
    method: str,
    path: str,
    *,
    body: Any = None,
    query: list[tuple[str, str]] | None = None,
    content_type: str = JSON,
    decode: bool = True,
) -> Any:
    """Send one request; the decoded JSON answer (None with ``decode=False``: the answer is
    not needed), or ApiException for any non-2xx status."""
    if content_type == APPLY_PATCH and not isinstance(body, str | bytes):
        # JSON is YAML: the apply body goes as text, as UTF-8 and not as ASCII escapes (orjson
        # never escapes): the API server's YAML decoder refuses escaped surrogate pairs.
        body = orjson.dumps(body)
    _, url, headers, payload, _ = api.param_serialize(
        method=method,
        resource_path=path,
        query_params=query or [],
        header_params={"Content-Type": content_type, "Accept": JSON},
        body=body,
        auth_settings=["BearerToken"],
    )
    try:
        response = api.call_api(method, url, header_params=headers, body=payload)
    except Exception:
        API_REQUESTS.labels(method, "0").inc()
        raise
    API_REQUESTS.labels(method, str(response.status)).inc()
    data = response.read()
    if not 200 <= response.status < 300:
        raise ApiException.from_response(
            http_resp=response, body=data.decode("utf-8", "replace") if data else None, data=None
        )
    return orjson.loads(data) if data and decode else None


#: A server error no retry heals: etcd refuses an object over its size limit (1.5 MiB) with a
#: 500, and will refuse the same object again.
_TOO_LARGE = "request is too large"


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: conflicts, throttling, server errors and broken connections — not an
    object too large to store, which only a smaller spec fixes."""
    if isinstance(exc, ApiException):
        if _TOO_LARGE in (exc.body or ""):
            return False
        return exc.status in (409, 429) or (exc.status or 0) >= 500
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def status_message(exc: ApiException) -> str:
    """The human part of an API error: the Status message, else the HTTP reason."""
    try:
        return json.loads(exc.body or "")["message"]
    except (ValueError, KeyError, TypeError):
        return f"{exc.status} {exc.reason}"
