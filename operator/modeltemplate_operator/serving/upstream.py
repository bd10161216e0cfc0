"""Calling an endpoint's forwarder: bounded in time, in retries and in memory.

- A 429 (the forwarder's ``perWorker`` cap, or a busy model) is retried after its
  ``Retry-After`` (at most :data:`RETRY_CAP_SECONDS` each) while the call's retry budget lasts,
  then answered as a 429 with ``Retry-After``.
- The forwarder's own refusals keep their status and message (422 for request parameters, 503
  while it has no ready model); other failures are 502, an endpoint that cannot be reached 503,
  one that does not answer in time 504.
- A stream is read event by event (an event larger than :data:`MAX_EVENT_BYTES` ends it with an
  error) and never held whole; when the caller goes away the upstream request is closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from ..limits import MAX_DECODED_BODY_BYTES, truncate
from .protocols import ServingError, Upstream

__all__ = ["EndpointClient", "MAX_EVENT_BYTES"]

#: The largest event of a stream passed on.
MAX_EVENT_BYTES = 1024 * 1024
RETRY_CAP_SECONDS = 2.0


def _refusal(response_status: int, text: bytes) -> ServingError:
    try:
        detail = orjson.loads(text)
        message = detail.get("detail") or detail.get("error") or detail.get("message") or detail
    except (orjson.JSONDecodeError, AttributeError):
        message = text.decode(errors="replace")
    message = truncate(message if isinstance(message, str) else str(message), 500)
    if response_status in (400, 404, 413, 422, 503):
        return ServingError(response_status, f"the endpoint refused the call: {message}")
    return ServingError(502, f"the endpoint answered {response_status}: {message}")


class EndpointClient:
    """One HTTP client for every endpoint (connections pooled per endpoint), made in the
    event loop at its first call."""

    def __init__(
        self,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        retry_budget_seconds: float = 10.0,
        max_connections: int = 512,
    ):
        self.retry_budget = retry_budget_seconds
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        self._limit = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self._limit, limit_per_host=0),
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _send(self, base_url: str, up: Upstream) -> aiohttp.ClientResponse:
        """The response (headers read, body not yet), 429s retried within the budget."""
        deadline = time.monotonic() + self.retry_budget
        content = orjson.dumps(up.body)
        headers = {"content-type": "application/json"}
        while True:
            try:
                response = await self._client().post(
                    base_url + up.path, data=content, headers=headers
                )
            except TimeoutError:
                raise ServingError(
                    504, f"the endpoint did not answer in time ({base_url})"
                ) from None
            except aiohttp.ClientError as exc:
                raise ServingError(503, f"the endpoint cannot be reached: {exc}") from None
            if response.status != 429:
                return response
            wait = min(_retry_after(response), RETRY_CAP_SECONDS)
            response.release()
            left = deadline - time.monotonic()
            if left <= wait:
                raise ServingError(
                    429, "the endpoint is busy: retry later", retry_after=max(1, round(wait))
                )
            await asyncio.sleep(wait)

    async def call(self, base_url: str, up: Upstream) -> Any:
        """The endpoint's JSON answer (bounded by :data:`MAX_DECODED_BODY_BYTES` x 16)."""
        response = await self._send(base_url, up)
        try:
            body = bytearray()
            async for chunk in response.content.iter_chunked(65536):
                body += chunk
                if len(body) > 16 * MAX_DECODED_BODY_BYTES:
                    raise ServingError(502, "the endpoint's answer is too large")
        except TimeoutError:
            raise ServingError(504, "the endpoint did not finish its answer in time") from None
        except aiohttp.ClientError as exc:
            raise ServingError(502, f"the endpoint's answer broke off: {exc}") from None
        finally:
            response.release()
        if response.status >= 400:
            raise _refusal(response.status, bytes(body))
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ServingError(502, "the endpoint's answer is not JSON") from None

    async def events(self, base_url: str, up: Upstream) -> AsyncIterator[bytes]:
        """The ``data`` of each event the endpoint streams (SSE ``data:`` lines, or one JSON
        document per line), as it arrives. Raises :class:`ServingError` before the first
        event for a refusal."""
        response = await self._send(base_url, up)
        finished = False
        try:
            if response.status >= 400:
                raise _refusal(response.status, await _bounded_read(response))
            pending = bytearray()
            async for chunk in response.content.iter_any():
                pending += chunk
                while True:
                    end = pending.find(b"\n")
                    if end < 0:
                        break
                    line = bytes(pending[:end]).rstrip(b"\r")
                    del pending[: end + 1]
                    data = _data_of(line)
                    if data is not None:
                        yield data
                if len(pending) > MAX_EVENT_BYTES:
                    raise ServingError(502, "the endpoint streamed an event over 1 MiB")
            data = _data_of(bytes(pending))
            if data is not None:
                yield data
            finished = True
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ServingError(502, f"the endpoint's stream broke off: {exc}") from None
        finally:
            if finished:
                response.release()  # the connection goes back to the pool
            else:
                response.close()  # closed: a stream left early is cut upstream


async def _bounded_read(response: aiohttp.ClientResponse, limit: int = 65536) -> bytes:
    body = await response.content.read(limit)
    return bytes(body)


def _data_of(line: bytes) -> bytes | None:
    if not line.strip() or line.startswith((b":", b"event:", b"id:", b"retry:")):
        return None
    if line.startswith(b"data:"):
        return line[5:].strip()
    return line.strip()


def _retry_after(response: aiohttp.ClientResponse) -> float:
    try:
        return max(0.05, float(response.headers.get("retry-after", "0.2")))
    except ValueError:
        return 0.2
