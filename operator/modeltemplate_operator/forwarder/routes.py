"""Public routes of the forwarder, per endpoint protocol.

Every protocol has the Launch routes ``POST /predict`` (to the template's ``predictRoute``) and
``POST /stream`` (to its ``streamingPredictRoute``), plus the forwarder's own ``/readyz``,
``/healthz`` and ``/metrics``. Each protocol then adds its native routes, forwarded to the same
path on the model container. Anything else answers 404.

``capped`` routes do inference: they count against ``perWorker`` and the concurrency metric.
Uncapped routes (model listings, health) go straight through.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import contract as c


@dataclass(frozen=True)
class Route:
    path: str
    methods: tuple[str, ...]
    upstream: str | None = None  # None: same path upstream; "predict"/"stream": config routes
    capped: bool = True
    # "required": model_request_parameters is checked even when absent (missing required
    # parameters are reported); "if_present": checked only when the body carries it.
    params: str = "if_present"


LAUNCH_ROUTES = (
    Route(c.PREDICT_PATH, ("POST",), upstream="predict", params="required"),
    Route(c.STREAM_PATH, ("POST",), upstream="stream", params="required"),
)

PROTOCOLS: dict[str, tuple[Route, ...]] = {
    # Launch's own protocol: only the two Launch routes.
    "SGP": LAUNCH_ROUTES,
    # vLLM's OpenAI-compatible server.
    "VLLM": LAUNCH_ROUTES
    + (
        Route("/v1/completions", ("POST",)),
        Route("/v1/chat/completions", ("POST",)),
        Route("/v1/embeddings", ("POST",)),
        Route("/v1/rerank", ("POST",)),
        Route("/tokenize", ("POST",)),
        Route("/detokenize", ("POST",)),
        Route("/v1/models", ("GET",), capped=False),
        Route("/health", ("GET",), capped=False),
        Route("/version", ("GET",), capped=False),
    ),
    # Cohere's API (v1 and v2), as served by Cohere-compatible model containers.
    "COHERE": LAUNCH_ROUTES
    + (
        Route("/v1/generate", ("POST",)),
        Route("/v1/chat", ("POST",)),
        Route("/v1/embed", ("POST",)),
        Route("/v1/rerank", ("POST",)),
        Route("/v1/classify", ("POST",)),
        Route("/v1/tokenize", ("POST",)),
        Route("/v1/detokenize", ("POST",)),
        Route("/v2/chat", ("POST",)),
        Route("/v2/embed", ("POST",)),
        Route("/v2/rerank", ("POST",)),
        Route("/v1/models", ("GET",), capped=False),
    ),
}

# The forwarder's own routes (all protocols).
OWN_ROUTES = {
    c.READY_PATH: ("GET", "HEAD"),
    c.LIVE_PATH: ("GET", "HEAD"),
    c.METRICS_PATH: ("GET",),
}


def routes_for(protocol: str) -> dict[str, Route]:
    return {r.path: r for r in PROTOCOLS[protocol]}
