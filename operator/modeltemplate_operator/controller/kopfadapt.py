"""The five places where Kopf's own machinery was the limit, adapted at their root.

Kopf stays the operator's framework (startup, peering, probes, watches, indices, handlers); it
has no setting for any of these, so :func:`install` replaces one small piece of each, before
the operator starts. ``tests/unit/test_kopfadapt.py`` holds Kopf to the places replaced, so a
Kopf upgrade that moves them fails a test rather than an operator.

1. **The JSON decoder of lists and watch streams** (``kopf._cogs.clients.api``): Kopf decodes
   with ``json.loads`` and a decoding error ends the operator, so one object nested deeper than
   Python's recursion limit (a Model's ``creationParameters``, accepted by the API server up to
   ~10,000 levels) stopped every namespace's work at every start. Now :func:`.decoding.loads`:
   orjson for ordinary objects, and values past :data:`~.limits.MAX_DOCUMENT_DEPTH` cut, so the
   object reaches its reconcile, which names the field.

2. **The toggle set that holds every object back until the indices are filled**
   (``kopf._cogs.aiokits.aiotoggles.ToggleSet``): at start, each listed object gets a toggle in
   one set, and its worker waits until all of them are on. Kopf's set recomputes ``all()`` over
   every toggle and wakes every waiter at each change, so a restart over N objects costs O(N²)
   wake-ups, each O(N): 64 % of the CPU of a restart over 3,000 templates. :class:`CountingToggleSet`
   counts the toggles that are on (its state is O(1)) and wakes the set's waiters only when its
   state changes; a toggle's own waiters are woken by the toggle.

3. **A watch of a resource whose CRD was just deleted** (``kopf._cogs.clients.watching``):
   Kopf's resource observer stops the watcher of a resource when it sees its CRD go, but the
   watcher's own next list or watch request can get there first; its 404 then ends the whole
   operator (``Multidimensional multitasker has failed: 404 page not found``; seen when KEDA's
   CRD was deleted). :func:`adapted_watch` ends that one stream instead, after a pause: the
   observer stops the watcher, or, if the CRD is back, Kopf's loop watches again.

4. **The pause of a standby replica** (``kopf._core.engines.daemons.daemon_killer``, the one
   task Kopf hands its ``operator_paused`` flag to besides its watchers): when peering pauses a
   replica, Kopf closes its watches and stops its daemons, but the runtime's workers are not
   Kopf's: a paused replica went on reconciling what its queue held (retries after a refusal,
   settling owners), from caches no longer watched, beside the replica that took over.
   :data:`ACTIVITY` takes the flag from there, and learns from the watch streams which caches
   the pause left behind; the workers take no key until the replica is active and every one of
   those has listed again.

5. **Deletions missed while a watch was closed** (the same ``continuous_watch``): each
   (re)connection lists anew, and an object deleted meanwhile is simply absent from the list —
   Kopf never hears of its deletion, so it stays in Kopf's indices and per-object memories for
   the life of the process, and no handler learns it went (client-go's informers deliver these
   as ``DeletedFinalStateUnknown``). That happens after every pause and every ``410 Gone``.
   :func:`adapted_watch` remembers each stream's objects (uid, namespace, name, labels) and,
   when a listing ends, delivers a ``DELETED`` event for each one the listing no longer has.

Besides, one logging setting Kopf lacks: :class:`PerEventAtDebug` moves the lines Kopf writes
at INFO for every watch event of every object ("Handler 'modeltemplates_event' succeeded.",
"Indexer '...' succeeded.": two lines per event, thousands a minute on a busy cluster) to
DEBUG, where ``--log-level=debug`` (``--verbose``) shows them. Activities (startup, login) and
every other line keep their level.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import types
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from kopf._cogs.aiokits import aiotoggles
from kopf._cogs.clients import errors as kopf_errors
from kopf._cogs.clients import watching

from .. import decoding


class CountingToggleSet(aiotoggles.ToggleSet):
    """Kopf's ToggleSet for ``all`` and ``any``, with its state kept as a count."""

    def __init__(self, fn: Callable[[Iterable[bool]], bool]) -> None:
        super().__init__(fn)
        self._on = 0

    def is_on(self) -> bool:
        if self._fn is all:
            return self._on == len(self._toggles)
        if self._fn is any:
            return self._on > 0
        return super().is_on()

    async def make_toggle(self, __val: bool = False, *, name: str | None = None):
        toggle = _CountedToggle(self, __val, name=name)
        async with self._condition:
            before = self.is_on()
            self._toggles.add(toggle)
            self._on += toggle.is_on()
            self._notify_if_changed(before)
        return toggle

    async def drop_toggle(self, toggle: aiotoggles.Toggle) -> None:
        await self.drop_toggles([toggle])

    async def drop_toggles(self, toggles: Iterable[aiotoggles.Toggle]) -> None:
        async with self._condition:
            before = self.is_on()
            for toggle in toggles:
                if toggle in self._toggles:
                    self._toggles.discard(toggle)
                    self._on -= toggle.is_on()
            self._notify_if_changed(before)

    def _notify_if_changed(self, before: bool) -> None:
        if self.is_on() != before:
            self._condition.notify_all()


