"""A thin JSON REST call on top of the official client's connection and credentials.

Server-side apply, merge patches of status and calls on arbitrary kinds need raw paths; this
is the one place that builds such requests.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

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
) -> Any:
    """Send one request; the decoded JSON answer, or ApiException for any non-2xx status."""
    if content_type == APPLY_PATCH and not isinstance(body, str):
        body = json.dumps(body)  # JSON is YAML: the apply body goes as text
    _, url, headers, payload, _ = api.param_serialize(
        method=method,
        resource_path=path,
        query_params=query or [],
        header_params={"Content-Type": content_type, "Accept": JSON},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(method, url, header_params=headers, body=payload)
    data = response.read()
    if not 200 <= response.status < 300:
        raise ApiException.from_response(
            http_resp=response, body=data.decode("utf-8", "replace") if data else None, data=None
        )
    return json.loads(data) if data else None
