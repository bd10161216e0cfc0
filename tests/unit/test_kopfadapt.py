"""The adaptations of Kopf: where they go in Kopf, and the toggle set's behaviour and cost."""

from __future__ import annotations

import asyncio
import inspect

import kopf
import pytest
from kopf._cogs.aiokits import aiotoggles
from kopf._cogs.clients import errors as kopf_errors
from kopf._cogs.structs.references import Resource
from support.eventually import until

from modeltemplate_operator import decoding
from modeltemplate_operator.controller import kopfadapt

pytestmark = pytest.mark.unit
KOPF_TOGGLE_SET = aiotoggles.ToggleSet


def test_kopf_still_has_the_places_adapted():
    """Kopf has no setting for any of them: an upgrade that moves these places fails here."""
    from kopf._cogs.clients import api, fetching, watching
    from kopf._core.engines import daemons
    from kopf._core.reactor import orchestration, running

    assert "api.get(" in inspect.getsource(fetching)
    assert "api.stream(" in inspect.getsource(watching)
    assert "json.loads(" in inspect.getsource(api.stream)
    assert "aiotoggles.ToggleSet(all)" in inspect.getsource(orchestration)
    assert "aiotoggles.ToggleSet(any)" in inspect.getsource(running)
    assert "stream = continuous_watch(" in inspect.getsource(watching.infinite_watch)
    assert "yield Bookmark.LISTED" in inspect.getsource(watching.continuous_watch)
    assert "operator_paused=operator_paused" in _call_of("daemons.daemon_killer(", running)
    kopf_watch, kopf_killer = watching.continuous_watch, daemons.daemon_killer
    try:
        kopfadapt.install()
        kopfadapt.install()  # idempotent
        assert api.get._decodes_safely
        assert api.json.loads is decoding.loads
        assert aiotoggles.ToggleSet is kopfadapt.CountingToggleSet
        assert watching.continuous_watch._adapted
        assert watching.continuous_watch is kopfadapt.adapted_watch(watching.continuous_watch)
        assert daemons.daemon_killer is kopfadapt.tracking_pauses(daemons.daemon_killer)
    finally:
        aiotoggles.ToggleSet = KOPF_TOGGLE_SET
        watching.continuous_watch, daemons.daemon_killer = kopf_watch, kopf_killer


def _call_of(call: str, module) -> str:
    """The text of the first call ``call...)`` in ``module``'s source."""
    source = inspect.getsource(module)
    start = source.index(call)
    return source[start : source.index(")))", start)]


def _gone_after(events: list, error: Exception):
    """A stand-in for Kopf's ``continuous_watch``: ``events``, then ``error``; its calls counted."""
    calls = []

    async def continuous_watch(**kwargs):
        calls.append(kwargs)
        for event in events:
            yield event
        raise error

    return continuous_watch, calls


def _not_found() -> Exception:
    return kopf_errors.APINotFoundError("404 page not found", status=404, headers={})


def _watch_twice(monkeypatch, continuous_watch) -> list:
    """Kopf's own ``infinite_watch`` loop, two (re)connections, over ``continuous_watch``."""
    from kopf._cogs.clients import watching

    monkeypatch.setattr(watching, "continuous_watch", continuous_watch)
    settings = kopf.OperatorSettings()
    settings.watching.reconnect_backoff = 0

    async def run():
        resource = Resource(group="keda.sh", version="v1alpha1", plural="scaledobjects")
        stream = watching.infinite_watch(
            settings=settings, resource=resource, namespace=None, _iterations=2
        )
        return [event async for event in stream]

    return asyncio.run(run())


def test_a_watch_of_a_resource_gone_ends_its_stream_not_the_operator(monkeypatch):
    """Reproduced first: the 404 of a watch whose CRD was deleted escapes Kopf's watch loop
    (and so ends the operator); adapted, the stream ends and the loop connects again."""
    monkeypatch.setattr(kopfadapt, "GONE_PAUSE", 0)
    kopf_watch, _ = _gone_after([{"type": "ADDED"}], _not_found())
    with pytest.raises(kopf_errors.APINotFoundError):
        _watch_twice(monkeypatch, kopf_watch)

    kopf_watch, calls = _gone_after([{"type": "ADDED"}], _not_found())
    events = _watch_twice(monkeypatch, kopfadapt.adapted_watch(kopf_watch))
    assert events == [{"type": "ADDED"}] * 2 and len(calls) == 2


def test_other_watch_errors_still_reach_kopf(monkeypatch):
    kopf_watch, _ = _gone_after(
        [], kopf_errors.APIForbiddenError("forbidden", status=403, headers={})
    )
    with pytest.raises(kopf_errors.APIForbiddenError):
        _watch_twice(monkeypatch, kopfadapt.adapted_watch(kopf_watch))


async def _script(toggle_set) -> list[bool]:
    """Every operation Kopf does on a set, its state after each."""
    states = []
    a = await toggle_set.make_toggle(name="a")
    states.append(toggle_set.is_on())
    b = await toggle_set.make_toggle(True, name="b")
    states.append(toggle_set.is_on())
    await a.turn_to(True)
    states.append(toggle_set.is_on())
    await a.turn_to(True)  # again: no change
    await b.turn_to(False)
    states.append(toggle_set.is_on())
    await toggle_set.drop_toggle(b)
    states.append(toggle_set.is_on())
    c = await toggle_set.make_toggle(name="c")
    await toggle_set.drop_toggles([a, c])
    states.append(toggle_set.is_on())
    await toggle_set.drop_toggle(c)  # not in the set any more
    states.append(toggle_set.is_on())
    return states


@pytest.mark.parametrize("fn", [all, any])
def test_same_states_as_kopfs_set(fn):
    assert asyncio.run(_script(kopfadapt.CountingToggleSet(fn))) == asyncio.run(
        _script(KOPF_TOGGLE_SET(fn))
    )


def test_a_toggles_own_waiters_are_woken():
    async def run():
        toggle_set = kopfadapt.CountingToggleSet(all)
        toggle = await toggle_set.make_toggle(name="one")
        waiter = asyncio.create_task(toggle.wait_for(True))
        await asyncio.sleep(0)
        await toggle.turn_to(True)
        await asyncio.wait_for(waiter, 1)
        await asyncio.wait_for(toggle_set.wait_for(True), 1)

    asyncio.run(run())


def _wakeups(toggle_set_class, objects: int) -> int:
    """Kopf's restart: a toggle per object, a worker per object waiting for the whole set, the
    toggles turned on one by one (each object indexed); how often a waiter's predicate ran."""

    async def run() -> int:
        toggle_set = toggle_set_class(all)
        blocker = await toggle_set.make_toggle(name="blocker")
        toggles = [await toggle_set.make_toggle(name=str(i)) for i in range(objects)]
        checks = 0
        is_on = toggle_set.is_on

        def counted() -> bool:
            nonlocal checks
            checks += 1
            return is_on()

        toggle_set.is_on = counted
        workers = [asyncio.create_task(toggle_set.wait_for(True)) for _ in range(objects)]
        await asyncio.sleep(0)
        for toggle in toggles:
            await toggle.turn_to(True)
            await asyncio.sleep(0)
        await blocker.turn_to(True)
        await asyncio.wait_for(asyncio.gather(*workers), 10)
        return checks

    return asyncio.run(run())


def test_a_restart_wakes_the_waiters_once_not_once_per_object():
    """200 objects: Kopf's set checks its state ~N² times; the counting set ~N (figures printed)."""
    n = 200
    kopf_checks = _wakeups(KOPF_TOGGLE_SET, n)
    counting_checks = _wakeups(kopfadapt.CountingToggleSet, n)
    print(f"{n} objects: predicate checks Kopf {kopf_checks}, counting {counting_checks}")
    assert counting_checks <= 5 * n  # its own bookkeeping included
    assert kopf_checks >= n * n


def test_the_pause_flag_reaches_the_activity_as_kopf_starts_its_daemon_killer():
    """``spawn_tasks`` builds the killer's coroutine with the flag: the activity has it then,
    before any startup handler runs."""
    from kopf._core.engines import daemons

    async def run():
        activity, kopf_activity = kopfadapt.Activity(), kopfadapt.ACTIVITY
        kopfadapt.ACTIVITY = activity
        try:
            paused = kopfadapt.CountingToggleSet(any)
            killer = kopfadapt.tracking_pauses(daemons.daemon_killer)
            coro = killer(settings=kopf.OperatorSettings(), memories=None, operator_paused=paused)
            assert activity.paused is paused and activity.is_active()
            conflict = await paused.make_toggle(True, name="a peer of higher priority")
            assert not activity.is_active()
            await conflict.turn_to(False)
            assert activity.is_active()
            coro.close()  # never started
        finally:
            kopfadapt.ACTIVITY = kopf_activity

    asyncio.run(run())


def test_after_a_pause_the_activity_waits_for_every_watch_the_pause_closed_to_list_again(
    monkeypatch,
):
    """Kopf's own ``infinite_watch`` and pause: a watch lists and streams; the pause closes it
    (stale); on resume the replica is not active until that watch has listed again."""
    from kopf._cogs.clients import watching

    activity = kopfadapt.Activity()
    monkeypatch.setattr(kopfadapt, "ACTIVITY", activity)
    monkeypatch.setattr(watching, "continuous_watch", kopfadapt.adapted_watch(_listing_watch))
    settings = kopf.OperatorSettings()
    settings.watching.reconnect_backoff = 0
    resource = Resource(group="", version="v1", plural="pods")

    async def run():
        paused = kopfadapt.CountingToggleSet(any)
        activity.paused = paused
        conflict = await paused.make_toggle(False, name="peering")
        lists = _LISTS.setdefault(resource, [])
        stream = watching.infinite_watch(
            settings=settings, resource=resource, namespace=None, operator_paused=paused
        )
        consumer = asyncio.create_task(_drain(stream))
        await until(lambda: len(lists) == 1)
        lists[0].set()  # the first listing is done
        await until(activity.is_active)

        await conflict.turn_to(True)  # peering pauses the replica: its watch closes
        await until(lambda: (resource, None) in activity.stale)
        waiter = asyncio.create_task(activity.wait())
        await conflict.turn_to(False)  # resumed: the watch lists again
        await until(lambda: len(lists) == 2)
        await asyncio.sleep(0.05)
        assert not waiter.done() and not activity.is_active()  # the caches are still stale
        lists[1].set()
        await asyncio.wait_for(waiter, 1)
        assert activity.is_active()
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)

    asyncio.run(run())


def test_a_watch_whose_crd_went_during_the_pause_leaves_nothing_to_wait_for(monkeypatch):
    """KEDA's CRD deleted while the replica was paused: its watch answers 404 after the resume
    and lists nothing again; the replica does not wait for it."""
    from kopf._cogs.clients import watching

    activity = kopfadapt.Activity()
    monkeypatch.setattr(kopfadapt, "ACTIVITY", activity)
    monkeypatch.setattr(kopfadapt, "GONE_PAUSE", 0)
    resource = Resource(group="keda.sh", version="v1alpha1", plural="scaledobjects")

    async def closed_by_the_pause(**_):
        yield watching.Bookmark.LISTED

    async def run():
        activity.paused = kopfadapt.CountingToggleSet(any)
        conflict = await activity.paused.make_toggle(True, name="peering")
        async for _ in kopfadapt.adapted_watch(closed_by_the_pause)(
            resource=resource, namespace=None
        ):
            pass
        await conflict.turn_to(False)
        assert not activity.is_active()  # stale until it lists again
        gone, _ = _gone_after([], _not_found())
        async for _ in kopfadapt.adapted_watch(gone)(resource=resource, namespace=None):
            pass
        assert activity.is_active()

    asyncio.run(run())


#: The listings of ``_listing_watch``: an event per call, set to let that listing finish.
_LISTS: dict = {}


async def _listing_watch(*, resource, operator_pause_waiter, **_):
    """A stand-in for Kopf's ``continuous_watch``: a listing (finished when the test says so),
    then a stream that ends when the operator pauses."""
    from kopf._cogs.clients import watching

    done = asyncio.Event()
    _LISTS[resource].append(done)
    await done.wait()
    yield {"type": None, "object": {"metadata": {"name": "p"}}}
    yield watching.Bookmark.LISTED
    await operator_pause_waiter


async def _drain(stream) -> None:
    async for _ in stream:
        pass


def _pod(name: str) -> dict:
    return {"metadata": {"namespace": "team-a", "name": name, "uid": f"uid-{name}", "labels": {}}}


def _scripted_watch(scripts: list[list]):
    """A stand-in for Kopf's ``continuous_watch``: its n-th (re)connection yields scripts[n]."""
    calls = iter(scripts)

    async def continuous_watch(**_):
        for event in next(calls):
            yield event

    return continuous_watch


def _watched(monkeypatch, scripts: list[list]) -> list:
    """Every event Kopf's own ``infinite_watch`` yields over ``scripts``, adapted."""
    from kopf._cogs.clients import watching

    monkeypatch.setattr(kopfadapt, "ACTIVITY", kopfadapt.Activity())
    monkeypatch.setattr(kopfadapt, "KNOWN", {})
    monkeypatch.setattr(
        watching, "continuous_watch", kopfadapt.adapted_watch(_scripted_watch(scripts))
    )
    settings = kopf.OperatorSettings()
    settings.watching.reconnect_backoff = 0

    async def run():
        pods = Resource(group="", version="v1", plural="pods", kind="Pod")
        stream = watching.infinite_watch(
            settings=settings, resource=pods, namespace="team-a", _iterations=len(scripts)
        )
        return [event async for event in stream]

    return asyncio.run(run())


def test_a_listing_delivers_the_deletions_it_reveals(monkeypatch):
    """Objects absent from a (re)listing went while the watch was closed: each gets a DELETED
    event, before the listing ends, with its last known identity; one whose deletion the watch
    saw gets no second one."""
    from kopf._cogs.clients.watching import Bookmark

    a, b, c = _pod("a"), _pod("b"), _pod("c")
    a["metadata"]["labels"] = {"app.kubernetes.io/instance": "llama"}
    listing = [{"type": None, "object": o} for o in (a, b, c)]
    events = _watched(
        monkeypatch,
        [
            [*listing, Bookmark.LISTED, {"type": "DELETED", "object": c}],
            [listing[0], Bookmark.LISTED],  # b went while the watch was closed
            [Bookmark.LISTED],  # then a
        ],
    )
    synthesized = [e for e in events if isinstance(e, dict) and e["type"] == "DELETED"][1:]
    assert synthesized == [
        {
            "type": "DELETED",
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"namespace": "team-a", "name": "b", "uid": "uid-b", "labels": {}},
            },
        },
        {
            "type": "DELETED",
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "namespace": "team-a",
                    "name": "a",
                    "uid": "uid-a",
                    "labels": {"app.kubernetes.io/instance": "llama"},
                },
            },
        },
    ]
    # Each comes before its listing's end, as part of it.
    assert (
        events.index(synthesized[0]) < [i for i, e in enumerate(events) if e is Bookmark.LISTED][1]
    )


def test_a_listing_cut_short_reveals_nothing(monkeypatch):
    """A listing that ended before its last page (a lost connection) proves no deletion."""
    from kopf._cogs.clients.watching import Bookmark

    a, b = _pod("a"), _pod("b")
    events = _watched(
        monkeypatch,
        [
            [{"type": None, "object": a}, {"type": None, "object": b}, Bookmark.LISTED],
            [{"type": None, "object": a}],  # the connection dropped mid-listing
            [{"type": None, "object": a}, {"type": None, "object": b}, Bookmark.LISTED],
        ],
    )
    assert not [e for e in events if isinstance(e, dict) and e["type"] == "DELETED"]


def test_a_watcher_stopped_for_good_leaves_nothing_behind(monkeypatch):
    """Kopf cancels the watcher of a resource whose CRD went: what its stream knew goes too."""
    from kopf._cogs.clients.watching import Bookmark

    monkeypatch.setattr(kopfadapt, "KNOWN", {})
    pods = Resource(group="", version="v1", plural="pods", kind="Pod")

    async def listed_then_streaming(**_):
        yield {"type": None, "object": _pod("a")}
        yield Bookmark.LISTED
        await asyncio.Event().wait()  # streaming, nothing happens
        yield {}

    async def run():
        stream = kopfadapt.adapted_watch(listed_then_streaming)(resource=pods, namespace=None)
        watcher = asyncio.create_task(_drain(stream))
        await until(lambda: kopfadapt.KNOWN.get((pods, None)))
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        assert (pods, None) not in kopfadapt.KNOWN

    asyncio.run(run())
