"""Apply: server-side apply of desired children, skipping what already matches, pruning the rest.

One field manager owns every field the operator renders. A child whose live state already
contains every rendered field (quantities compared by value) is not written at all, so a
resync of a converged template makes no write request. A manual edit of a rendered field makes
the live state differ and is reverted by the next apply.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from kubernetes.client.exceptions import ApiException

from ..api import kinds
from ..api.models import QuantityError, parse_quantity
from .caches import cached
from .cluster import Cluster
from .kube import is_transient, status_message
from .metrics import CHILD_PRUNES, CHILD_WRITES

log = logging.getLogger(__name__)


#: Where quantities live in what we render: the API server answers them in canonical form
#: (2048Gi as 2Ti), so there they compare by value; everywhere else strings compare as strings
#: (an env "1e3" is not "1000").
QUANTITY_PARENTS = frozenset({"requests", "limits"})
QUANTITY_KEYS = frozenset({"averageValue"})


def _same_quantity(want: Any, have: Any) -> bool:
    if want == have:
        return True
    try:
        return parse_quantity(str(want)) == parse_quantity(str(have))
    except (QuantityError, ValueError, ArithmeticError):
        return False


def is_subset(want: Any, have: Any, quantities: bool = False) -> bool:
    """Does the live object ``have`` already hold every field of ``want``?"""
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(
            k in have
            and is_subset(v, have[k], quantities or k in QUANTITY_PARENTS or k in QUANTITY_KEYS)
            for k, v in want.items()
        )
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(is_subset, want, have))
    return _same_quantity(want, have) if quantities else want == have


def key_of(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    return (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])


@dataclass
class ApplyResult:
    applied: list[str]
    pruned: list[str]
    #: The children as they stand after this sync: what the API server answered to our writes,
    #: the watch cache for the rest. Status is computed from these, never from the cache alone,
    #: which still shows the children from before the write.
    children: list[dict[str, Any]] = field(default_factory=list)
    #: Written by an earlier reconcile, not shown by the watch cache yet.
    pending: list[str] = field(default_factory=list)

    @property
    def wrote(self) -> bool:
        return bool(self.applied or self.pruned)


@dataclass(frozen=True)
class _Write:
    """A write of ours the watch cache may not show yet."""

    fingerprint: bytes | None  # of the applied object; None for a delete
    seen_version: str | None  # resourceVersion the cache showed when we wrote (None: absent)
    stored: dict[str, Any] | None = None  # what the API server answered to the write


def _version(obj: Mapping[str, Any] | None) -> str | None:
    return ((obj or {}).get("metadata") or {}).get("resourceVersion")


def _fingerprint(obj: Mapping[str, Any]) -> bytes:
    """A digest of a rendered object (16 bytes kept per write, not the whole document)."""
    return hashlib.blake2b(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()


class Applier:
    """Server-side applies children, comparing with the watch cache first.

    The cache lags behind the operator's own writes by a watch event; until it shows a write,
    the write is remembered, so a reconcile in that window does not apply (or delete) the same
    object again. Thread-safe per owner: callers serialise reconciles of one template. Its
    writes go through ``cluster`` (:class:`~.cluster.Cluster`).
    """

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self._writes: dict[tuple[str, str, str, str], _Write] = {}

    def forget(self, owner_uid: str) -> None:
        """Drop what is remembered of a deleted template's children."""
        for key in [k for k in list(self._writes) if k[0] == owner_uid]:
            self._writes.pop(key, None)

    def _in_flight(
        self, key: tuple[str, str, str, str], cached: Mapping[str, Any] | None
    ) -> _Write | None:
        """Our last write to ``key`` if the cache does not show it yet; forgotten once it does."""
        write = self._writes.get(key)
        if write is not None and _version(cached) != write.seen_version:
            del self._writes[key]  # the cache moved on: it shows our write, or something newer
            return None
        return write

    def sync(
        self,
        desired: Iterable[Mapping[str, Any]],
        live: Iterable[Mapping[str, Any]],
        owner_uid: str,
    ) -> ApplyResult:
        """Make the children owned by ``owner_uid`` exactly ``desired``."""
        live_by_key = {key_of(o): o for o in live if _owned_by(o, owner_uid)}
        applied, pruned, children, pending = [], [], [], []
        desired = list(desired)
        for obj in desired:
            current = live_by_key.get(key_of(obj))
            write_key = (owner_uid, *key_of(obj))
            fingerprint = _fingerprint(obj)
            in_flight = self._in_flight(write_key, current)
            if in_flight is not None and in_flight.fingerprint == fingerprint:
                children.append(in_flight.stored)  # applied already; the cache lags behind
                pending.append(f"{obj['kind']}/{obj['metadata']['name']}")
                continue
            if in_flight is None and current is not None and is_subset(obj, current):
                children.append(dict(current))
                continue
            name = f"{obj['kind']}/{obj['metadata']['name']}"
            try:
                stored = self.cluster.apply(obj)
            except ApiException as exc:
                if is_transient(exc):
                    raise
                if exc.status == 422 and obj["kind"] == "Job" and "immutable" in (exc.body or ""):
                    # A Job's pod template cannot change: delete it; its deletion event brings
                    # the next reconcile, which creates the new one.
                    self.cluster.delete(obj)
                    CHILD_PRUNES.labels(obj["kind"]).inc()
                    self._writes[write_key] = _Write(None, _version(current))
                    pruned.append(name)
                    continue
                raise ApplyRejected(
                    f"{name}: {status_message(exc)}", namespace_terminating=_terminating(exc)
                ) from None
            if not is_subset(obj, stored):
                # Server-side apply never removes what another manager added to a list we
                # render (an env var, a volume, a toleration someone slipped in): the spec's
                # lists are replaced wholesale, its maps left merged.
                log.info("%s had foreign list entries: replaced", name)
                stored = self.cluster.replace_lists(obj)
            CHILD_WRITES.labels(obj["kind"]).inc()
            # Kept as the watch cache keeps it (no managedFields, only the status read).
            stored = cached(kinds.for_object(obj), stored)
            self._writes[write_key] = _Write(fingerprint, _version(current), stored)
            applied.append(name)
            children.append(stored)
        wanted = {key_of(o) for o in desired}
        for key, obj in sorted(live_by_key.items()):
            write_key = (owner_uid, *key)
            if key in wanted:
                continue
            if self._in_flight(write_key, obj) is not None:
                pending.append(f"{obj['kind']}/{obj['metadata']['name']}")
                continue
            self.cluster.delete(obj)
            CHILD_PRUNES.labels(obj["kind"]).inc()
            self._writes[write_key] = _Write(None, _version(obj))
            pruned.append(f"{obj['kind']}/{obj['metadata']['name']}")
        return ApplyResult(applied, pruned, children, pending)


class ApplyRejected(RuntimeError):
    """The API server refused a child for a reason a retry will not change (quota, admission,
    validation); the message names the child and the server's reason."""

    def __init__(self, message: str, namespace_terminating: bool = False):
        super().__init__(message)
        #: Refused because the namespace is being deleted: nothing is wrong, everything goes.
        self.namespace_terminating = namespace_terminating


def _terminating(exc: ApiException) -> bool:
    try:
        causes = orjson.loads(exc.body or "")["details"]["causes"]
    except (ValueError, KeyError, TypeError):
        return False
    return any(c.get("reason") == "NamespaceTerminating" for c in causes)


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid and r.get("controller") for r in refs)
