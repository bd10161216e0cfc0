"""The work queue coalesces events per template and never hands out one key twice at once."""

import asyncio

from modeltemplate_operator.workqueue import WorkQueue


def run(coro):
    return asyncio.run(coro)


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
        assert q._queue.empty()  # not handed out while active
        q.done(key)
        assert await q.get() == "a"
        q.done("a")
        assert len(q) == 0 and q._queue.empty()

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