class _CountedToggle(aiotoggles.Toggle):
    """A toggle of a :class:`CountingToggleSet`: its own condition for its own waiters, and
    the set's count kept up to date when it turns."""

    def __init__(self, owner: CountingToggleSet, state: bool, *, name: str | None) -> None:
        super().__init__(state, name=name)  # a condition of its own
        self._owner = owner

    async def turn_to(self, __state: bool) -> None:
        owner, state = self._owner, bool(__state)
        async with owner._condition:
            before = owner.is_on()
            if state != self._state and self in owner._toggles:
                owner._on += 1 if state else -1
            self._state = state
            owner._notify_if_changed(before)
        async with self._condition:
            self._condition.notify_all()


#: Seconds a watch that found its resource gone (404) waits before Kopf's loop tries again.
GONE_PAUSE = 1.0
log = logging.getLogger(__name__)


class Activity:
    """Whether this replica may act: Kopf has not paused it (peering), and every watch the
    pause closed has listed again since, so the caches are as fresh as the new leader's.

    Without Kopf's flag (before the operator starts, or in tests) it is always active.
    """

    def __init__(self) -> None:
        self.paused: aiotoggles.ToggleSet | None = None
        #: Watch streams, ``(resource, namespace)``, the pause ended, not listed again yet.
        self.stale: set[Any] = set()
        self._fresh = asyncio.Event()
        self._fresh.set()

    def is_active(self) -> bool:
        return not self._is_paused() and not self.stale

    def _is_paused(self) -> bool:
        return self.paused is not None and self.paused.is_on()

    async def wait(self) -> None:
        """Return once the replica is active (at once when it is)."""
        while not self.is_active():
            if self._is_paused():
                await self.paused.wait_for(False)  # type: ignore[union-attr]
            else:
                await self._fresh.wait()

    def stream_ended(self, stream: Any) -> None:
        """A watch ``stream`` ended by itself: by a pause, or to reconnect."""
        if self._is_paused():
            self.stale.add(stream)
            self._fresh.clear()

    def listed(self, stream: Any) -> None:
        """``stream`` listed afresh (or is no longer watched: nothing of it to wait for)."""
        self.stale.discard(stream)
        if not self.stale and not self._fresh.is_set():
            log.info("caches listed again after the pause: resuming the work queue")
            self._fresh.set()


#: The operator's one :class:`Activity` (Kopf runs one operator per process).
ACTIVITY = Activity()


def tracking_pauses(daemon_killer: Callable[..., Any]) -> Callable[..., Any]:
    """Kopf's ``daemon_killer``, which also hands Kopf's pause flag to :data:`ACTIVITY`."""
    if getattr(daemon_killer, "_tracks_pauses", False):
        return daemon_killer

    def killer(*, operator_paused: aiotoggles.ToggleSet, **kwargs: Any) -> Any:
        ACTIVITY.paused = operator_paused
        return daemon_killer(operator_paused=operator_paused, **kwargs)

    killer._tracks_pauses = True  # type: ignore[attr-defined]
    return killer


#: Per watch stream ``(resource, namespace)``: its objects, uid -> (namespace, name, labels).
KNOWN: dict[Any, dict[str, tuple[str | None, str | None, Any]]] = {}


def _gone(resource: Any, uid: str, identity: tuple[str | None, str | None, Any]) -> dict:
    """The ``DELETED`` event of an object a listing no longer has: its last known identity."""
    namespace, name, labels = identity
    group_version = f"{resource.group}/{resource.version}" if resource.group else resource.version
    metadata = {"namespace": namespace, "name": name, "uid": uid, "labels": labels or {}}
    obj = {"apiVersion": group_version, "kind": resource.kind, "metadata": metadata}
    return {"type": "DELETED", "object": obj}


