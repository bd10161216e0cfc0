"""The runtime's decisions from the watch caches, table-driven: what a reconcile reads besides
the owner (its related owners), who looks again after a change (its dependents), and what
follows a reconcile (its key back after a backoff, or when its children settle, or not).

The caches are Kopf indices (plain mappings here, as Kopf hands them to the handlers), the
reconciler a scripted stand-in; the runtime runs without workers, each key reconciled by
``Runtime.process`` as a worker would.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from support.eventually import until
from support.fake_cluster import api_error

from modeltemplate_operator.api import kinds
from modeltemplate_operator.controller.reconciler import REFUSED, SETTLE, Outcome
from modeltemplate_operator.controller.runtime import Runtime, Step, index_name, refs_index_name

pytestmark = pytest.mark.unit
NS = "team-a"


def owner(kind: kinds.OwnerKind, name: str, status=None, **spec) -> dict:
    return {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": {"name": name, "namespace": NS, "generation": 1, "uid": name},
        "spec": spec,
        "status": status or {},
    }


def waiting(name: str, template: str) -> dict:
    status = {
        "conditions": [{"type": "UpToDate", "status": "False", "reason": "WaitingForRollout"}]
    }
    return owner(kinds.MODEL, name, status, templateRef={"name": template})


def indices_over(*bodies: dict) -> dict[str, dict]:
    """Kopf's indices holding ``bodies`` (and no children)."""
    indices: dict[str, dict] = {index_name(k): {} for k in (*kinds.OWNERS, *kinds.WATCHED)}
    for k in kinds.OWNERS:
        indices[refs_index_name(k)] = {}
    for body in bodies:
        kind = kinds.OWNER_BY_KIND[body["kind"]]
        key = (kind.kind, NS, body["metadata"]["name"])
        indices[index_name(kind)][key] = [body]
        for ref in kind.refs:
            if ref.name_in(body):
                named = (ref.kind, NS, ref.name_in(body))
                indices[refs_index_name(kind)].setdefault(named, []).append(key[2])
    return indices


def runtime_over(*bodies: dict, reconciler: object | None = None) -> Runtime:
    """A runtime without workers whose caches hold ``bodies``."""
    return Runtime(reconciler or SimpleNamespace(), workers=0, indices=indices_over(*bodies))


T = kinds.MODEL_TEMPLATE.kind
M = kinds.MODEL.kind
F = kinds.FINE_TUNING_JOB.kind
CACHE = (
    owner(kinds.MODEL_TEMPLATE, "vllm"),
    owner(kinds.MODEL, "a", templateRef={"name": "vllm"}),
    waiting("b", "vllm"),
    owner(kinds.MODEL, "c", templateRef={"name": "other"}),
    owner(kinds.FINE_TUNING_JOB, "ft-of-template", templateRef={"name": "vllm"}),
    owner(kinds.FINE_TUNING_JOB, "ft-of-model", modelRef={"name": "a"}),
    owner(kinds.MODEL_DEPLOYMENT, "a-large", modelRef={"name": "a"}),
)
D = kinds.MODEL_DEPLOYMENT.kind


@pytest.mark.parametrize(
    "key, status_only, expected",
    [
        # a template's change: its models and fine-tuning jobs, and those reading it through
        # a model (a deployment, a fine-tuning job of a model)
        (
            (T, NS, "vllm"),
            False,
            {
                (M, NS, "a"),
                (M, NS, "b"),
                (F, NS, "ft-of-template"),
                (F, NS, "ft-of-model"),
                (D, NS, "a-large"),
            },
        ),
        # its own status written: nobody reads it
        ((T, NS, "vllm"), True, set()),
        # a model's change: its template (counts it), a waiting sibling, the jobs and
        # deployments naming it
        (
            (M, NS, "a"),
            False,
            {(T, NS, "vllm"), (M, NS, "b"), (F, NS, "ft-of-model"), (D, NS, "a-large")},
        ),
        # a deployment's change: nobody reads it
        ((D, NS, "a-large"), False, set()),
        ((M, NS, "a"), True, {(T, NS, "vllm"), (M, NS, "b")}),
        # a waiting model wakes its template, not itself
        ((M, NS, "b"), True, {(T, NS, "vllm")}),
        # a model of a template that does not exist: the name is still woken (it may appear)
        ((M, NS, "c"), True, {(T, NS, "other")}),
        # a fine-tuning job: its template does not count it
        ((F, NS, "ft-of-template"), False, set()),
    ],
)
def test_dependents(key, status_only, expected):
    runtime = runtime_over(*CACHE)
    body = runtime._cached_owner(key)
    assert set(runtime.dependents(key, body, status_only=status_only)) == expected


def test_related_of_a_template_counts_its_models_only():
    runtime = runtime_over(*CACHE)
    key = (T, NS, "vllm")
    related = runtime.related(key, runtime._cached_owner(key))
    assert {m["metadata"]["name"] for m in related.referrers[M]} == {"a", "b"}
    assert {j["metadata"]["name"] for j in related.referrers[F]} == {"ft-of-template"}
    assert related.refs == {} and related.siblings == []


