"""A deduplicating queue of template keys, as controllers keep them.

Watch events only say "this template may need work": a template that already waits is not
queued twice, and one that is being reconciled when another event arrives is reconciled once
more afterwards — so a burst of events (a template, its children, their status updates) costs
one or two reconciles instead of one each, and a template is never reconciled twice at once.
A key can also come back later (:meth:`WorkQueue.add_after`), as a reconcile that asks to be
retried does; of several pending returns of one key the earliest wins.
"""

from __future__ import annotations

import asyncio
import time
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
        self._queue: asyncio.Queue[tuple[Hashable, float]] = asyncio.Queue()
        self._on_wait = on_wait
        self._waiting: set[Hashable] = set()
        self._active: set[Hashable] = set()
        self._again: set[Hashable] = set()
        self._later: dict[Hashable, asyncio.TimerHandle] = {}
        self._failures: dict[Hashable, int] = {}

    def add(self, key: Hashable) -> None:
        if key in self._active:
            self._again.add(key)
        elif key not in self._waiting:
            self._waiting.add(key)
            self._queue.put_nowait((key, time.monotonic()))

    async def get(self) -> Hashable:
        key, queued = await self._queue.get()
        if self._on_wait is not None:
            self._on_wait(time.monotonic() - queued)
        self._waiting.discard(key)
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

    def is_active(self, key: Hashable) -> bool:
        """Is ``key`` being handled (taken, not done yet)?"""
        return key in self._active

    @property
    def retries_pending(self) -> int:
        """Keys waiting for their backoff to end."""
        return len(self._later)

    def __len__(self) -> int:
        return len(self._waiting) + len(self._again)
