"""Serving SGP's inference calls on an endpoint: :func:`serve` maps the call onto the
template's protocol (:mod:`.protocols`), calls the endpoint's forwarder (:mod:`.upstream`) and
answers in SGP's shapes — JSON, or a stream passed on event by event (SSE)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse

from .protocols import Call, ServingError, Target, answer, request, stream_event
from .upstream import EndpointClient

__all__ = ["Call", "EndpointClient", "ServingError", "Target", "serve"]


async def serve(
    call: Call, body: dict[str, Any], target: Target, base_url: str, client: EndpointClient
) -> Response:
    """The answer to ``call`` with ``body`` on ``target`` (its forwarder at ``base_url``).
    Raises :class:`ServingError` for what is refused before an answer starts; an error in the
    middle of a stream is its last event (``event: error``), as SGP's client reads it."""
    up = request(call, body, target)
    if not up.stream:
        doc = await client.call(base_url, up)
        return Response(
            orjson.dumps(answer(call, body, target, doc)), media_type="application/json"
        )
    events = client.events(base_url, up)
    try:
        first = await anext(events)  # refusals before the answer's status is sent
    except StopAsyncIteration:
        first = None

    async def sse() -> AsyncIterator[bytes]:
        try:
            if first is None:
                return
            data = stream_event(call, body, target, first)
            if data is not None:
                yield b"data: " + data + b"\n\n"
            async for raw in events:
                data = stream_event(call, body, target, raw)
                if data is not None:
                    yield b"data: " + data + b"\n\n"
        except ServingError as exc:
            error = {"status": exc.status, "detail": exc.message}
            yield b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"
        finally:
            await events.aclose()  # the upstream request closed, also when the caller left

    return StreamingResponse(
        sse(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )
