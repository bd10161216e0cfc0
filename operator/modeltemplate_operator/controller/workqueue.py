"""A deduplicating queue of template keys, as controllers keep them.

Watch events only say "this template may need work": a template that already waits is not
queued twice, and one that is being reconciled when another event arrives is reconciled once
more afterwards — so a burst of events (a template, its children, their status updates) costs
one or two reconciles instead of one each, and a template is never reconciled twice at once.
A key can also come back later (:meth:`WorkQueue.add_after`), as a reconcile that asks to be
retried does; of several pending returns of one key the earliest wins.

Keys come in two lanes. A key added with ``resync=True`` (an object seen for the first time by
this process that already looks converged: the initial listing of a restart) waits in the resync
lane, taken only when no other key waits; added again without it, it moves to the front lane.
So a restart over thousands of converged objects never holds back a new or changed one — as
controller-runtime's priority queue gives its initial-list events a low priority.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delays of a key's consecutive retries: ``first``, doubling, capped at ``cap`` seconds."""

    first: float
    cap: float

    def delay(self, failures: int) -> float:
        return min(self.cap, self.first * 2 ** max(0, failures - 1))


class WorkQueue:
    """``on_wait`` is told, for every key taken, how long it waited in the queue (seconds)."""

    def __init__(self, on_wait: Callable[[float], None] | None = None) -> None:
        self._on_wait = on_wait
        #: Waiting keys: since when, and whether they wait in the resync lane.
        self._waiting: dict[Hashable, tuple[float, bool]] = {}
        self._front: deque[Hashable] = deque()
        self._resync: deque[Hashable] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._active: set[Hashable] = set()
        self._again: set[Hashable] = set()
        self._later: dict[Hashable, asyncio.TimerHandle] = {}
        self._failures: dict[Hashable, int] = {}

    def add(self, key: Hashable, *, resync: bool = False) -> None:
        """Queue ``key``: in the front lane, or behind every other key with ``resync``. Queued
        now, it does not come back later as well (a pending return is dropped)."""
        pending = self._later.pop(key, None)
        if pending is not None:
            pending.cancel()
        if key in self._active:
            self._again.add(key)
            return
        waiting = self._waiting.get(key)
        if waiting is None:
            self._waiting[key] = (time.monotonic(), resync)
            (self._resync if resync else self._front).append(key)
            self._wake_one()
        elif waiting[1] and not resync:  # waits in the resync lane: to the front
            self._waiting[key] = (waiting[0], False)
            self._front.append(key)  # its resync entry is skipped when reached

    def _wake_one(self) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)
                return

    def _take(self) -> Hashable | None:
        for lane, resync in ((self._front, False), (self._resync, True)):
            while lane:
                key = lane.popleft()
                waiting = self._waiting.get(key)
                if waiting is not None and waiting[1] == resync:
                    del self._waiting[key]
                    if self._on_wait is not None:
                        self._on_wait(time.monotonic() - waiting[0])
                    return key
        return None

    async def get(self) -> Hashable:
        while (key := self._take()) is None:
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except asyncio.CancelledError:
                if getter.done() and not getter.cancelled():
                    self._wake_one()  # woken, then cancelled: pass the wake-up on
                raise
        self._active.add(key)
        return key

    def done(self, key: Hashable, again_after: float | None = None) -> None:
        """``key`` was handled; added meanwhile, it is queued again now (or ``again_after``
        seconds from now)."""
        self._active.discard(key)
        if key in self._again:
            self._again.discard(key)
            if again_after is None:
                self.add(key)
            else:
                self.add_after(key, again_after)

    def add_after(self, key: Hashable, delay: float) -> None:
        """Queue ``key`` in ``delay`` seconds (needs the running event loop)."""
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        pending = self._later.get(key)
        if pending is not None:
            if pending.when() <= when:
                return
            pending.cancel()
        self._later[key] = loop.call_at(when, self._return, key)

    def _return(self, key: Hashable) -> None:
        del self._later[key]
        self.add(key)

    def retry(self, key: Hashable, backoff: Backoff) -> float:
        """Queue ``key`` again after the backoff of its consecutive failures; the delay."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = backoff.delay(failures)
        self.add_after(key, delay)
        return delay

    def forget(self, key: Hashable) -> None:
        """``key`` succeeded (or is gone): reset its failures, drop a pending retry."""
        self._failures.pop(key, None)
        pending = self._later.pop(key, None)
        if pending is not None:
            pending.cancel()

    def waits_in_resync(self, key: Hashable) -> bool:
        """Is ``key`` waiting in the resync lane?"""
        waiting = self._waiting.get(key)
        return waiting is not None and waiting[1]

    def is_active(self, key: Hashable) -> bool:
        """Is ``key`` being handled (taken, not done yet)?"""
        return key in self._active

    @property
    def retries_pending(self) -> int:
        """Keys waiting for their backoff to end."""
        return len(self._later)

    def __len__(self) -> int:
        return len(self._waiting) + len(self._again)