def test_related_of_a_model_names_its_template_and_family():
    runtime = runtime_over(*CACHE)
    key = (M, NS, "a")
    related = runtime.related(key, runtime._cached_owner(key))
    assert related.refs[T]["metadata"]["name"] == "vllm"
    assert {m["metadata"]["name"] for m in related.siblings} == {"a", "b"}


@pytest.mark.parametrize(
    "job, template, model",
    [
        ("ft-of-template", "vllm", None),
        ("ft-of-model", "vllm", "a"),  # the model's template, followed through the model
    ],
)
def test_related_of_a_fine_tuning_job_follows_references(job, template, model):
    runtime = runtime_over(*CACHE)
    key = (F, NS, job)
    related = runtime.related(key, runtime._cached_owner(key))
    assert (related.refs[T] or {}).get("metadata", {}).get("name") == template
    assert (related.refs.get(M) or {}).get("metadata", {}).get("name") == model


def test_a_missing_template_is_none_not_absent():
    runtime = runtime_over(owner(kinds.MODEL, "lonely", templateRef={"name": "gone"}))
    key = (M, NS, "lonely")
    related = runtime.related(key, runtime._cached_owner(key))
    assert related.refs == {T: None}


def test_related_of_a_deployment_reaches_the_template_through_its_model():
    runtime = runtime_over(*CACHE)
    key = (D, NS, "a-large")
    related = runtime.related(key, runtime._cached_owner(key))
    assert related.refs[M]["metadata"]["name"] == "a"
    assert related.refs[T]["metadata"]["name"] == "vllm"
    assert related.siblings == []


# -- after a reconcile: when the key comes back, and who is woken --------------------------------
class Scripted:
    """A reconciler answering each reconcile with the next of ``answers`` (an Outcome, None, or
    an exception it raises)."""

    keda_installed = False
    on_status_write = None

    def __init__(self, answers: list) -> None:
        self.answers = list(answers)
        self.reconciled: list[tuple[str, str, str]] = []

    def reconcile_owner(self, body, related):
        self.reconciled.append((body["kind"], NS, body["metadata"]["name"]))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def forget(self, body) -> None:
        pass


def written(**kw) -> Outcome:
    return Outcome(None, status_written=True, **kw)


OK = Outcome(None, status_written=False)
SETTLING = Outcome(None, False, retry=SETTLE, settling=True)


@pytest.mark.parametrize(
    "key, answers, steps",
    [
        ((T, NS, "vllm"), [None], [Step("ok")]),
        ((T, NS, "vllm"), [OK], [Step("ok")]),
        # refused children: the long backoff, doubling; a success starts it again
        (
            (T, NS, "vllm"),
            [Outcome(None, True, retry=REFUSED)] * 2 + [OK, Outcome(None, True, retry=REFUSED)],
            [Step("retry", 10.0), Step("retry", 20.0), Step("ok"), Step("retry", 10.0)],
        ),
        # a failed call (transient): at once, on the short backoff
        (
            (M, NS, "a"),
            [api_error(503), api_error(429), OK],
            [Step("retry", 1.0), Step("retry", 2.0), Step("ok")],
        ),
        # a failure no retry heals: logged, not retried (the next event brings it back)
        ((M, NS, "a"), [api_error(403), ValueError("bug")], [Step("error"), Step("error")]),
        ((T, NS, "vllm"), [SETTLING], [Step("settling", SETTLE.first)]),
        # a model's status changed: its template counts it (within the recount window), a
        # sibling waits for its turn (at once)
        ((M, NS, "a"), [written()], [Step("ok", None, ((M, NS, "b"),), ((T, NS, "vllm"),))]),
        ((M, NS, "c"), [written()], [Step("ok", None, (), ((T, NS, "other"),))]),
        # nobody reads a template's status
        ((T, NS, "vllm"), [written()], [Step("ok")]),
        ((T, NS, "gone"), [], [Step("gone")]),
    ],
    ids=[
        "deleting",
        "converged",
        "refused",
        "transient",
        "terminal",
        "settling",
        "model status woke its template and a waiting sibling",
        "model of a missing template",
        "template status",
        "gone from the cache",
    ],
)
def test_what_follows_a_reconcile(key, answers, steps):
    reconciler = Scripted(answers)
    runtime = runtime_over(*CACHE, reconciler=reconciler)

    async def run() -> list[Step]:
        return [await runtime.process(key) for _ in steps]

    assert asyncio.run(run()) == steps
    assert reconciler.answers == []  # each answer was asked for
    last = steps[-1]
    assert runtime.queue.retries_pending == (last.again_in is not None) + len(last.recounting)
    assert len(runtime.queue) == len(last.woken)


def test_a_reconcile_is_given_its_related_owners_from_the_registry():
    reconciler = Scripted([OK])
    runtime = runtime_over(*CACHE, reconciler=reconciler)
    calls = []
    reconciler.reconcile_owner = lambda body, related: calls.append(related) or OK
    asyncio.run(runtime.process((D, NS, "a-large")))
    [related] = calls
    assert related.refs[M]["metadata"]["name"] == "a"
    assert related.refs[T]["metadata"]["name"] == "vllm"


