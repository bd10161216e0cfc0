"""SGP's inference calls on a template's endpoint protocol — pure: requests out, answers back.

=================  =========================  ===================  =====================
SGP call           SGP protocol (Launch)      VLLM (OpenAI-style)  COHERE
=================  =========================  ===================  =====================
chat-completions   ``/predict`` ``/stream``   /v1/chat/completions /v1/chat
completions        ``/predict`` ``/stream``   /v1/completions      /v1/generate
embeddings         ``/predict``               /v1/embeddings       /v1/embed
rerankings         ``/predict``               /v1/rerank           /v1/rerank
execute, tasks     ``/predict`` ``/stream``   the same             the same
=================  =========================  ===================  =====================

The SGP protocol's model reads SGP's request as sent (``model_request_parameters`` as its
bindings) and answers SGP's response; the others are translated both ways. Answers take the
shapes of SGP's client: ``CompletionResponse`` (``completions``: ``[[prompt, [text]]]``),
``EmbeddingResponse`` (``embeddings``: ``[[text, vector]]``), ``RerankingResponse``
(``chunk_scores`` in the order of ``chunks``). A stream is one ``CompletionResponse`` per event.
``model_request_parameters.bindings`` is checked against the template's request schema with the
one checker (:mod:`..api.parameters`) before any call.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from ..api.parameters import ParameterSchema
from ..limits import truncate

__all__ = ["Call", "ServingError", "Target", "Upstream", "answer", "request", "stream_event"]


class Call(StrEnum):
    CHAT = "chat-completions"
    COMPLETION = "completions"
    EMBEDDING = "embeddings"
    RERANKING = "rerankings"
    EXECUTE = "execute"
    SYNC_TASK = "sync-task"
    STREAMING_TASK = "streaming-task"


#: The model types each call serves (execute and tasks serve every type).
SERVES = {
    Call.CHAT: ("CHAT_COMPLETION",),
    Call.COMPLETION: ("COMPLETION", "CHAT_COMPLETION"),
    Call.EMBEDDING: ("EMBEDDING",),
    Call.RERANKING: ("RERANKING",),
}
PASS_THROUGH = (Call.EXECUTE, Call.SYNC_TASK, Call.STREAMING_TASK)
NATIVE_PATHS = {
    "VLLM": {
        Call.CHAT: "/v1/chat/completions",
        Call.COMPLETION: "/v1/completions",
        Call.EMBEDDING: "/v1/embeddings",
        Call.RERANKING: "/v1/rerank",
    },
    "COHERE": {
        Call.CHAT: "/v1/chat",
        Call.COMPLETION: "/v1/generate",
        Call.EMBEDDING: "/v1/embed",
        Call.RERANKING: "/v1/rerank",
    },
}
#: SGP sampling fields and their OpenAI / Cohere names.
SAMPLING = {
    "max_tokens": ("max_tokens", "max_tokens"),
    "temperature": ("temperature", "temperature"),
    "top_p": ("top_p", "p"),
    "top_k": ("top_k", "k"),
    "frequency_penalty": ("frequency_penalty", "frequency_penalty"),
    "presence_penalty": ("presence_penalty", "presence_penalty"),
    "stop_sequences": ("stop", "stop_sequences"),
}


class ServingError(Exception):
    """A call refused before or after the model: HTTP ``status``, ``message``, and the request
    field it is about (``None``: the call as a whole)."""

    def __init__(
        self, status: int, message: str, field: str | None = None, retry_after: int | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field
        self.retry_after = retry_after


@dataclass(frozen=True)
class Target:
    """What a call needs of the endpoint it reaches."""

    namespace: str
    name: str
    protocol: str  # SGP, VLLM, COHERE
    model_type: str
    endpoint_type: str  # SYNC, STREAMING, ASYNC, BATCH
    request_schema: ParameterSchema
    #: The model name a VLLM server is asked for (its served model name).
    model: str
    ready: bool = True
    reason: str = ""


@dataclass(frozen=True)
class Upstream:
    """One request to the endpoint's forwarder."""

    path: str
    body: dict[str, Any]
    stream: bool


def _fail(field: str, message: str, status: int = 422) -> ServingError:
    return ServingError(status, message, field)


