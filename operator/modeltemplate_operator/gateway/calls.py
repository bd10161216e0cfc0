"""What every SGP route reads of a call the same way: the API key, the account, a JSON body,
the page asked for.

The caller's input is hostile until proven otherwise (:mod:`..limits`): the key is checked
before anything else is read; a body is read only after the key is accepted, as a stream under
a size cap (413 before reading past it, Content-Length over it refused unread) and a deadline
(408), and its nesting is measured on the text before it is decoded (422); an account is a
DNS label before it is used anywhere (422 naming the header or field).

A decoded body takes several times its text (a 3 MiB body of small values ~50 MB while it is
checked), so bodies that may be larger than :data:`MAX_DECODED_BODY_BYTES` (declared so, or
sent chunked) are read and handled one at a time per process (:class:`LargeBodySlot`): others
wait for the slot with only uvicorn's 64 KiB read buffer each, up to
:data:`BODY_TIMEOUT_SECONDS` (then 503, to retry); small bodies never wait.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, Header, Query, Request

from ..limits import (
    BODY_TIMEOUT_SECONDS,
    MAX_API_BODY_BYTES,
    MAX_DECODED_BODY_BYTES,
    MAX_DOCUMENT_DEPTH,
    text_too_deep,
    truncate,
)
from .sgp import ApiError, page_bounds, validation_error

__all__ = [
    "ACCOUNT_PATTERN",
    "Account",
    "ApiKey",
    "LargeBodySlot",
    "PageQuery",
    "Paging",
    "account_of",
    "account_header",
    "decode_json",
    "read_body",
    "read_json",
    "token_of",
]

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


def account_of(value: Any, field: str = "account_id", where: str = "body") -> str:
    """The namespace an account names (422 naming ``field`` otherwise)."""
    if not isinstance(value, str) or not ACCOUNT_PATTERN.match(value):
        shown = truncate(value, 80)
        message = f"{field} ({shown}) must name a namespace (a DNS label)"
        raise validation_error([(field, message)], where=where)
    return value


def account_header(value: str | None) -> str | None:
    """``x-selected-account-id`` checked before any use (None when absent)."""
    return None if value is None else account_of(value, "x-selected-account-id", "header")


class LargeBodySlot:
    """The one slot for a large body: taken before such a body is read, given back when its
    response has been sent (the ASGI wrapper :meth:`wrap` gives it back whatever happens)."""

    _STATE_KEY = "large_body_slot"

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        #: Requests that waited for the slot (a figure for the tests).
        self.waited = 0

    async def take(self, request: Request) -> None:
        if self._lock.locked():
            self.waited += 1
        try:
            await asyncio.wait_for(self._lock.acquire(), BODY_TIMEOUT_SECONDS)
        except TimeoutError:
            raise ApiError(
                503, "busy with other large request bodies: retry in a moment", True
            ) from None
        request.scope.setdefault("state", {})[self._STATE_KEY] = self._lock.release

    def wrap(self, app):
        """``app`` (ASGI) giving the slot back after each request that took it."""

        async def wrapped(scope, receive, send):
            try:
                await app(scope, receive, send)
            finally:
                release = (scope.get("state") or {}).pop(self._STATE_KEY, None)
                if release is not None:
                    release()

        return wrapped


async def read_body(request: Request, limit: int = MAX_API_BODY_BYTES) -> bytes:
    """The request's body, read under ``limit`` bytes (413: Content-Length over it refused
    unread, a chunked body as soon as it passes it) and :data:`BODY_TIMEOUT_SECONDS` (408);
    text nested deeper than :data:`MAX_DOCUMENT_DEPTH` is refused (422)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ApiError(413, f"request body over {limit} bytes", False)
    if declared is None or int(declared) > MAX_DECODED_BODY_BYTES:
        slot = getattr(request.app.state, "large_body_slot", None)
        if slot is not None:
            await slot.take(request)

    async def read() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body over {limit} bytes", False)
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        raw = await asyncio.wait_for(read(), BODY_TIMEOUT_SECONDS)
    except TimeoutError:
        raise ApiError(408, f"request body not received in {BODY_TIMEOUT_SECONDS:.0f} s") from None
    if text_too_deep(raw):
        raise validation_error([("", f"the body nests deeper than {MAX_DOCUMENT_DEPTH} levels")])
    return raw


def decode_json(raw: bytes) -> Any:
    """JSON text (its depth already checked) decoded; 422 when it is not JSON."""
    try:
        return orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        raise validation_error([("", "the body must be JSON")]) from None


async def read_json(request: Request, limit: int = MAX_API_BODY_BYTES) -> Any:
    """The request's JSON body (:func:`read_body`), decoded."""
    return decode_json(await read_body(request, limit))


#: Items per page of a list: SGP's default, and at most this many.
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000


@dataclass(frozen=True)
class Paging:
    """Which page of a list the caller asks for (``page`` from 1, ``limit`` items each)."""

    page: int
    limit: int

    def of(self, items: list[Any]) -> dict[str, Any]:
        """SGP's page of ``items`` (already in paging order)."""
        start, end = page_bounds(self.page, self.limit, len(items))
        return {
            "items": items[start:end],
            "total_item_count": len(items),
            "current_page": self.page,
            "items_per_page": self.limit,
        }


def _paging(
    page: Annotated[int, Query(ge=1, description="Page number, from 1")] = 1,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (at most {MAX_LIMIT})")
    ] = DEFAULT_LIMIT,
) -> Paging:
    return Paging(page, limit)


#: The page a list route serves (a FastAPI dependency: every list pages the same way).
PageQuery = Annotated[Paging, Depends(_paging)]
