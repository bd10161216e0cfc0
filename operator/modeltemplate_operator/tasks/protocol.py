"""The task protocol of ASYNC endpoints (pure): queue names, the task record, its statuses and the
answer of ``GET /v1/async-tasks/{task_id}``. Shared by the forwarder's async mode (consumer),
the gateway's task API (producer, reader) and ``render`` / ``status`` (queue name, KEDA trigger).

Mechanism: one **Redis Stream per endpoint** with one consumer group (:data:`CONSUMER_GROUP`).

- The gateway writes the task record (a hash, :func:`task_key`) with status ``PENDING`` and a
  TTL, then ``XADD``\\s ``{task_id, payload}`` to the endpoint's stream.
- Each forwarder reads with ``XREADGROUP`` asking for at most its free in-flight slots
  (``perWorker`` minus tasks in flight), so nothing waits in a pod's prefetch buffer; an entry
  read is in the group's pending list (PEL) until acknowledged.
- A task is acknowledged only after its result is stored: result ``HSET`` + ``EXPIRE`` (the
  result TTL setting) + ``XACK`` + ``XDEL`` in one ``MULTI``. Deleting acknowledged entries
  keeps ``XLEN`` = waiting + in flight, the figure the autoscaler divides by ``perWorker``
  (KEDA's redis-streams trigger with ``streamLength``; a list trigger would see only waiting
  tasks).
- A forwarder killed mid-task (kill -9, node loss) leaves its entries in the PEL; every
  forwarder reclaims entries idle longer than the visibility timeout with ``XAUTOCLAIM``. Live
  forwarders reset the idle time of their in-flight entries (``XCLAIM ... JUSTID``) well within
  the timeout, so a long task of a live pod is never taken twice.
- So a task runs at least once; it runs **twice only after a crash** between ``main``'s answer
  and the stored result (a reclaimed task whose record is already final is just acknowledged).
- Redis Streams over Celery: no extra broker library in the pod, acknowledgement after the
  result is one transaction, in-flight work is visible to the autoscaler, and claiming stale
  entries is a Redis command rather than a broker-specific redelivery setting.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

PENDING = "PENDING"
STARTED = "STARTED"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
UNDEFINED = "UNDEFINED"
STATUSES = (PENDING, STARTED, SUCCESS, FAILURE, UNDEFINED)
FINAL = frozenset((SUCCESS, FAILURE))

#: The consumer group every forwarder of an endpoint joins.
CONSUMER_GROUP = "forwarders"
QUEUE_PREFIX = "modeltemplate:queue:"
TASK_PREFIX = "modeltemplate:task:"

# Fields of a stream entry and of a task record.
F_TASK_ID = "task_id"
F_PAYLOAD = "payload"
F_STATUS = "status"
F_ENDPOINT = "endpoint"
F_RESULT = "result"
F_STATUS_CODE = "status_code"
F_ERROR = "error"
F_TRACEBACK = "traceback"

DEFAULT_RESULT_TTL_SECONDS = 86400

_TASK_ID = re.compile(r"^[0-9a-f]{32}$")


def queue_name(namespace: str, name: str) -> str:
    """The Redis Stream of the endpoint ``namespace/name`` (names are DNS labels: no ``:``)."""
    return f"{QUEUE_PREFIX}{namespace}:{name}"


def new_task_id() -> str:
    return uuid.uuid4().hex


def valid_task_id(task_id: str) -> bool:
    return bool(_TASK_ID.match(task_id))


def task_key(task_id: str) -> str:
    return TASK_PREFIX + task_id


def main_body(payload: Any) -> Any:
    """What ``main`` receives for a task: Launch's payload is ``{"args": {...}, ...}`` and
    ``main`` gets ``args``; a payload without ``args`` is sent whole."""
    if isinstance(payload, dict) and "args" in payload:
        return payload["args"]
    return payload


def new_record(endpoint: str) -> dict[str, str]:
    """The task record written at submission (``endpoint`` is ``namespace/name``)."""
    return {F_STATUS: PENDING, F_ENDPOINT: endpoint}


def result_fields(status: str, result: Any, status_code: int | None, error: str | None) -> dict:
    """Record fields of a finished task (stored as strings; ``result`` as JSON)."""
    return {
        F_STATUS: status,
        F_RESULT: json.dumps(result),
        F_STATUS_CODE: "" if status_code is None else str(status_code),
        F_ERROR: error or "",
    }


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def response(task_id: str, record: dict | None) -> dict[str, Any]:
    """Launch's answer to ``GET /v1/async-tasks/{task_id}``: ``{task_id, status, result,
    traceback, status_code}`` plus ``error`` (the message of a ``FAILURE``). A record that does
    not exist (never submitted, or expired after the result TTL) is ``UNDEFINED``."""
    if not record:
        return {
            "task_id": task_id,
            "status": UNDEFINED,
            "result": None,
            "traceback": None,
            "status_code": None,
            "error": None,
        }
    fields = {_text(k): _text(v) for k, v in record.items()}
    status = fields.get(F_STATUS, UNDEFINED)
    if status not in STATUSES:
        status = UNDEFINED
    result = None
    if fields.get(F_RESULT):
        try:
            result = json.loads(fields[F_RESULT])
        except ValueError:
            result = fields[F_RESULT]
    code = fields.get(F_STATUS_CODE) or None
    return {
        "task_id": task_id,
        "status": status,
        "result": result,
        "traceback": fields.get(F_TRACEBACK) or None,
        "status_code": int(code) if code else None,
        "error": fields.get(F_ERROR) or None,
    }