def _bindings(body: dict[str, Any], target: Target) -> dict[str, Any] | None:
    """``model_request_parameters.bindings`` checked against the template's request schema."""
    params = body.get("model_request_parameters")
    if params is None:
        values = None
    elif not isinstance(params, dict) or not isinstance(params.get("bindings"), dict):
        raise _fail("model_request_parameters", "model_request_parameters must be {bindings: {}}")
    else:
        values = params["bindings"]
    if target.request_schema or values is not None:
        problems = target.request_schema.check_values(values or {}, "model_request_parameters")
        if problems:
            first = problems[0]
            raise _fail(first["field"], f"{first['field']}: {first['problem']}")
    return values


def _text(content: Any) -> str:
    """A message's content as text (content parts joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _messages(body: dict[str, Any]) -> list[dict[str, str]]:
    history = body.get("chat_history") or []
    if not isinstance(history, list):
        raise _fail("chat_history", "chat_history must be a list of messages")
    out = []
    for i, m in enumerate(history):
        if not isinstance(m, dict) or m.get("role", "user") not in ("user", "assistant", "system"):
            raise _fail(f"chat_history[{i}]", f"chat_history[{i}] must be a message")
        out.append({"role": m.get("role", "user"), "content": _text(m.get("content"))})
    return [*out, {"role": "user", "content": _prompt(body)}]


def _prompt(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise _fail("prompt", "prompt is required (a string)")
    return prompt


def _strings(body: dict[str, Any], field: str) -> list[str]:
    value = body.get(field)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(field, f"{field} must be a list of strings")
    return value


def request(call: Call, body: dict[str, Any], target: Target) -> Upstream:
    """The forwarder request for an SGP ``call`` with ``body`` (:class:`ServingError` when the
    call or its input cannot be served by ``target``)."""
    if not target.ready:
        raise ServingError(
            503,
            f"endpoint {target.namespace}/{target.name} is not ready: "
            f"{target.reason or 'starting'}",
        )
    if call not in PASS_THROUGH and target.model_type not in SERVES[call]:
        raise _fail(
            "model_deployment_id",
            f"{target.namespace}/{target.name} is a {target.model_type} model: it serves no "
            f"{call} (those go to {' or '.join(SERVES[call])} models)",
        )
    stream = bool(body.get("stream")) or call is Call.STREAMING_TASK
    if stream and target.endpoint_type not in ("STREAMING",) and call is not Call.EXECUTE:
        if call is Call.STREAMING_TASK or target.protocol == "SGP":
            raise _fail(
                "stream",
                f"{target.namespace}/{target.name} is {target.endpoint_type}: it does not stream",
            )
    bindings = _bindings(body, target)
    if call in PASS_THROUGH or target.protocol == "SGP":
        sent = {k: v for k, v in body.items() if k != "stream"}
        if call in (Call.CHAT, Call.COMPLETION, Call.EMBEDDING, Call.RERANKING):
            sent["model_request_parameters"] = bindings
            sent = {k: v for k, v in sent.items() if v is not None}
        return Upstream("/stream" if stream else "/predict", sent, stream)
    path = NATIVE_PATHS[target.protocol][call]
    openai = target.protocol == "VLLM"
    native: dict[str, Any] = {}
    if call is Call.CHAT:
        messages = _messages(body)
        if openai:
            native = {"model": target.model, "messages": messages}
        else:
            roles = {"user": "USER", "assistant": "CHATBOT", "system": "SYSTEM"}
            native = {
                "message": messages[-1]["content"],
                "chat_history": [
                    {"role": roles[m["role"]], "message": m["content"]} for m in messages[:-1]
                ],
            }
    elif call is Call.COMPLETION:
        native = {"prompt": _prompt(body)}
        if openai:
            native["model"] = target.model
    elif call is Call.EMBEDDING:
        texts = _strings(body, "texts")
        native = {"model": target.model, "input": texts} if openai else {"texts": texts}
    elif call is Call.RERANKING:
        if not isinstance(body.get("query"), str):
            raise _fail("query", "query is required (a string)")
        native = {"query": body["query"], "documents": _strings(body, "chunks")}
        if openai:
            native["model"] = target.model
    if call in (Call.CHAT, Call.COMPLETION):
        for sgp, names in SAMPLING.items():
            if body.get(sgp) is not None:
                native[names[0] if openai else names[1]] = body[sgp]
        if stream:
            native["stream"] = True
    if bindings:
        native.update(bindings)  # the template's request parameters go to the model as given
    return Upstream(path, native, stream)


def _usage(doc: dict[str, Any], openai: bool) -> dict[str, int | None]:
    if openai:
        usage = doc.get("usage") or {}
        return {
            "prompt_tokens": usage.get("prompt_tokens"),
            "response_tokens": usage.get("completion_tokens"),
        }
    units = (doc.get("meta") or {}).get("billed_units") or {}
    return {
        "prompt_tokens": units.get("input_tokens"),
        "response_tokens": units.get("output_tokens"),
    }


def _shape(field: str, doc: Any) -> ServingError:
    return ServingError(502, f"the model answered no {field}: {truncate(doc, 200)}")


def answer(call: Call, body: dict[str, Any], target: Target, doc: Any) -> Any:
    """The SGP answer to ``call`` from the model's JSON answer ``doc``."""
    if call is Call.SYNC_TASK:  # Launch's answer to a sync task
        return {"status": "SUCCESS", "result": doc, "traceback": None, "status_code": 200}
    if call in PASS_THROUGH or target.protocol == "SGP":
        return doc
    openai = target.protocol == "VLLM"
    if not isinstance(doc, dict):
        raise _shape("object", doc)
    if call in (Call.CHAT, Call.COMPLETION):
        if openai:
            choices = doc.get("choices") or []
            texts = [
                (c.get("message") or {}).get("content") or c.get("text") or "" for c in choices
            ]
            finish = (choices[0] if choices else {}).get("finish_reason")
        else:
            generations = doc.get("generations")
            texts = [g.get("text", "") for g in generations] if generations else [doc.get("text")]
            finish = doc.get("finish_reason") or (generations or [{}])[0].get("finish_reason")
        if not texts or texts[0] is None:
            raise _shape("text", doc)
        return {
            "completions": [[body.get("prompt", ""), texts]],
            "finish_reason": finish,
            **_usage(doc, openai),
        }
    if call is Call.EMBEDDING:
        if openai:
            vectors = [
                d.get("embedding")
                for d in sorted(doc.get("data") or [], key=lambda d: d.get("index", 0))
            ]
            tokens = (doc.get("usage") or {}).get("prompt_tokens")
        else:
            vectors = doc.get("embeddings")
            tokens = ((doc.get("meta") or {}).get("billed_units") or {}).get("input_tokens")
        if not isinstance(vectors, list) or len(vectors) != len(body.get("texts") or []):
            raise _shape("embeddings", doc)
        return {
            "embeddings": [[t, v] for t, v in zip(body["texts"], vectors, strict=True)],
            "tokens_used": tokens,
        }
    # rerankings: scores back in the order of the chunks
    results = doc.get("results")
    if not isinstance(results, list):
        raise _shape("results", doc)
    scores = [0.0] * len(body.get("chunks") or [])
    for r in results:
        index = r.get("index")
        if isinstance(index, int) and 0 <= index < len(scores):
            scores[index] = float(r.get("relevance_score") or 0.0)
    tokens = ((doc.get("meta") or {}).get("billed_units") or {}).get("search_units")
    if openai:
        tokens = (doc.get("usage") or {}).get("total_tokens")
    return {"chunk_scores": scores, "tokens_used": tokens}


