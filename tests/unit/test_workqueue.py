"""The work queue coalesces events per template and never hands out one key twice at once."""

import asyncio

from modeltemplate_operator.controller.workqueue import WorkQueue


def run(coro):
    return asyncio.run(coro)


async def nothing_to_take(q: WorkQueue) -> bool:
    try:
        await asyncio.wait_for(q.get(), 0.01)
    except TimeoutError:
        return True
    return False


def test_a_waiting_key_is_queued_once():
    async def scenario():
        q = WorkQueue()
        for key in ["a", "b", "a", "a", "b"]:
            q.add(key)
        assert len(q) == 2
        assert [await q.get(), await q.get()] == ["a", "b"]

    run(scenario())


def test_a_key_added_while_active_comes_back_once_after_done():
    async def scenario():
        q = WorkQueue()
        q.add("a")
        key = await q.get()
        q.add("a")
        q.add("a")
        assert await nothing_to_take(q)  # not handed out while active
        q.done(key)
        assert await q.get() == "a"
        q.done("a")
        assert len(q) == 0 and await nothing_to_take(q)

    run(scenario())


def test_workers_never_hold_the_same_key_together():
    async def scenario():
        q = WorkQueue()
        held, overlaps, runs = set(), [], []

        async def worker():
            while True:
                key = await q.get()
                if key in held:
                    overlaps.append(key)
                held.add(key)
                runs.append(key)
                await asyncio.sleep(0.01)
                held.discard(key)
                q.done(key)

        workers = [asyncio.create_task(worker()) for _ in range(4)]
        for _ in range(5):
            for key in "abc":
                q.add(key)
            await asyncio.sleep(0.003)
        await asyncio.sleep(0.1)
        for w in workers:
            w.cancel()
        assert overlaps == []
        assert set(runs) == {"a", "b", "c"} and len(runs) < 15  # coalesced

    run(scenario())


def test_the_wait_of_every_key_taken_is_reported_and_pending_retries_counted():
    async def scenario():
        waits = []
        q = WorkQueue(on_wait=waits.append)
        q.add("a")
        await asyncio.sleep(0.02)
        assert await q.get() == "a"
        assert len(waits) == 1 and waits[0] >= 0.02
        q.done("a")
        q.add_after("b", 10)
        assert q.retries_pending == 1
        q.forget("b")
        assert q.retries_pending == 0

    run(scenario())


def test_a_key_added_while_active_can_come_back_after_a_delay():
    async def scenario():
        q = WorkQueue()
        q.add("a")
        await q.get()
        q.add("a")
        q.done("a", again_after=0.05)
        assert len(q) == 0 and q.retries_pending == 1
        assert await asyncio.wait_for(q.get(), 1) == "a"

    run(scenario())


def test_a_key_is_active_from_get_to_done():
    async def scenario():
        q = WorkQueue()
        q.add("a")
        assert not q.is_active("a")
        await q.get()
        assert q.is_active("a")
        q.done("a")
        assert not q.is_active("a")

    run(scenario())


def test_resync_keys_wait_behind_every_other_key():
    async def scenario():
        q = WorkQueue()
        for key in ["old-1", "old-2", "old-3"]:
            q.add(key, resync=True)
        q.add("new")
        q.add("old-2")  # an event of its own: to the front lane
        q.add("old-3", resync=True)  # already waiting: stays where it is
        assert len(q) == 4
        assert [await q.get() for _ in range(4)] == ["new", "old-2", "old-1", "old-3"]
        assert await nothing_to_take(q)

    run(scenario())


def test_a_worker_waiting_for_a_key_is_woken_by_either_lane():
    async def scenario():
        q = WorkQueue()
        waiting = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        q.add("old", resync=True)
        assert await asyncio.wait_for(waiting, 1) == "old"
        cancelled = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.sleep(0)
        second = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        q.add("next")
        assert await asyncio.wait_for(second, 1) == "next"

    run(scenario())
