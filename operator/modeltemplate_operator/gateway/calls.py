"""What every SGP route reads of a call the same way: the API key, the account, a JSON body."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Header, Request

from .sgp import ApiError, validation_error

__all__ = ["ACCOUNT_PATTERN", "Account", "ApiKey", "account_of", "create_call", "token_of"]

#: An account is a namespace: a DNS-1123 label.
ACCOUNT_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

ApiKey = Annotated[str | None, Header(alias="x-api-key")]
Account = Annotated[str | None, Header(alias="x-selected-account-id")]


def token_of(api_key: str | None) -> str:
    """The caller's Kubernetes token from ``x-api-key`` (401 without one)."""
    token = (api_key or "").removeprefix("Bearer ").strip()
    if not token:
        raise ApiError(401, "missing API key: send a Kubernetes token in x-api-key", False)
    return token


def account_of(value: Any) -> str:
    """The namespace an account names (422 naming ``account_id`` otherwise)."""
    if not isinstance(value, str) or not ACCOUNT_PATTERN.match(value):
        raise validation_error(
            [("account_id", f"account_id ({value}) must name a namespace (a DNS label)")]
        )
    return value


async def create_call(
    request: Request, api_key: str | None, account: str | None
) -> tuple[str, Any, str]:
    """A create call's token, JSON body and namespace (``account_id`` in the body, else the
    ``x-selected-account-id`` header)."""
    token = token_of(api_key)
    try:
        body: Any = await request.json()
    except ValueError:
        raise validation_error([("", "the body must be JSON")]) from None
    namespace = (body.get("account_id") if isinstance(body, dict) else None) or account
    return token, body, account_of(namespace)
