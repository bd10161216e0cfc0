"""Serving SGP's inference calls on an endpoint: :func:`serve` maps the call onto the
template's protocol (:mod:`.protocols`), calls the endpoint's forwarder (:mod:`.upstream`) and
answers in SGP's shapes — JSON, or a stream passed on event by event (SSE)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse

from .protocols import Call, ServingError, Target, answer, request, stream_event
from .upstream import EndpointClient
from .usage import Usage

__all__ = ["Call", "EndpointClient", "ServingError", "Target", "Usage", "serve"]


#: ``record(status, seconds, prompt_tokens, response_tokens)``: told of each answered call.
Record = Callable[[int, float, int, int], None]


def _tokens(doc: Any) -> tuple[int, int]:
    """(prompt, response) tokens an SGP answer reports."""
    if not isinstance(doc, dict):
        return 0, 0
    prompt = doc.get("prompt_tokens") or doc.get("tokens_used") or 0
    response = doc.get("response_tokens") or 0
    return (prompt if isinstance(prompt, int) else 0), (
        response if isinstance(response, int) else 0
    )


async def serve(
    call: Call,
    body: dict[str, Any],
    target: Target,
    base_url: str,
    client: EndpointClient,
    record: Record | None = None,
) -> Response:
    """The answer to ``call`` with ``body`` on ``target`` (its forwarder at ``base_url``).
    Raises :class:`ServingError` for what is refused before an answer starts; an error in the
    middle of a stream is its last event (``event: error``), as SGP's client reads it."""
    started = time.perf_counter()
    tell = record or (lambda *_: None)
    try:
        up = request(call, body, target)
        if not up.stream:
            doc = answer(call, body, target, await client.call(base_url, up))
            tell(200, time.perf_counter() - started, *_tokens(doc))
            return Response(orjson.dumps(doc), media_type="application/json")
        events = client.events(base_url, up)
        try:
            first = await anext(events)  # refusals before the answer's status is sent
        except StopAsyncIteration:
            first = None
    except ServingError as exc:
        tell(exc.status, time.perf_counter() - started, 0, 0)
        raise
    first_at = time.perf_counter() - started

    async def sse() -> AsyncIterator[bytes]:
        status, tokens = 200, (0, 0)
        try:
            if first is None:
                return
            data = stream_event(call, body, target, first)
            if data is not None:
                if b"_tokens" in data:
                    tokens = _tokens(orjson.loads(data))
                yield b"data: " + data + b"\n\n"
            async for raw in events:
                data = stream_event(call, body, target, raw)
                if data is not None:
                    if b"_tokens" in data:  # the event that reports usage
                        tokens = _tokens(orjson.loads(data))
                    yield b"data: " + data + b"\n\n"
        except ServingError as exc:
            status = exc.status
            error = {"status": exc.status, "detail": exc.message}
            yield b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"
        finally:
            tell(status, first_at, *tokens)
            await events.aclose()  # the upstream request closed, also when the caller left

    return StreamingResponse(
        sse(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )
