"""SGP's inference calls mapped onto each endpoint protocol and back: every answer parsed
strictly with SGP's client types."""

from __future__ import annotations

import orjson
import pytest
from scale_gp.types import CompletionResponse, EmbeddingResponse, RerankingResponse

from modeltemplate_operator.api.parameters import ParameterSchema
from modeltemplate_operator.serving.protocols import (
    Call,
    ServingError,
    Target,
    answer,
    request,
    stream_event,
)

SCHEMA = ParameterSchema.parse({"parameters": [{"name": "lora", "type": "str", "required": True}]})


def target(protocol: str, model_type: str = "CHAT_COMPLETION", **kw) -> Target:
    base = dict(
        namespace="ns",
        name="ep",
        protocol=protocol,
        model_type=model_type,
        endpoint_type="STREAMING",
        request_schema=ParameterSchema.parse(None),
        model="served",
    )
    return Target(**(base | kw))


CHAT = {"chat_history": [{"role": "system", "content": "brief"}], "prompt": "hi", "top_k": 5}


@pytest.mark.parametrize(
    ("protocol", "call", "body", "path", "sent"),
    [
        (
            "VLLM",
            Call.CHAT,
            CHAT,
            "/v1/chat/completions",
            {
                "model": "served",
                "messages": [
                    {"role": "system", "content": "brief"},
                    {"role": "user", "content": "hi"},
                ],
                "top_k": 5,
            },
        ),
        (
            "COHERE",
            Call.CHAT,
            CHAT,
            "/v1/chat",
            {"message": "hi", "chat_history": [{"role": "SYSTEM", "message": "brief"}], "k": 5},
        ),
        (
            "VLLM",
            Call.COMPLETION,
            {"prompt": "p"},
            "/v1/completions",
            {"prompt": "p", "model": "served"},
        ),
        ("COHERE", Call.COMPLETION, {"prompt": "p"}, "/v1/generate", {"prompt": "p"}),
        ("SGP", Call.CHAT, CHAT, "/predict", CHAT),
        ("SGP", Call.EXECUTE, {"args": {"a": 1}, "stream": False}, "/predict", {"args": {"a": 1}}),
    ],
)
def test_requests(protocol, call, body, path, sent):
    model_type = "COMPLETION" if call is Call.COMPLETION else "CHAT_COMPLETION"
    up = request(call, body, target(protocol, model_type))
    assert (up.path, up.body, up.stream) == (path, sent, False)


def test_embeddings_and_rerankings_both_ways():
    for protocol, doc in (
        ("VLLM", {"data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}]}),
        ("COHERE", {"embeddings": [[1.0], [2.0]]}),
    ):
        t = target(protocol, "EMBEDDING")
        body = {"texts": ["a", "b"]}
        up = request(Call.EMBEDDING, body, t)
        assert up.body == ({"model": "served", "input": ["a", "b"]} if protocol == "VLLM" else body)
        got = EmbeddingResponse.model_validate(answer(Call.EMBEDDING, body, t, doc), strict=True)
        assert got.embeddings == [["a", [1.0]], ["b", [2.0]]]
    t = target("COHERE", "RERANKING")
    body = {"query": "q", "chunks": ["x", "y", "z"]}
    assert request(Call.RERANKING, body, t).body == {"query": "q", "documents": ["x", "y", "z"]}
    doc = {"results": [{"index": 2, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.1}]}
    got = RerankingResponse.model_validate(answer(Call.RERANKING, body, t, doc), strict=True)
    assert got.chunk_scores == [0.1, 0.0, 0.9]


def test_chat_answers_and_stream_events_parse_as_the_clients_types():
    t = target("VLLM")
    doc = {
        "choices": [{"message": {"content": "yo"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    got = CompletionResponse.model_validate(answer(Call.CHAT, CHAT, t, doc), strict=True)
    assert (got.completions, got.prompt_tokens, got.response_tokens) == ([["hi", ["yo"]]], 3, 1)
    event = stream_event(Call.CHAT, CHAT, t, b'{"choices":[{"delta":{"content":"y"}}]}')
    assert CompletionResponse.model_validate(orjson.loads(event)).completions == [["hi", ["y"]]]
    assert stream_event(Call.CHAT, CHAT, t, b"[DONE]") is None  # SGP's client reads no [DONE]
    cohere = target("COHERE")
    assert stream_event(Call.CHAT, CHAT, cohere, b'{"event_type":"stream-start"}') is None
    event = stream_event(Call.CHAT, CHAT, cohere, b'{"event_type":"text-generation","text":"a"}')
    assert orjson.loads(event)["completions"] == [["hi", ["a"]]]


@pytest.mark.parametrize(
    ("call", "body", "t", "status", "field"),
    [
        (Call.EMBEDDING, {"texts": ["x"]}, target("VLLM"), 422, "model_deployment_id"),
        (Call.CHAT, {"chat_history": []}, target("VLLM"), 422, "prompt"),
        (Call.EMBEDDING, {"texts": "x"}, target("VLLM", "EMBEDDING"), 422, "texts"),
        (
            Call.CHAT,
            {"prompt": "x", "model_request_parameters": {"bindings": {}}},
            target("VLLM", request_schema=SCHEMA),
            422,
            "model_request_parameters.lora",
        ),
        (
            Call.CHAT,
            {"prompt": "x", "stream": True},
            target("SGP", endpoint_type="SYNC"),
            422,
            "stream",
        ),
        (Call.CHAT, {"prompt": "x"}, target("VLLM", ready=False, reason="Pending"), 503, None),
    ],
)
def test_refusals_name_the_field(call, body, t, status, field):
    with pytest.raises(ServingError) as caught:
        request(call, body, t)
    assert (caught.value.status, caught.value.field) == (status, field)


def test_request_parameters_reach_the_model():
    t = target("VLLM", request_schema=SCHEMA)
    body = {"prompt": "x", "model_request_parameters": {"bindings": {"lora": "a"}}}
    assert request(Call.CHAT, body, t).body["lora"] == "a"
    sgp = request(Call.CHAT, body, target("SGP", request_schema=SCHEMA))
    assert sgp.body["model_request_parameters"] == {"lora": "a"}  # the forwarder's contract
