"""Producer side of the task queue (I/O, ``redis.asyncio``): submit a task to an endpoint's
queue and read a task back. Used by the gateway's task API, the demo and the tests; the protocol
itself is :mod:`modeltemplate_operator.tasks.protocol.protocol`."""

from __future__ import annotations

import json
from typing import Any

from . import protocol as t


async def submit(redis, namespace: str, name: str, payload: Any, *, result_ttl_seconds: int) -> str:
    """Write the ``PENDING`` record (with the result TTL, so an abandoned queue leaves nothing
    behind forever) and add the task to the endpoint's stream, in one transaction."""
    task_id = t.new_task_id()
    key = t.task_key(task_id)
    pipe = redis.pipeline(transaction=True)
    pipe.hset(key, mapping=t.new_record(f"{namespace}/{name}"))
    pipe.expire(key, result_ttl_seconds)
    pipe.xadd(
        t.queue_name(namespace, name),
        {t.F_TASK_ID: task_id, t.F_PAYLOAD: json.dumps(payload)},
    )
    await pipe.execute()
    return task_id


async def record(redis, task_id: str) -> dict | None:
    """The raw record of a task (``None``: unknown or expired)."""
    if not t.valid_task_id(task_id):
        return None
    found = await redis.hgetall(t.task_key(task_id))
    return found or None


async def get(redis, task_id: str) -> dict[str, Any]:
    """Launch's answer for ``GET /v1/async-tasks/{task_id}``."""
    return t.response(task_id, await record(redis, task_id))
