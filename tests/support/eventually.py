"""Waiting, inside an event loop, for what a background task will have done."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(predicate: Callable[[], object], timeout: float = 2.0) -> None:
    """Return once ``predicate()`` is true; ``TimeoutError`` after ``timeout`` seconds."""

    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)
