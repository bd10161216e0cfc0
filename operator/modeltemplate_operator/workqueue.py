"""A deduplicating queue of template keys, as controllers keep them.

Watch events only say "this template may need work": a template that already waits is not
queued twice, and one that is being reconciled when another event arrives is reconciled once
more afterwards — so a burst of events (a template, its children, their status updates) costs
one or two reconciles instead of one each, and a template is never reconciled twice at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable


class WorkQueue:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self._waiting: set[Hashable] = set()
        self._active: set[Hashable] = set()
        self._again: set[Hashable] = set()

    def add(self, key: Hashable) -> None:
        if key in self._active:
            self._again.add(key)
        elif key not in self._waiting:
            self._waiting.add(key)
            self._queue.put_nowait(key)

    async def get(self) -> Hashable:
        key = await self._queue.get()
        self._waiting.discard(key)
        self._active.add(key)
        return key

    def done(self, key: Hashable) -> None:
        self._active.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key)

    def __len__(self) -> int:
        return len(self._waiting) + len(self._again)