def adapted_watch(continuous_watch: Callable[..., AsyncIterator]) -> Callable[..., AsyncIterator]:
    """Kopf's ``continuous_watch``, whose stream ends (after :data:`GONE_PAUSE`) rather than
    fails when the API server no longer serves the resource, which delivers the deletions a
    listing reveals (objects it no longer has), and which tells :data:`ACTIVITY` when its
    listing is done and when it ends."""
    if getattr(continuous_watch, "_adapted", False):
        return continuous_watch

    async def watch(*, resource, namespace, **kwargs) -> AsyncIterator:
        stream = (resource, namespace)
        known = KNOWN.setdefault(stream, {})
        listed: set[str] | None = set()  # every (re)connection starts with a listing
        ended = False
        try:
            async for event in continuous_watch(resource=resource, namespace=namespace, **kwargs):
                if event is watching.Bookmark.LISTED:
                    for deleted in _deleted_meanwhile(resource, known, listed):
                        yield deleted
                    listed = None
                    ACTIVITY.listed(stream)
                elif isinstance(event, dict):
                    _remember(known, listed, event)
                yield event
            ended = True
        except kopf_errors.APINotFoundError:
            log.debug("%s is no longer served (its CRD deleted?); watching again later", resource)
        except (asyncio.CancelledError, GeneratorExit):  # its watcher stopped for good
            KNOWN.pop(stream, None)
            raise
        finally:
            if ended:
                ACTIVITY.stream_ended(stream)
            else:  # gone (404), stopped or failed: nothing of it to wait for
                ACTIVITY.listed(stream)
        if not ended:  # the 404: Kopf's loop connects again after a pause
            await asyncio.sleep(GONE_PAUSE)

    watch._adapted = True  # type: ignore[attr-defined]
    return watch


def _deleted_meanwhile(resource: Any, known: dict, listed: set[str] | None) -> list[dict]:
    """The ``DELETED`` events of the objects ``known`` that a finished listing no longer has
    (none when no listing was in progress); they are forgotten."""
    gone = [uid for uid in known if uid not in listed] if listed is not None else []
    if gone:
        log.info("%s: %d deleted while the watch was closed", resource, len(gone))
    return [_gone(resource, uid, known.pop(uid)) for uid in gone]


def _shared(value: Any) -> Any:
    """One copy of a string many objects carry (a namespace, a template's name on each child)."""
    return sys.intern(value) if isinstance(value, str) else value


def _labels(metadata: dict) -> dict | None:
    labels = metadata.get("labels")
    return {k: _shared(v) for k, v in labels.items()} if isinstance(labels, dict) else None


def _remember(known: dict, listed: set[str] | None, event: dict) -> None:
    """Keep ``known`` (and the listing in progress, ``listed``) up to date with ``event``."""
    metadata = (event.get("object") or {}).get("metadata") or {}
    uid = metadata.get("uid")
    if not uid:
        return  # a BOOKMARK
    if event.get("type") == "DELETED":
        known.pop(uid, None)
        return
    known[uid] = (
        _shared(metadata.get("namespace")),
        _shared(metadata.get("name")),
        _labels(metadata),
    )
    if listed is not None:
        listed.add(uid)


def install() -> None:
    """The adaptations; idempotent, called once before ``kopf.operator`` runs."""
    from kopf._cogs.clients import api
    from kopf._core.engines import daemons

    aiotoggles.ToggleSet = CountingToggleSet  # looked up when the operator builds its sets
    # ``infinite_watch`` looks ``continuous_watch`` up in its module at every (re)connection.
    watching.continuous_watch = adapted_watch(watching.continuous_watch)
    # ``spawn_tasks`` looks ``daemon_killer`` up in its module when it starts the operator.
    daemons.daemon_killer = tracking_pauses(daemons.daemon_killer)
    if getattr(api.get, "_decodes_safely", False):
        return

    async def get(url: str, *, settings, payload=None, headers=None, timeout=None, logger):
        response = await api.request(
            method="get",
            url=url,
            payload=payload,
            headers=headers,
            timeout=timeout,
            settings=settings,
            logger=logger,
        )
        async with response:
            data = await response.read()
        return decoding.loads(data, schema_bounded=decoding.schema_bounds_depth(url))

    get._decodes_safely = True  # type: ignore[attr-defined]
    api.get = get
    # The watch lines: ``stream`` calls ``json.loads(line.decode('utf-8'))``.
    api.json = types.SimpleNamespace(loads=decoding.loads, dumps=json.dumps)


#: Kopf's line for a handler or indexer that ran (``kopf._core.actions.execution``: ``f"{handler}
#: succeeded."``, the handler's ``str`` naming its kind and id).
PER_EVENT = re.compile(r"^(Handler|Indexer) '[^']*' succeeded\.$")


class PerEventAtDebug(logging.Filter):
    """On Kopf's per-object logger: :data:`PER_EVENT` lines become DEBUG records (shown only
    where the logger is enabled for DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not PER_EVENT.match(str(record.msg)):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def per_event_logs_at_debug() -> None:
    """Install :class:`PerEventAtDebug` on ``kopf.objects``; idempotent."""
    logger = logging.getLogger("kopf.objects")
    if not any(isinstance(f, PerEventAtDebug) for f in logger.filters):
        logger.addFilter(PerEventAtDebug())
