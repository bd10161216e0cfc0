"""Every object the API server accepted decodes: the JSON decoder of Kopf's lists and watches.

The API server stores objects nested up to ~10,000 levels (a Model's free-form
``creationParameters``, a FineTuningJob's ``hyperparameters``), while Python's JSON decoders
give up at about 1,000 (``RecursionError``) and every recursive reader after them (indexers,
pydantic, the parameter checker) at less. Kopf decodes list answers and watch lines with
``json.loads`` and treats a decoding error as fatal to the whole operator, so one such object in
one namespace stopped every namespace's work, at every start.

:func:`loads` is the one decoder of what Kopf reads from the API server. Text whose brackets
nest no deeper than :data:`~.limits.MAX_DOCUMENT_DEPTH` (every Kubernetes object written by
people who mean no harm; measured without decoding) is decoded by orjson, as before but faster.
Deeper text is decoded once in a thread with room for it, and every value below that depth is
cut (replaced by ``null``): the object stays in the watch caches, its name and spec are read
as usual, and the reconcile reports the offending field as nested too deep — the object fails
alone and the watch goes on.

:func:`.kopfadapt.install` makes it the decoder of Kopf's lists and watch lines; the
admission webhook decodes its reviews with it too.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any
from urllib.parse import urlsplit

import orjson

from .limits import MAX_DOCUMENT_DEPTH, text_too_deep

#: Deeper than the API server stores (its decoder stops at 10,000 levels), with margin.
_DEEP_RECURSION_LIMIT = 25_000
#: The C stack one deep decode may use (a few hundred bytes per level).
_DEEP_STACK_BYTES = 256 * 1024 * 1024
_deep_lock = threading.Lock()


#: API groups of Kubernetes' own kinds (the core group is ``""``): the API server keeps only the
#: fields of their fixed Go types, so their objects nest as deep as those types and no deeper
#: (under 20 levels). Not ``apiextensions.k8s.io``: a CRD's schema nests freely.
SCHEMA_BOUNDED_GROUPS = frozenset({"", "apps", "policy", "batch", "autoscaling"})


def schema_bounds_depth(url: str) -> bool:
    """Whether ``url`` reads objects of Kubernetes' own kinds (``/api/v1/...``, ``/apis/apps/...``)."""
    parts = urlsplit(url).path.strip("/").split("/")
    if parts[0] == "api":
        return "" in SCHEMA_BOUNDED_GROUPS
    return len(parts) > 1 and parts[0] == "apis" and parts[1] in SCHEMA_BOUNDED_GROUPS


def loads(data: bytes | str, *, schema_bounded: bool = False) -> Any:
    """Decode JSON text from the API server; values nested past MAX_DOCUMENT_DEPTH become None.
    ``schema_bounded`` text (a list of Deployments: :func:`schema_bounds_depth`) skips the depth
    measure, which costs twice the decoding of a large list; should it nest past orjson's own
    limit after all, it is measured and cut like any other."""
    if schema_bounded:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    if not text_too_deep(data):
        return orjson.loads(data)
    return prune(_decode_deep(data), MAX_DOCUMENT_DEPTH)


def prune(value: Any, limit: int) -> Any:
    """``value`` with every value below ``limit`` levels replaced by None (in place, iterative)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in list(items):
            if isinstance(child, dict | list):
                if depth >= limit:
                    node[key] = None
                else:
                    stack.append((child, depth + 1))
    return value


def _decode_deep(data: bytes | str) -> Any:
    """json.loads with the recursion limit and C stack a 10,000-level document needs, in a thread
    of its own (one at a time: the recursion limit is the interpreter's)."""
    result: dict[str, Any] = {}

    def decode() -> None:
        previous = sys.getrecursionlimit()
        sys.setrecursionlimit(max(previous, _DEEP_RECURSION_LIMIT))
        try:
            result["value"] = json.loads(data)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            result["error"] = exc
        finally:
            sys.setrecursionlimit(previous)

    with _deep_lock:
        size = threading.stack_size(_DEEP_STACK_BYTES)
        try:
            worker = threading.Thread(target=decode, name="deep-json-decode")
            worker.start()
        finally:
            threading.stack_size(size)
        worker.join()
    if "error" in result:
        raise result["error"]
    return result["value"]
