"""The watch caches: every ModelTemplate, Model and ModelDeployment the gateway's own
ServiceAccount may list/watch.

Template reads by id and list pages are answered from here, never by listing the cluster per
request (the caller's right to read a namespace is checked separately, see :mod:`.access`).
Each template is converted to SGP JSON once, when it changes, so a page is a join of ready
bytes. Models and ModelDeployments are kept (:class:`Objects`, trimmed to what serving reads)
so an inference call finds its endpoint without a request to the API server.

Freshness: the watch delivers changes within milliseconds; creates and deletes made through
this gateway replica are applied to the cache at once (read-your-writes on one replica).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

from .. import GROUP, PLURAL, VERSION
from .kubeapi import KubeAPI, KubeError
from .sgp import order_key, template_to_sgp

__all__ = ["Entry", "Objects", "Store", "Watcher", "TEMPLATES_PATH", "trimmed"]

log = logging.getLogger("modeltemplate_operator.gateway")
TEMPLATES_PATH = f"/apis/{GROUP}/{VERSION}/{PLURAL}"


def collection(kind) -> str:
    """The cluster-wide collection of a kind of this API (what a watch cache lists)."""
    return f"/apis/{kind.group}/{kind.version}/{kind.plural}"


#: How long a template deleted through the gateway stays hidden from late watch events.
TOMBSTONE_SECONDS = 120.0


@dataclass(frozen=True)
class Entry:
    uid: str
    namespace: str
    name: str
    key: tuple[str, str]
    json: bytes = field(repr=False)
    #: The object as serving reads it (:func:`trimmed`).
    obj: dict = field(repr=False, default_factory=dict)


def trimmed(obj: dict) -> dict:
    """What the gateway reads of an object: names, versions, annotations, spec, conditions."""
    meta = obj.get("metadata") or {}
    keep = ("uid", "namespace", "name", "resourceVersion", "generation", "creationTimestamp")
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k != "kubectl.kubernetes.io/last-applied-configuration"
    }
    status = obj.get("status") or {}
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {k: meta[k] for k in keep if k in meta} | {"annotations": annotations},
        "spec": obj.get("spec") or {},
        "status": {k: status[k] for k in ("conditions", "observedGeneration") if k in status},
    }


def entry_of(obj: dict) -> Entry:
    meta = obj["metadata"]
    body = json.dumps(template_to_sgp(obj), separators=(",", ":")).encode()
    return Entry(meta["uid"], meta["namespace"], meta["name"], order_key(obj), body, trimmed(obj))


class Store:
    """Templates by id, pages in paging order (per namespace and overall)."""

    def __init__(self, clock=time.monotonic):
        self._by_uid: dict[str, Entry] = {}
        self._by_name: dict[tuple[str, str], str] = {}
        self._sorted: dict[str | None, list[Entry]] = {}
        self._tombstones: dict[str, float] = {}
        self._clock = clock

    def __len__(self) -> int:
        return len(self._by_uid)

    def get(self, uid: str) -> Entry | None:
        return self._by_uid.get(uid)

    def upsert(self, obj: dict, *, only_new: bool = False) -> Entry | None:
        uid = obj["metadata"]["uid"]
        if uid in self._tombstones or (only_new and uid in self._by_uid):
            return self._by_uid.get(uid)
        entry = entry_of(obj)
        old = self._by_uid.get(uid)
        if old != entry:
            self._by_uid[uid] = entry
            self._by_name[(entry.namespace, entry.name)] = uid
            if old is None or (old.json, old.key) != (entry.json, entry.key):
                self._sorted.clear()  # pages change; a status-only change keeps them
        return entry

    def remove(self, uid: str, *, tombstone: bool = False) -> None:
        if tombstone:
            now = self._clock()
            self._tombstones = {
                u: t for u, t in self._tombstones.items() if now - t < TOMBSTONE_SECONDS
            }
            self._tombstones[uid] = now
        else:
            self._tombstones.pop(uid, None)
        gone = self._by_uid.pop(uid, None)
        if gone is not None:
            self._sorted.clear()
            if self._by_name.get((gone.namespace, gone.name)) == uid:
                del self._by_name[(gone.namespace, gone.name)]

    def replace(self, objects: list[dict]) -> None:
        """A fresh list: exactly these templates (tombstones of listed ids are kept)."""
        uids = {o["metadata"]["uid"] for o in objects}
        self._tombstones = {u: t for u, t in self._tombstones.items() if u in uids}
        self._by_uid, self._by_name = {}, {}
        self._sorted.clear()
        for obj in objects:
            self.upsert(obj)

    def named(self, namespace: str, name: str) -> Entry | None:
        uid = self._by_name.get((namespace, name))
        return None if uid is None else self._by_uid.get(uid)

    def ordered(self, namespace: str | None) -> list[Entry]:
        """The templates of ``namespace`` (None: all) in paging order (kept until a change)."""
        ordered = self._sorted.get(namespace)
        if ordered is None:
            ordered = sorted(
                (e for e in self._by_uid.values() if namespace in (None, e.namespace)),
                key=lambda e: e.key,
            )
            self._sorted[namespace] = ordered
        return ordered


class Objects:
    """Objects of one kind by uid and by (namespace, name), trimmed (:func:`trimmed`)."""

    def __init__(self) -> None:
        self._by_uid: dict[str, dict] = {}
        self._by_name: dict[tuple[str, str], str] = {}

    def __len__(self) -> int:
        return len(self._by_uid)

    def get(self, uid: str) -> dict | None:
        return self._by_uid.get(uid)

    def named(self, namespace: str, name: str) -> dict | None:
        uid = self._by_name.get((namespace, name))
        return None if uid is None else self._by_uid.get(uid)

    def all(self) -> list[dict]:
        return list(self._by_uid.values())

    def upsert(self, obj: dict, **_: object) -> None:
        kept = trimmed(obj)
        meta = kept["metadata"]
        self._by_uid[meta["uid"]] = kept
        self._by_name[(meta["namespace"], meta["name"])] = meta["uid"]

    def remove(self, uid: str, **_: object) -> None:
        gone = self._by_uid.pop(uid, None)
        if gone is not None:
            key = (gone["metadata"]["namespace"], gone["metadata"]["name"])
            if self._by_name.get(key) == uid:
                del self._by_name[key]

    def replace(self, objects: list[dict]) -> None:
        self._by_uid, self._by_name = {}, {}
        for obj in objects:
            self.upsert(obj)


class Watcher:
    """List, then watch from the list's resourceVersion; list again when the watch expires.
    ``store`` is what it fills (a :class:`Store` or :class:`Objects`), ``path`` the kind's
    cluster-wide collection."""

    def __init__(
        self,
        kube: KubeAPI,
        store: Store | Objects,
        *,
        path: str = TEMPLATES_PATH,
        watch_seconds: int = 290,
    ):
        self.kube = kube
        self.store = store
        self.path = path
        self.synced = asyncio.Event()
        self.watch_seconds = watch_seconds
        #: When the cache last listed or saw an event (monotonic; 0: never).
        self.last_event = 0.0

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                version = await self._list()
                self.synced.set()
                backoff = 0.5
                while version:
                    version = await self._watch(version)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - log, back off, list again
                log.warning("watch cache: %s; listing again in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30)

    async def _list(self) -> str:
        items: list[dict] = []
        query = {"limit": "500"}
        while True:
            page = await self.kube.request("GET", self.path, token=None, query=query)
            items += page.get("items") or []
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                break
            query = {"limit": "500", "continue": cont}
        self.store.replace(items)
        self.last_event = time.monotonic()
        log.info("watch cache: %d %s listed", len(items), self.path.rsplit("/", 1)[-1])
        return page["metadata"]["resourceVersion"]

    async def _watch(self, version: str) -> str | None:
        """Apply events until the stream ends; the version to resume from (None: list)."""
        query = {
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_seconds),
        }
        try:
            async for event in self.kube.watch(self.path, query):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    return None  # 410 Gone and friends: list again
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                self.last_event = time.monotonic()
                if kind in ("ADDED", "MODIFIED"):
                    self.store.upsert(obj)
                elif kind == "DELETED":
                    self.store.remove(obj["metadata"]["uid"])
        except KubeError as exc:
            if exc.status == 410:
                return None
            raise
        return version
