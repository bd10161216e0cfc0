"""Usage of the endpoints, as the gateway serves them: requests, errors, tokens, latency.

What counts: every inference call the gateway answers (SGP's calls and Launch's sync and
streaming tasks), per endpoint (``namespace/name``) and per minute; tokens where the protocol
reports them (OpenAI's ``usage``, Cohere's ``billed_units``, SGP's ``prompt_tokens`` /
``response_tokens`` / ``tokens_used``). Calls made to an endpoint's Service directly, not
through the gateway, are not seen. The counts live in the gateway replica's memory (at most
:data:`KEEP_MINUTES` per endpoint) and are also exported at ``/metrics`` as counters, so a
Prometheus that scrapes the gateway keeps them across restarts; ``usage-statistics`` answers
from this replica's memory (since it started).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["Usage", "Tally"]

KEEP_MINUTES = 7 * 24 * 60
#: Endpoints counted at most (the oldest forgotten past it).
MAX_ENDPOINTS = 10_000


@dataclass
class Tally:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    response_tokens: int = 0


@dataclass
class Usage:
    """Counts by endpoint and minute, and their Prometheus counters (``registry``)."""

    clock: object = time.time
    _minutes: dict[str, dict[int, Tally]] = field(default_factory=dict)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        labels = ("namespace", "endpoint", "call")
        self._requests = Counter(
            "modeltemplate_gateway_inference_requests",
            "Inference calls answered by the gateway, by HTTP status class.",
            (*labels, "code"),
            registry=self.registry,
        )
        self._tokens = Counter(
            "modeltemplate_gateway_inference_tokens",
            "Tokens the endpoints reported (kind: prompt or response).",
            (*labels, "kind"),
            registry=self.registry,
        )
        self._seconds = Histogram(
            "modeltemplate_gateway_inference_seconds",
            "Time to the answer (to the first event of a stream).",
            labels,
            registry=self.registry,
        )

    def record(
        self,
        namespace: str,
        endpoint: str,
        call: str,
        status: int,
        seconds: float,
        prompt_tokens: int = 0,
        response_tokens: int = 0,
    ) -> None:
        key = f"{namespace}/{endpoint}"
        minutes = self._minutes.get(key)
        if minutes is None:
            if len(self._minutes) >= MAX_ENDPOINTS:
                self._minutes.pop(next(iter(self._minutes)))
            minutes = self._minutes[key] = defaultdict(Tally)
        minute = int(self.clock() // 60)
        tally = minutes[minute]
        tally.requests += 1
        tally.errors += status >= 400
        tally.prompt_tokens += prompt_tokens
        tally.response_tokens += response_tokens
        if len(minutes) > KEEP_MINUTES:
            for old in sorted(minutes)[: len(minutes) - KEEP_MINUTES]:
                del minutes[old]
        labels = (namespace, endpoint, call)
        self._requests.labels(*labels, f"{status // 100}xx").inc()
        if prompt_tokens:
            self._tokens.labels(*labels, "prompt").inc(prompt_tokens)
        if response_tokens:
            self._tokens.labels(*labels, "response").inc(response_tokens)
        self._seconds.labels(*labels).observe(seconds)

    def series(
        self, endpoints: list[str], start: datetime, end: datetime, chunks: int
    ) -> list[dict]:
        """SGP's usage data points: ``chunks`` equal periods from ``start`` to ``end``, each
        the sum over ``endpoints`` (``namespace/name``) of the minutes that begin in it."""
        begin, finish = start.timestamp(), end.timestamp()
        width = max((finish - begin) / chunks, 1e-9)
        points = [Tally() for _ in range(chunks)]
        for key in endpoints:
            for minute, tally in (self._minutes.get(key) or {}).items():
                at = minute * 60
                if begin <= at < finish:
                    point = points[min(int((at - begin) // width), chunks - 1)]
                    point.requests += tally.requests
                    point.prompt_tokens += tally.prompt_tokens
                    point.response_tokens += tally.response_tokens
        return [
            {
                "date": datetime.fromtimestamp(begin + i * width, UTC).isoformat(),
                "prompt_tokens": p.prompt_tokens,
                "response_tokens": p.response_tokens,
                "summary_tokens": p.prompt_tokens + p.response_tokens,
            }
            for i, p in enumerate(points)
        ]
