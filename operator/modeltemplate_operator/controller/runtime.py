"""The operator's runtime: from "this object may need work" to a reconcile, and back on retry.

Watch events put an owner's key (of any kind of :data:`.kinds.OWNERS`) on a
:class:`~.workqueue.WorkQueue`;
:data:`WORKERS` workers take keys off it, read the owner (a model: and its template) and its
children from the watch caches (Kopf indices) and
run the blocking :class:`~.reconciler.Reconciler` in a thread of their own. What a reconcile
returns decides what happens next, as controller-runtime's ``Result`` does: nothing, or a
retry after a backoff — the reconciler's ``REFUSED`` when the API server refused a child (a
quota, an admission policy: nothing about the template changes when the cause is fixed), or
:data:`TRANSIENT` when the call itself failed (conflict, throttling, 5xx, lost connection).
Both are the same mechanism, the queue's per-key backoff; an event in between reconciles at once.

Leader election stays with Kopf peering: the non-active replicas pause their watches and
handlers as a whole, which a ``coordination.k8s.io`` Lease would have us re-implement around
Kopf's own watch loop; the peering object is created here when missing. The workers follow the
same pause (:class:`~.kopfadapt.Activity`): a key taken is held until the replica is active and
its caches listed again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes import config as k8s_config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException

from .. import __version__
from ..api import kinds
from ..observed import Observed, deployment_behind
from ..plan import rollout
from . import allocator, metrics
from .caches import Seen, cached
from .kopfadapt import Activity
from .kube import is_transient, request
from .reconciler import Reconciler, Related
from .workqueue import Backoff, WorkQueue

Key = tuple[str, str, str]  # (owner kind, namespace, name)
USER_AGENT = f"modeltemplate-operator/{__version__}"
WORKERS = 32  # queue workers, each with a thread for the (blocking) API calls (config.workers)
TRANSIENT = Backoff(first=1.0, cap=16.0)
log = logging.getLogger(__name__)


def index_name(kind: kinds.Kind) -> str:
    """The Kopf index (watch cache) of a kind, keyed by ``(owner kind, namespace, owner)``."""
    return f"{kind.plural}_idx"


def refs_index_name(owner: kinds.OwnerKind) -> str:
    """The Kopf index of the owners ``owner``'s objects name: ``(named kind, namespace, named)
    -> names of the objects naming it``."""
    return f"{owner.plural}_refs_idx"


def api_client(connections: int = WORKERS) -> ApiClient:
    """A client whose connection pool fits the worker threads (the pool is sized at creation)."""
    configuration = Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = connections
    api = ApiClient(configuration)
    api.user_agent = USER_AGENT
    return api


def keda_crd_installed(api: ApiClient) -> bool:
    """Whether KEDA's CRD is installed, known before the first reconcile: starting from False,
    a restart would prune every ScaledObject until the CRD watch reports it, then create them
    again (a helm upgrade that rolls the operator must leave the workloads alone)."""
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    name = kinds.SCALED_OBJECT.optional_crd
    found = request(api, "GET", path, query=[("fieldSelector", f"metadata.name={name}")])
    return bool(found.get("items"))


def ensure_peering_object(api: ApiClient, name: str, namespace: str | None) -> None:
    """Kopf elects the active replica through a peering object; create it when missing."""
    kind, path = ("ClusterKopfPeering", "/apis/kopf.dev/v1/clusterkopfpeerings")
    if namespace:
        kind, path = ("KopfPeering", f"/apis/kopf.dev/v1/namespaces/{namespace}/kopfpeerings")
    body = {"apiVersion": "kopf.dev/v1", "kind": kind, "metadata": {"name": name}}
    try:
        request(api, "POST", path, body=body)
    except ApiException as exc:
        if exc.status == 404:
            raise kopf.PermanentError(
                "the Kopf peering CRDs are not installed: apply deploy/base/kopf-peering-crds.yaml "
                "(part of `kubectl apply -k deploy/`) or run a single replica with --standalone"
            ) from None
        if exc.status != 409:
            raise


class NoDiffBase(kopf.DiffBaseStorage):
    """Kopf keeps a deep copy of every object's "essence" for change handlers (on.create,
    on.update, on.field), building it on every watch event; the operator has none, so it keeps
    nothing (``settings.persistence.diffbase_storage``)."""

    def build(self, *, body, extra_fields=None):
        return {}

    def fetch(self, *, body):
        return None

    def store(self, *, body, patch, essence):
        pass


#: While a template's children settle, its events are gathered this long into one reconcile.
SETTLE_WINDOW = 1.0
#: An owner counting others (a template its models) recounts at most this long after one of
#: them changed: a burst of changes (a thousand models coming up, a wave) is one recount.
RECOUNT_WINDOW = 1.0
#: The queue idle this long after work: memory freed by the burst goes back to the system.
TRIM_AFTER = 5.0


@dataclass(frozen=True)
class Step:
    """What one reconcile of a queued key decided: ``result`` (for the metrics: ``ok``,
    ``retry``, ``settling``, ``gone``, ``error``), when the key comes back by itself (seconds;
    None: only on its next event) and the keys woken because its status changed: at once, or
    (the owners counting it) within :data:`RECOUNT_WINDOW`."""

    result: str
    again_in: float | None = None
    woken: tuple[Key, ...] = ()
    recounting: tuple[Key, ...] = ()


def looks_converged(kind: kinds.Kind, body: dict[str, Any]) -> bool:
    """Whether an object seen for the first time needs no early look: a child (its owner's own
    events say whether the owner changed), or an owner whose status describes its generation."""
    if kind.kind not in kinds.OWNER_BY_KIND:
        return True
    meta, status = body["metadata"], body.get("status") or {}
    return not meta.get("deletionTimestamp") and status.get("observedGeneration") == meta.get(
        "generation"
    )


def caught_up(kind: kinds.Kind, body: dict[str, Any]) -> bool:
    """A Deployment whose controller has seen its latest spec: the end of the burst of events
    that follows a write of it (a rollout step of a model waits for exactly this)."""
    return kind is kinds.DEPLOYMENT and not deployment_behind(body)


class Runtime:
    """The work queue, its workers and the watch caches they read; one per operator process.

    Its I/O is what it is given: the ``reconciler`` (anything with ``reconcile_owner``,
    ``forget``, ``on_status_write`` and ``keda_installed``; the operator's does the API
    calls) and the watch caches (Kopf's indices, handed in with every event, or ``indices``).
    With ``workers=0`` no worker runs: each queued key is reconciled by :meth:`process`.
    """

    def __init__(
        self,
        reconciler: Reconciler,
        workers: int = WORKERS,
        indices: dict[str, Any] | None = None,
        *,
        rollout_limit: int = 1,
        activity: Activity | None = None,
    ):
        self.reconciler = reconciler
        #: Whether this replica may act (peering); a worker holds the key it took until it may.
        self.activity = activity or Activity()
        metrics.ACTIVE.set_function(lambda: float(self.activity.is_active()))
        #: Models of one template moving at once, unless the template says otherwise.
        self.rollout_limit = rollout_limit
        self.queue = WorkQueue(on_wait=metrics.QUEUE_WAIT.observe)
        metrics.QUEUE_DEPTH.set_function(lambda: len(self.queue))
        metrics.RETRIES_PENDING.set_function(lambda: self.queue.retries_pending)
        self._indices: dict[str, Any] = indices if indices is not None else {}
        self._seen = Seen()
        self._settling: set[Key] = set()
        #: Keys to queue after a reconcile: a model's status changed, so its template (which
        #: counts its models) and its siblings (which may wait for its rollout) look again.
        self._dependents: dict[Key, tuple[list[Key], list[Key]]] = {}
        self._active = 0
        self._trim: asyncio.TimerHandle | None = None
        reconciler.on_status_write = self._expect_status
        self._executor = (
            ThreadPoolExecutor(workers, thread_name_prefix="reconcile") if workers else None
        )
        self._tasks = [asyncio.create_task(self._work()) for _ in range(workers)]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def event(
        self,
        kind: kinds.Kind,
        event: dict[str, Any],
        body: dict[str, Any],
        key: Key,
        indices: dict[str, Any],
    ) -> bool:
        """A watch event of an object of ``kind`` concerning the owner ``key``: queue the owner,
        unless the event left unchanged everything a reconcile reads of the object (False). An
        object this process sees for the first time that looks converged (a restart's initial
        listing) queues it in the resync lane, behind every new or changed object."""
        metrics.WATCH_EVENTS.labels(kind.kind).inc()
        meta = body["metadata"]
        seen_key = (kind.kind, meta.get("namespace"), meta["name"])
        resync = False
        if event.get("type") == "DELETED":
            self._seen.forget(seen_key)
        else:
            first = seen_key not in self._seen
            if not self._seen.changed(seen_key, cached(kind, body)):
                metrics.EVENTS_IGNORED.labels(kind.kind).inc()
                return False
            resync = first and looks_converged(kind, body)
        self.enqueue(key, indices, resync=resync, settled=caught_up(kind, body))
        return True

    def owner_event(
        self,
        owner: kinds.OwnerKind,
        event: dict[str, Any],
        body: dict[str, Any],
        indices: dict[str, Any],
    ) -> None:
        """A watch event of an owner: queue it and those its change concerns (in its lane); a
        deleted owner is forgotten (its children go by garbage collection)."""
        meta = body["metadata"]
        key = (owner.kind, meta.get("namespace"), meta["name"])
        resync = False
        if event.get("type") == "DELETED":
            self.forget(key, body)
        elif self.event(owner, event, body, key, indices):
            resync = self.queue.waits_in_resync(key)
        else:
            return
        self._wake(*self._split(key, body, self.dependents(key, body, indices)), resync=resync)

    def _split(self, key: Key, body: dict[str, Any], woken: list[Key]) -> tuple[list, list]:
        """The dependents of a change of ``key`` to wake at once, and those only counting it."""
        _, namespace, _ = key
        counting = {
            (ref.kind, namespace, ref.name_in(body))
            for ref in kinds.OWNER_BY_KIND[key[0]].refs
            if ref.counted
        }
        return [k for k in woken if k not in counting], [k for k in woken if k in counting]

    def _wake(self, now: list[Key], recount: list[Key], *, resync: bool = False) -> None:
        """Queue ``now`` at once and ``recount`` within RECOUNT_WINDOW — or, for a change seen
        in a restart's listing (``resync``), every one of them in the resync lane."""
        if resync:
            for dependent in now + recount:
                self.enqueue(dependent, self._indices, resync=True)
            return
        for dependent in now:
            self.enqueue(dependent, self._indices)
        for dependent in recount:
            if self.queue.is_active(dependent):
                # Its reconcile may have read the cache before this change: marked, it runs
                # again right after (a delayed return would be dropped by the ``forget`` of a
                # reconcile that succeeds).
                self.queue.add(dependent)
            else:
                self.queue.add_after(dependent, RECOUNT_WINDOW)  # the earliest return wins

    def enqueue(
        self, key: Key, indices: dict[str, Any], *, resync: bool = False, settled: bool = False
    ) -> None:
        """Queue ``key`` (in the resync lane with ``resync``). An owner whose children are
        settling comes back after :data:`SETTLE_WINDOW`, unless the event says they ``settled``
        (its Deployment's controller caught up with the last write)."""
        self._indices = indices  # the live indices, as every handler call receives them
        if key in self._settling and not self.queue.is_active(key) and not settled:
            # Its children are appearing and their controllers catching up: a burst of events
            # (created, then status) that one reconcile after the burst handles. (While it is
            # being reconciled, the queue marks it instead: a delayed return would be dropped
            # by the ``forget`` of a reconcile that succeeds.)
            self.queue.add_after(key, SETTLE_WINDOW)
        else:
            self.queue.add(key, resync=resync)

    def enqueue_all(self, indices: dict[str, Any]) -> None:
        for owner in kinds.OWNERS:
            for key in list(indices[index_name(owner)].keys()):
                self.enqueue(key, indices)

    def forget(self, key: Key, body: dict[str, Any]) -> None:
        """An owner is gone: drop its pending retry and what the reconciler keeps of it."""
        log.debug("forgetting %s %s/%s: deleted", *key)
        self.queue.forget(key)
        self.reconciler.forget(body)
        self._seen.forget(key)
        self._settling.discard(key)
        metrics.READY_REASONS.set(key, None)

    def observed(self, key: Key) -> Observed:
        """An owner's children and pods from the watch caches."""
        objects = [o for kind in kinds.CHILDREN for o in self._cached(kind, key)]
        return Observed(objects=objects, pods=self._cached(kinds.POD, key))

    def _cached(self, kind: kinds.Kind, key: Key) -> list[dict[str, Any]]:
        return list(self._indices[index_name(kind)].get(key, []))

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            await self.activity.wait()  # a standby replica writes nothing
            await self.process(key)

    async def process(self, key: Key) -> Step:
        """Reconcile ``key`` (taken off the queue) in a worker thread, then act on what it
        returned: come back after its backoff, or when its children settle, or only on its next
        event; wake those its status change concerns."""
        loop = asyncio.get_running_loop()
        self._active += 1
        retry, result, start = None, "error", time.monotonic()
        woken, recounting = (), ()
        try:
            retry, result = await loop.run_in_executor(self._executor, self._reconcile, key)
            now, recount = self._dependents.pop(key, ((), ()))
            woken, recounting = tuple(now), tuple(recount)
            self._wake(now, recount)
        except Exception:
            log.exception("reconcile of %s %s/%s failed", *key)
        settling = result == "settling"
        # Events that came during a settling reconcile are gathered like later ones.
        self.queue.done(key, again_after=SETTLE_WINDOW if settling else None)
        metrics.RECONCILES.labels(result).inc()
        metrics.RECONCILE_DURATION.observe(time.monotonic() - start)
        self._active -= 1
        self._trim_when_idle(loop)
        again_in = None
        if settling:
            self._settling.add(key)
            again_in = retry.first
            self.queue.add_after(key, again_in)  # unless an event comes first
            return Step(result, again_in, woken, recounting)
        self._settling.discard(key)
        if retry is None:
            self.queue.forget(key)
        else:
            again_in = self.queue.retry(key, retry)
            log.debug("reconcile of %s %s/%s again in %.0f s", *key, again_in)
        return Step(result, again_in, woken, recounting)

    def _trim_when_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._trim is not None:
            self._trim.cancel()
            self._trim = None
        if self._active == 0 and len(self.queue) == 0:
            self._trim = loop.call_later(TRIM_AFTER, allocator.trim)

    def _expect_status(self, body: dict[str, Any], status: dict[str, Any]) -> None:
        """Our status patch comes back as a watch event of the owner: nothing to do then.
        Called by the reconciler (a worker thread) just before the patch is sent. (Should the
        patch fail, the retry of the reconcile writes it again; an event that differs from
        this expectation is never ignored.)"""
        meta, owner = body["metadata"], kinds.OWNER_BY_KIND[body["kind"]]
        kept = {k: v for k, v in (body.get("status") or {}).items() if k == "kopf"}
        written = {**body, "status": {**kept, **status}}
        self._seen.changed((owner.kind, meta["namespace"], meta["name"]), cached(owner, written))

    def _cached_owner(self, key: Key) -> dict[str, Any] | None:
        owner = kinds.OWNER_BY_KIND[key[0]]
        return next(iter(self._indices[index_name(owner)].get(key, [])), None)

    def referrers(
        self, kind: str, namespace: str, name: str | None, indices: dict[str, Any] | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """The cached owners whose spec names the owner ``(kind, namespace, name)``, by kind."""
        if indices is not None:
            self._indices = indices  # the live indices, as every handler call receives them
        found: dict[str, list[dict[str, Any]]] = {}
        for owner, _ in kinds.refs_to(kind):
            names = self._indices[refs_index_name(owner)].get((kind, namespace, name), [])
            bodies = (self._cached_owner((owner.kind, namespace, n)) for n in set(names))
            found.setdefault(owner.kind, []).extend(b for b in bodies if b is not None)
        return found

    def related(self, key: Key, body: dict[str, Any]) -> Related:
        """What the reconcile of ``key`` reads besides the owner, from the caches: the owners
        its spec names and, through them, those they name (a deployment's Model, then that
        Model's template; an own reference left empty is looked for there too), those naming
        it, and its siblings under a staged owner."""
        kind, namespace, name = key
        owner = kinds.OWNER_BY_KIND[kind]
        refs: dict[str, dict[str, Any] | None] = {}
        todo: list[tuple[kinds.OwnerKind, dict[str, Any]]] = [(owner, body)]
        while todo:
            named_by, named_body = todo.pop(0)
            for ref in named_by.refs:
                named = ref.name_in(named_body)
                if ref.kind in refs or not named:
                    continue
                refs[ref.kind] = found = self._cached_owner((ref.kind, namespace, named))
                if found is not None:
                    todo.append((kinds.OWNER_BY_KIND[ref.kind], found))
        for ref in owner.refs:
            refs.setdefault(ref.kind, None)  # named nowhere, or not found
        siblings: list[dict[str, Any]] = []
        for ref in owner.refs:
            if ref.staged and ref.name_in(body):
                family = self.referrers(ref.kind, namespace, ref.name_in(body))
                siblings = family.get(kind, [])
        return Related(
            observed=self.observed(key),
            refs=refs,
            referrers=self.referrers(kind, namespace, name),
            siblings=siblings,
        )

    def dependents(
        self,
        key: Key,
        body: dict[str, Any],
        indices: dict[str, Any] | None = None,
        *,
        status_only: bool = False,
    ) -> list[Key]:
        """Who must look again when the owner ``key`` changed: every owner naming it (a
        template's models, the fine-tuning jobs of a template or model) — unless only its status
        changed; the owners it names that count it (a template counts its models) and, under a
        staged owner, its siblings waiting for their turn (a quiet family costs nothing)."""
        kind, namespace, name = key
        woken: list[Key] = []
        todo = [] if status_only else [key]
        while todo:  # those naming it, and those reading it through them (a deployment)
            named = todo.pop(0)
            for other, bodies in self.referrers(*named, indices).items():
                for b in bodies:
                    found = (other, namespace, b["metadata"]["name"])
                    if found not in woken and found != key:
                        woken.append(found)
                        todo.append(found)
        for ref in kinds.OWNER_BY_KIND[kind].refs:
            named = ref.name_in(body)
            if not named:
                continue
            if ref.counted:
                woken.append((ref.kind, namespace, named))
            if ref.staged:
                family = self.referrers(ref.kind, namespace, named).get(kind, [])
                staged_by = self._cached_owner((ref.kind, namespace, named)) or {}
                limit = rollout.max_unavailable(staged_by, self.rollout_limit)
                woken += [(kind, namespace, n) for n in rollout.next_in_line(family, name, limit)]
        return woken

    def _reconcile(self, key: Key) -> tuple[Backoff | None, str]:
        """One reconcile of the owner's latest cached state (a worker thread): the backoff
        to retry after (None: done) and the result for the metrics."""
        body = self._cached_owner(key)
        if body is None:
            return None, "gone"  # deleted meanwhile
        try:
            outcome = self.reconciler.reconcile_owner(body, self.related(key, body))
            if outcome is not None and outcome.status_written:
                # Its status changed: those counting it, or waiting for its turn, look again.
                woken = self.dependents(key, body, status_only=True)
                self._dependents[key] = self._split(key, body, woken)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("reconcile of %s %s/%s failed (%s); retrying", *key, exc)
            return TRANSIENT, "retry"
        if outcome is None:
            return None, "ok"
        if outcome.settling:
            return outcome.retry, "settling"
        return outcome.retry, "ok" if outcome.retry is None else "retry"
