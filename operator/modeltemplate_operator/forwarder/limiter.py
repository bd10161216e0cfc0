"""``ConcurrencyLimiter``: at most ``limit`` holders at once; others wait in FIFO order for at
most ``wait`` seconds. ``ByteBudget``: at most ``limit`` bytes held at once across requests."""

from __future__ import annotations

import asyncio
from collections import deque


class ConcurrencyLimiter:
    def __init__(self, limit: int, wait: float) -> None:
        self.limit = limit
        self.wait = wait
        self.active = 0
        self._waiters: deque[asyncio.Future] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> bool:
        """True when a slot is held (call ``release`` later); False when the wait ran out."""
        if self.active < self.limit and not self._waiters:
            self.active += 1
            return True
        if self.wait <= 0:
            return False
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._waiters.append(fut)
        timer = loop.call_later(self.wait, self._expire, fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.result():
                # The slot was handed over just as we were cancelled: give it back.
                self.release()
            else:
                self._discard(fut)
            raise
        finally:
            timer.cancel()

    def release(self) -> None:
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(True)  # the slot passes straight to the next waiter
                return
        self.active -= 1

    def _expire(self, fut: asyncio.Future) -> None:
        if not fut.done():
            fut.set_result(False)
        self._discard(fut)

    def _discard(self, fut: asyncio.Future) -> None:
        try:
            self._waiters.remove(fut)
        except ValueError:
            pass


class ByteBudget:
    """Bytes held at once across all requests (request bodies), never above ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, n: int) -> bool:
        """Hold ``n`` more bytes if the budget allows (call ``give`` later); else False."""
        if self.held + n > self.limit:
            return False
        self.held += n
        return True

    def give(self, n: int) -> None:
        self.held -= n
