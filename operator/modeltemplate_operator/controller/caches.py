"""What the watch caches keep of an object, and which watch events can change a reconcile.

A reconcile reads a child's metadata and spec (apply compares them with what it renders) and
a few fields of its status (the table in kinds.py, ``Kind.status_fields``); the caches keep
exactly that. Most watch events of a busy cluster change nothing of it — the disruption
controller refreshing a PodDisruptionBudget's status, a Deployment's conditions moving their
timestamps, our own status patch coming back on the template — and each would cost a
reconcile. :class:`Seen` remembers a fingerprint of every object's cached form, so an event
that leaves it as it was is dropped before it queues anything (pure; the runtime calls it).
"""

from __future__ import annotations

import sys
from collections.abc import Hashable, Mapping
from typing import Any

import orjson

from ..api.kinds import Kind

#: Metadata that changes with every write and that no reconcile reads for its decision
#: (``resourceVersion`` stays in the cache: apply tracks its own writes by it).
VOLATILE_METADATA = ("managedFields", "resourceVersion")


#: Client-side ``kubectl apply``'s copy of the object, dropped from the caches.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

#: Strings up to this length are interned in the caches: keys, labels, images and names repeat
#: across every child of every template, and one copy of each halves the caches' memory.
INTERN_UP_TO = 64


def compact(value: Any) -> Any:
    """A copy of decoded JSON whose keys and short strings are shared (``sys.intern``)."""
    if isinstance(value, Mapping):
        return {sys.intern(k): compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compact(v) for v in value]
    if isinstance(value, str) and len(value) <= INTERN_UP_TO:
        return sys.intern(value)
    return value


def cached(kind: Kind, body: Mapping[str, Any]) -> dict[str, Any]:
    """The object as a watch cache keeps it: no managedFields (nor kubectl's last-applied copy),
    only the spec and status fields read, repeated strings shared."""
    out = {k: v for k, v in body.items() if k not in ("metadata", "status")}
    out["metadata"] = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    annotations = out["metadata"].get("annotations")
    if annotations and LAST_APPLIED in annotations:
        # `kubectl apply` keeps a second copy of the whole object here; nothing reads it.
        out["metadata"]["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    spec = body.get("spec")
    if spec is not None and kind.spec_fields is not None:
        out["spec"] = {k: spec[k] for k in kind.spec_fields if k in spec}
    status = body.get("status")
    if status is not None and kind.status_fields is None:
        out["status"] = status
    elif status:
        kept = {k: status[k] for k in kind.status_fields if k in status}
        if kept:
            out["status"] = kept
    return compact(out)


def fingerprint(obj: Mapping[str, Any]) -> int:
    """A hash of what a reconcile may read of a cached object (volatile metadata left out)."""
    metadata = {k: v for k, v in obj["metadata"].items() if k not in VOLATILE_METADATA}
    rest = {k: v for k, v in obj.items() if k != "metadata"}
    return hash(orjson.dumps([metadata, rest], option=orjson.OPT_SORT_KEYS))


class Seen:
    """The fingerprint of every watched object as last seen; :meth:`changed` says whether an
    event brought anything a reconcile reads."""

    def __init__(self) -> None:
        self._prints: dict[Hashable, int] = {}

    def changed(self, key: Hashable, obj: Mapping[str, Any]) -> bool:
        """Record ``obj`` under ``key``; False when its fingerprint is the one last recorded."""
        value = fingerprint(obj)
        if self._prints.get(key) == value:
            return False
        self._prints[key] = value
        return True

    def forget(self, key: Hashable) -> None:
        self._prints.pop(key, None)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._prints

    def __len__(self) -> int:
        return len(self._prints)
