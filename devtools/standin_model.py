"""A stand-in model server speaking a template's endpoint protocol, as its own process — for the
serving tests, the demo and ``make bench-gateway``. Deterministic answers:

- SGP (Launch): ``POST /predict`` (any route; one with ``stream`` in its path streams) answers
  SGP's shapes for SGP's calls (a prompt, texts, a query), else ``{"echo": <body>}``
  (``{"status": N}`` in the body makes it answer N); ``POST /stream`` streams the answer word
  by word, or three SSE events ``{"token": i}``.
- VLLM (OpenAI-style): ``/v1/chat/completions`` and ``/v1/completions`` answer ``echo: <last
  message or prompt>`` (streamed word by word as SSE chunks with ``stream: true``, then
  ``[DONE]``), ``/v1/embeddings`` a vector ``[len(text), 1.0, 0.0]`` per input, ``/v1/rerank``
  a score per document (the words it shares with the query).
- COHERE: ``/v1/chat`` (``stream: true``: one JSON event per line), ``/v1/generate``,
  ``/v1/embed``, ``/v1/rerank`` with the same answers in Cohere's shapes.

Any GET answers 200 (health). ``GET /stats`` counts calls and streams the client left early.

    python -m devtools.standin_model --protocol VLLM --port 5005
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web


class StandIn:
    def __init__(self, protocol: str, delay: float = 0.0):
        self.protocol = protocol
        self.delay = delay
        self.calls: dict[str, int] = {}
        self.streams_cut = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/stats", self.stats)
        app.router.add_post("/{path:.*}", self.post)
        app.router.add_get("/{path:.*}", self.health)
        return app

    async def stats(self, _: web.Request) -> web.Response:
        return web.json_response({"calls": self.calls, "streams_cut": self.streams_cut})

    async def health(self, _: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def post(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        self.calls[path] = self.calls.get(path, 0) + 1
        body = await request.json()
        if self.delay:
            await asyncio.sleep(self.delay)
        if isinstance(body, dict) and isinstance(body.get("status"), int):
            return web.json_response({"detail": "asked to fail"}, status=body["status"])
        handler = getattr(self, f"{self.protocol.lower()}_{_slug(path)}", None)
        if handler is None and self.protocol == "SGP":  # a template's own predict routes
            handler = self.sgp_stream if "stream" in path else self.sgp_predict
        if handler is None:
            return web.json_response({"detail": f"no route {path}"}, status=404)
        return await handler(request, body)

    # --- SGP (Launch's own routes) --------------------------------------------------------

    async def sgp_predict(self, _: web.Request, body) -> web.StreamResponse:
        """SGP's own shapes for SGP's calls (a prompt, texts, a query), else an echo."""
        if isinstance(body.get("prompt"), str):
            text = _echo(body["prompt"])
            return web.json_response(
                {"completions": [[body["prompt"], [text]]], "finish_reason": "stop"}
            )
        if isinstance(body.get("texts"), list):
            return web.json_response({"embeddings": [[t, _vector(t)] for t in body["texts"]]})
        if isinstance(body.get("query"), str):
            scores = sorted(
                _rerank(body["query"], body.get("chunks") or []), key=lambda r: r["index"]
            )
            return web.json_response({"chunk_scores": [r["relevance_score"] for r in scores]})
        return web.json_response({"echo": body})

    async def sgp_stream(self, request: web.Request, body) -> web.StreamResponse:
        if isinstance(body.get("prompt"), str):
            words = _echo(body["prompt"]).split(" ")
            events = [
                json.dumps({"completions": [[body["prompt"], [w + " "]]], "finish_reason": None})
                for w in words
            ]
            return await self._sse(request, events)
        return await self._sse(request, [json.dumps({"token": i}) for i in range(3)])

    vllm_predict = cohere_predict = sgp_predict
    vllm_stream = cohere_stream = sgp_stream
    # the default streamingPredictRoute of a template
    sgp_generate_streaming = vllm_generate_streaming = cohere_generate_streaming = sgp_stream

    # --- VLLM -------------------------------------------------------------------------------

    async def vllm_v1_chat_completions(self, request: web.Request, body) -> web.StreamResponse:
        return await self._openai(request, body, _echo(body["messages"][-1]["content"]), True)

    async def vllm_v1_completions(self, request: web.Request, body) -> web.StreamResponse:
        return await self._openai(request, body, _echo(body["prompt"]), False)

    async def _openai(self, request, body, text: str, chat: bool) -> web.StreamResponse:
        usage = {"prompt_tokens": 3, "completion_tokens": len(text.split()), "total_tokens": 9}
        if not body.get("stream"):
            choice = {"index": 0, "finish_reason": "stop"}
            choice |= (
                {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
            )
            return web.json_response(
                {"model": body.get("model"), "choices": [choice], "usage": usage}
            )
        chunks = []
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            last = i == len(words) - 1
            choice = {"index": 0, "finish_reason": "stop" if last else None}
            choice |= {"delta": {"content": piece}} if chat else {"text": piece}
            chunk = {"choices": [choice]} | ({"usage": usage} if last else {})
            chunks.append(json.dumps(chunk))
        return await self._sse(request, [*chunks, "[DONE]"])

    async def vllm_v1_embeddings(self, _: web.Request, body) -> web.StreamResponse:
        data = [{"index": i, "embedding": _vector(t)} for i, t in enumerate(body["input"])]
        return web.json_response({"data": data, "usage": {"prompt_tokens": len(data)}})

    async def vllm_v1_rerank(self, _: web.Request, body) -> web.StreamResponse:
        results = _rerank(body["query"], body["documents"])
        return web.json_response({"results": results, "usage": {"total_tokens": len(results)}})

    # --- COHERE ---------------------------------------------------------------------------

    async def cohere_v1_chat(self, request: web.Request, body) -> web.StreamResponse:
        text = _echo(body["message"])
        units = {"input_tokens": 3, "output_tokens": len(text.split())}
        if not body.get("stream"):
            return web.json_response(
                {"text": text, "finish_reason": "COMPLETE", "meta": {"billed_units": units}}
            )
        events = [{"event_type": "stream-start"}]
        events += [{"event_type": "text-generation", "text": w + " "} for w in text.split(" ")]
        events.append(
            {
                "event_type": "stream-end",
                "finish_reason": "COMPLETE",
                "response": {"text": text, "meta": {"billed_units": units}},
            }
        )
        response = web.StreamResponse(headers={"content-type": "application/stream+json"})
        await response.prepare(request)
        for event in events:
            await response.write(json.dumps(event).encode() + b"\n")
        await response.write_eof()
        return response

    async def cohere_v1_generate(self, _: web.Request, body) -> web.StreamResponse:
        text = _echo(body["prompt"])
        return web.json_response(
            {
                "generations": [{"text": text, "finish_reason": "COMPLETE"}],
                "meta": {"billed_units": {"input_tokens": 3, "output_tokens": 2}},
            }
        )

    async def cohere_v1_embed(self, _: web.Request, body) -> web.StreamResponse:
        return web.json_response(
            {
                "embeddings": [_vector(t) for t in body["texts"]],
                "meta": {"billed_units": {"input_tokens": len(body["texts"])}},
            }
        )

    async def cohere_v1_rerank(self, _: web.Request, body) -> web.StreamResponse:
        results = _rerank(body["query"], body["documents"])
        return web.json_response(
            {"results": results, "meta": {"billed_units": {"search_units": 1}}}
        )

    # --- streams ----------------------------------------------------------------------------

    async def _sse(self, request: web.Request, events: list[str]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        try:
            for event in events:
                await response.write(f"data: {event}\n\n".encode())
                await asyncio.sleep(self.delay or 0.01)
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.streams_cut += 1
            raise
        return response


def _slug(path: str) -> str:
    return path.strip("/").replace("/", "_").replace("-", "_")


def _echo(text: str) -> str:
    return f"echo: {text}"


def _vector(text: str) -> list[float]:
    return [float(len(text)), 1.0, 0.0]


def _rerank(query: str, documents: list[str]) -> list[dict]:
    words = set(query.lower().split())
    scored = [
        {"index": i, "relevance_score": len(words & set(d.lower().split())) / max(len(words), 1)}
        for i, d in enumerate(documents)
    ]
    return sorted(scored, key=lambda r: -r["relevance_score"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", choices=("SGP", "VLLM", "COHERE"), default="SGP")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5005)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    web.run_app(
        StandIn(args.protocol, args.delay).app(), host=args.host, port=args.port, print=None
    )


if __name__ == "__main__":
    main()
