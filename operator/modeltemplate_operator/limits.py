"""The limits on what a user sends, one number each, shared by every reader of user input.

One operator and one gateway serve every namespace (account): a value one account controls must
cost bounded memory and time, and fail alone with a message that names it. These numbers hold
wherever input enters — the CRD schema and the optional admission webhook, the operator's watch
streams and reconciles, the gateway, the forwarder and the offline CLI — so a value refused in
one place is refused in the others, with the same words.

Depth is counted as JSON nests: a scalar is depth 0, ``{}`` and ``[]`` are depth 1, ``{"a": []}``
depth 2. Pure: no I/O, no third-party imports.
"""

from __future__ import annotations

import re
from typing import Any

#: Nesting of a free-form value a user writes (a creation parameter, a hyperparameter, a request
#: parameter): deep enough for any real configuration, shallow enough that every recursive
#: reader (pydantic, json, the parameter checker) stays far from Python's recursion limit.
MAX_VALUE_DEPTH = 32
#: Nesting of a whole document (a request body, a YAML file, an object read from a watch
#: stream): the free-form values above plus the schema's own levels around them. Kubernetes'
#: own kinds stay under 20.
MAX_DOCUMENT_DEPTH = 64

#: A parameter's name (it becomes part of an environment variable's name).
MAX_PARAMETER_NAME_LENGTH = 128

#: Values that reach exec(2) (env values, command arguments): Linux refuses one environment
#: string or argument over 128 KiB (MAX_ARG_STRLEN); 32,000 characters leaves room for UTF-8.
MAX_EXEC_STRING_LENGTH = 32_000

#: A request body the gateway accepts for a resource (templates, models, fine-tuning jobs): the
#: API server refuses JSON bodies over 3 MiB anyway.
MAX_API_BODY_BYTES = 3 * 1024 * 1024
#: A task payload (``/v1/async-tasks``), stored in Redis until a worker takes it.
MAX_TASK_PAYLOAD_BYTES = 16 * 1024 * 1024
#: A JSON request body the forwarder decodes to check it (syntax, request parameters): decoded
#: objects take up to ~7x the text (a list of small numbers), so only bodies up to this size
#: are decoded; a larger one passes unchecked, or is refused (413) where the template declares
#: request parameters. Decoding is one body at a time: far under the sidecar's 100M.
MAX_DECODED_BODY_BYTES = 1024 * 1024
#: A value quoted back in an error message: enough to recognise it, never the input echoed.
MAX_ECHO_CHARS = 200
#: One message of an error answer (a list of problems may hold several).
MAX_MESSAGE_CHARS = 2_000

#: A request's head (request line and headers) at the gateway: far over any real head (a
#: Kubernetes token is a few KiB); an endless header is refused (431) past it.
MAX_HEAD_BYTES = 64 * 1024
#: Problems (e.g. unknown keys) named in one error answer; the rest are counted.
MAX_PROBLEMS_LISTED = 100

#: Seconds a client has to send a request's headers, and its whole body, and an idle
#: keep-alive connection is kept (gateway).
HEADER_TIMEOUT_SECONDS = 10.0
BODY_TIMEOUT_SECONDS = 30.0
IDLE_TIMEOUT_SECONDS = 5.0


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` (decoded JSON or YAML) nests deeper than ``limit``; iterative, so any
    depth is measured without recursion, and it stops at the first level past the limit."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth + 1 > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_INNERMOST_PAIR = re.compile(rb"\[\]|\{\}")


def text_too_deep(text: str | bytes, limit: int = MAX_DOCUMENT_DEPTH) -> bool:
    """Whether JSON text nests deeper than ``limit``, known before decoding it (the decoder
    recurses); at C speed and without recursion: text with at most ``limit`` opening brackets
    cannot; otherwise the strings are dropped, the brackets kept, and the innermost pairs
    removed ``limit`` times: one level each time, so anything left is deeper."""
    data = text.encode() if isinstance(text, str) else text
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    skeleton = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        skeleton = _INNERMOST_PAIR.sub(b"", skeleton)
        if not skeleton:
            return False
    return True


def bounded(value: Any, limit: int = MAX_MESSAGE_CHARS, depth: int = 8) -> Any:
    """An error answer's detail with every string cut to ``limit`` and nesting below
    ``depth`` dropped: an answer never grows with the input it is about."""
    if isinstance(value, str):
        return truncate(value, limit)
    if depth <= 0:
        return "…"
    if isinstance(value, dict):
        return {truncate(str(k), 100): bounded(v, limit, depth - 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [bounded(v, limit, depth - 1) for v in value[:100]]
    return value


def truncate(value: Any, limit: int = MAX_ECHO_CHARS) -> str:
    """``value`` as text for a message, cut to ``limit`` characters with the length said."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"
