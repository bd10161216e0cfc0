"""Launch's async task routes over ASYNC endpoints' task queues.

``POST /v1/async-tasks?model_endpoint_id=<id>`` (body: the predict payload, Launch's
``{"args": {...}}``) answers ``{"task_id": ...}`` at once; ``GET /v1/async-tasks/{task_id}``
answers ``{task_id, status, result, traceback, status_code, error}`` with ``status`` one of
PENDING, STARTED, SUCCESS, FAILURE, UNDEFINED (unknown, or past the result TTL).

``model_endpoint_id`` is ``namespace/name`` or the template's SGP id. The caller authenticates
as for the other routes (``x-api-key``: a Kubernetes token) and must be allowed to ``get``
modeltemplates in the endpoint's namespace, both to submit and to read a task (a task records
its endpoint). The queue protocol is :mod:`modeltemplate_operator.tasks.protocol.protocol`.

A payload is read under :data:`MAX_TASK_PAYLOAD_BYTES` and its depth checked on the text; up to
:data:`MAX_DECODED_BODY_BYTES` it is decoded (422 when it is not JSON), a larger one is queued
as the text it is (decoded, a 16 MiB payload of small numbers takes ~130 MB): the worker fails a
task whose payload is not JSON (400).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from ...limits import MAX_DECODED_BODY_BYTES, MAX_TASK_PAYLOAD_BYTES, truncate
from ...tasks import protocol as t
from ...tasks import queue as taskqueue
from ..caller import Caller, CallerDep
from ..calls import decode_json, read_body
from ..schemas import ERRORS, TaskCreated, TaskResult
from ..sgp import ApiError, validation_error
from ..store import Entry

__all__ = ["Broker", "find_endpoint", "router"]

PREFIX = "/v1/async-tasks"


@dataclass
class Broker:
    """The gateway's connection to the task queue broker (a ``redis.asyncio`` client)."""

    redis: Any
    result_ttl_seconds: int = t.DEFAULT_RESULT_TTL_SECONDS

    @classmethod
    def connect(cls, url: str, password: str | None, result_ttl_seconds: int) -> Broker:
        import redis.asyncio as aioredis

        # at most 64 connections; a request past them waits for one (up to 10 s)
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            password=password or None,
            decode_responses=True,
            socket_connect_timeout=5,
            max_connections=64,
            timeout=10,
        )
        return cls(aioredis.Redis(connection_pool=pool), result_ttl_seconds)


def _endpoint_type(entry: Entry) -> str | None:
    doc = json.loads(entry.json)
    return (doc.get("endpoint_type") or "").upper() or None


async def _submit_text(broker: Broker, entry: Entry, raw: bytes) -> str:
    """:func:`..tasks.queue.submit` of a payload kept as its text (not decoded)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise validation_error([("", "the payload must be UTF-8 JSON")]) from None
    del raw
    task_id = t.new_task_id()
    key = t.task_key(task_id)
    pipe = broker.redis.pipeline(transaction=True)
    pipe.hset(key, mapping=t.new_record(f"{entry.namespace}/{entry.name}"))
    pipe.expire(key, broker.result_ttl_seconds)
    pipe.xadd(t.queue_name(entry.namespace, entry.name), {t.F_TASK_ID: task_id, t.F_PAYLOAD: text})
    await pipe.execute()
    return task_id


router = APIRouter(tags=["tasks"], responses=ERRORS)


def _broker(caller: Caller) -> Broker:
    if caller.gateway.broker is None:
        raise ApiError(
            503,
            "async tasks are not available: the gateway has no broker (MODELTEMPLATE_BROKER_URL)",
            False,
        )
    return caller.gateway.broker


def find_endpoint(caller: Caller, endpoint_id: str) -> Entry | None:
    """A template's endpoint by ``namespace/name`` or by its id (None: unknown)."""
    store = caller.gateway.store
    if "/" in endpoint_id:
        namespace, _, name = endpoint_id.partition("/")
        return next((e for e in store.ordered(namespace) if e.name == name), None)
    return store.get(endpoint_id)


@router.post(PREFIX, summary="Submit a task to an ASYNC endpoint", response_model=TaskCreated)
async def submit(
    request: Request,
    caller: CallerDep,
    model_endpoint_id: Annotated[
        str, Query(description="namespace/name of the endpoint, or its id")
    ],
):
    broker = _broker(caller)
    await caller.gateway.synced()
    entry = find_endpoint(caller, model_endpoint_id)
    not_found = f"model endpoint {truncate(model_endpoint_id, 80)!r} not found"
    if entry is None:
        raise ApiError(404, not_found, False)
    # what the caller may not read does not exist for it: the same 404, no account named
    await caller.access.visible(caller.token, entry.namespace, "get", not_found)
    kind = _endpoint_type(entry)
    if kind != "ASYNC":
        raise validation_error(
            [
                (
                    "model_endpoint_id",
                    f"model endpoint {entry.namespace}/{entry.name} is {kind}, not ASYNC: "
                    "call its predict route instead",
                )
            ]
        )
    raw = await read_body(request, MAX_TASK_PAYLOAD_BYTES)
    if len(raw) <= MAX_DECODED_BODY_BYTES:
        task_id = await taskqueue.submit(
            broker.redis,
            entry.namespace,
            entry.name,
            decode_json(raw),
            result_ttl_seconds=broker.result_ttl_seconds,
        )
    else:
        task_id = await _submit_text(broker, entry, raw)
    return {"task_id": task_id}


@router.get(
    PREFIX + "/{task_id}", summary="Get a task's status and result", response_model=TaskResult
)
async def get(task_id: str, caller: CallerDep):
    record = await taskqueue.record(_broker(caller).redis, task_id)
    if record is not None:
        namespace = (record.get(t.F_ENDPOINT) or "").partition("/")[0]
        if not await caller.access.allowed(caller.token, namespace, "get"):
            record = None  # another account's task reads as an unknown one: UNDEFINED
    return t.response(task_id, record)