def stream_event(call: Call, body: dict[str, Any], target: Target, data: bytes) -> bytes | None:
    """One event of the model's stream (its ``data``) as the ``data`` of SGP's event (None:
    nothing to send for it, e.g. OpenAI's ``[DONE]``, which SGP's client does not read)."""
    text = data.strip()
    if not text or text == b"[DONE]":
        return None
    if call in PASS_THROUGH or target.protocol == "SGP":
        if call is Call.STREAMING_TASK:
            try:
                result = orjson.loads(text)
            except orjson.JSONDecodeError:
                result = text.decode(errors="replace")
            return orjson.dumps({"status": "SUCCESS", "result": result, "traceback": None})
        return text
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ServingError(
            502,
            f"the model streamed an event that is not JSON: "
            f"{truncate(text.decode(errors='replace'), 120)}",
        ) from None
    if target.protocol == "VLLM":
        choice = (doc.get("choices") or [{}])[0]
        delta = (choice.get("delta") or {}).get("content") or choice.get("text") or ""
        finish = choice.get("finish_reason")
        usage = _usage(doc, True) if doc.get("usage") else {}
    else:  # Cohere's stream: text-generation events, then stream-end
        if doc.get("event_type") not in ("text-generation", "stream-end"):
            return None
        delta = doc.get("text") or ""
        finish = doc.get("finish_reason")
        usage = _usage(doc.get("response") or {}, False) if finish else {}
    if not delta and not finish:
        return None
    return orjson.dumps(
        {"completions": [[body.get("prompt", ""), [delta]]], "finish_reason": finish, **usage}
    )