def converged(body: dict) -> dict:
    return {**body, "status": {"observedGeneration": body["metadata"]["generation"]}}


def test_a_restart_listing_waits_behind_new_and_changed_owners():
    """First sight of owners that look converged (a restart's initial listing, the template's
    models with it) goes to the resync lane; a new owner, or a listed one that changed, is
    taken first."""

    async def scenario():
        listed = [converged(owner(kinds.MODEL_TEMPLATE, n)) for n in ("old-1", "old-2")]
        model = converged(owner(kinds.MODEL, "m", templateRef={"name": "old-1"}))
        new = owner(kinds.MODEL_TEMPLATE, "new")  # no status yet
        indices = indices_over(*listed, model, new)
        rt = runtime_over(*listed, model, new)
        added = {"type": None}
        for body in [*listed, model, new]:
            rt.owner_event(kinds.OWNER_BY_KIND[body["kind"]], added, body, indices)
        changed = {**listed[1], "metadata": {**listed[1]["metadata"], "generation": 2}}
        rt.owner_event(kinds.MODEL_TEMPLATE, {"type": "MODIFIED"}, changed, indices)
        order = [await rt.queue.get() for _ in range(4)]
        assert order == [(T, NS, "new"), (T, NS, "old-2"), (T, NS, "old-1"), (M, NS, "m")]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "observed_generation, queued_now", [(None, False), (1, False), (2, True), (3, True)]
)
def test_a_settling_owner_comes_back_at_once_when_its_deployment_caught_up(
    observed_generation, queued_now
):
    """Children settling: their events are gathered for ``SETTLE_WINDOW``, unless the
    Deployment's controller has seen the last write (then nothing more is coming that the
    status waits for: a rollout step is not held back by the window)."""

    async def scenario():
        runtime = runtime_over(*CACHE, reconciler=Scripted([SETTLING]))
        key = (T, NS, "vllm")
        await runtime.process(key)  # settling: back in SETTLE.first, unless an event comes
        deployment = {
            "metadata": {"name": "vllm", "namespace": NS, "generation": 2},
            "status": {"observedGeneration": observed_generation} if observed_generation else {},
        }
        runtime.event(kinds.DEPLOYMENT, {"type": "MODIFIED"}, deployment, key, runtime._indices)
        return len(runtime.queue), runtime.queue.retries_pending

    queued, later = asyncio.run(scenario())
    assert (queued, later) == ((1, 0) if queued_now else (0, 1))


def test_a_burst_of_model_changes_is_one_recount_of_their_template():
    reconciler = Scripted([written(), written()])
    runtime = runtime_over(*CACHE, reconciler=reconciler)

    async def run() -> list[Step]:
        return [await runtime.process((M, NS, name)) for name in ("a", "b")]

    steps = asyncio.run(run())
    assert [s.recounting for s in steps] == [((T, NS, "vllm"),)] * 2
    assert runtime.queue.retries_pending == 1  # the template, once


def test_a_recount_asked_for_while_the_template_is_being_reconciled_is_not_lost():
    """The template's running reconcile may have counted before the model changed: it comes
    back right after, even though that reconcile succeeds (and a success drops pending
    returns)."""

    async def scenario():
        runtime = runtime_over(*CACHE, reconciler=Scripted([OK]))
        template = (T, NS, "vllm")
        runtime.queue.add(template)
        assert await runtime.queue.get() == template  # being reconciled
        runtime._wake([], [template])  # a model's status changed meanwhile
        runtime.queue.done(template)
        runtime.queue.forget(template)  # that reconcile succeeded
        return len(runtime.queue)

    assert asyncio.run(scenario()) == 1


def test_a_paused_replica_holds_the_keys_it_has_and_reconciles_them_once_active():
    """Peering paused this replica (a retry came due meanwhile): its worker reconciles nothing
    until the replica is active again, then the key it held."""
    from modeltemplate_operator.controller.kopfadapt import Activity, CountingToggleSet

    async def run():
        activity = Activity()
        activity.paused = CountingToggleSet(any)
        conflict = await activity.paused.make_toggle(True, name="a peer of higher priority")
        reconciler = Scripted([OK])
        runtime = Runtime(reconciler, workers=1, indices=indices_over(*CACHE), activity=activity)
        try:
            runtime.queue.add((T, NS, "vllm"))
            await asyncio.sleep(0.2)
            assert reconciler.reconciled == [] and runtime.queue.is_active((T, NS, "vllm"))
            assert _active_gauge() == 0.0
            await conflict.turn_to(False)
            assert _active_gauge() == 1.0
            await until(lambda: reconciler.reconciled)
            assert reconciler.reconciled == [(T, NS, "vllm")]
        finally:
            runtime.stop()

    asyncio.run(run())


def _active_gauge() -> float | None:
    from modeltemplate_operator.controller import metrics

    return metrics.REGISTRY.get_sample_value("modeltemplate_operator_active")
