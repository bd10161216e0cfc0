"""Kopf wiring: watch caches and watch events in, :class:`~.runtime.Runtime` calls, nothing else.

Owners (each kind of ``kinds.OWNERS``) and their children are kept in Kopf indices (in-memory
watch caches keyed by ``(owner kind, namespace, owner name)``), so a reconcile reads nothing from
the API server and a converged object writes nothing. The real API calls are wired here: the
runtime's reconciler is given a :class:`~.cluster.KubeCluster`. Events only queue the owner's key; the runtime's
workers reconcile queued keys from the latest cached state. An owner's change also queues the
owners naming it (an index per owner kind of the owners its objects name: a template's models).

A full resync happens at every start (the initial listing delivers every owner). There is no
periodic timer: Kopf timers put a finalizer on every object, and a change of a template or of
any child already arrives as an event.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from ..api import kinds
from ..api.kinds import INSTANCE_LABEL, MANAGED, MANAGED_BY, MANAGED_BY_LABEL
from . import kopfadapt
from .caches import cached
from .cluster import KubeCluster
from .reconciler import Reconciler
from .runtime import (
    Key,
    NoDiffBase,
    Runtime,
    api_client,
    ensure_peering_object,
    index_name,
    keda_crd_installed,
    refs_index_name,
)

log = logging.getLogger(__name__)
TEMPLATE = kinds.MODEL_TEMPLATE
#: Seconds a Kopf per-object worker waits for the object's next event before it exits.
KOPF_WORKER_IDLE = 0.1


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = memo.config  # loaded once, by __main__
    settings.posting.enabled = False  # our own Events only, on condition changes
    settings.watching.server_timeout = 600
    # Kopf keeps a worker per object for this long after its last event (5 s by default), each
    # holding the object's raw event: after a burst, thousands of them. Handlers here only queue
    # a key, so a worker is cheap to start again; at 1000 templates the RSS at rest went from
    # 130 to 117 MB (bench-scale), the CPU unchanged.
    settings.queueing.idle_timeout = KOPF_WORKER_IDLE
    settings.persistence.diffbase_storage = NoDiffBase()  # no change handlers: no essences
    settings.peering.lifetime = config.peering_lifetime_seconds  # how soon a standby takes over
    api = api_client(config.workers)
    if not settings.peering.standalone:
        await asyncio.to_thread(ensure_peering_object, api, settings.peering.name, config.namespace)
    # Shared by every handler (each gets a shallow copy of this memo).
    keda = await asyncio.to_thread(keda_crd_installed, api)
    memo.runtime = Runtime(
        Reconciler(KubeCluster(api), config, keda_installed=keda),
        config.workers,
        rollout_limit=config.model_rollout_max_unavailable,
        activity=kopfadapt.ACTIVITY,
    )
    log.info("configuration: %s", config)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.stop()


# -- indices: the watch caches of owners and their children --------------------------------------
def _child_key(namespace: str | None, labels: dict[str, str]) -> Key | None:
    owner = kinds.owner_of(labels)
    if owner is None:
        return None
    return (owner.kind, namespace, labels.get(INSTANCE_LABEL))


def _index_child(kind: kinds.Kind):
    async def index(namespace, labels, body, **_):  # async: Kopf runs sync ones in threads
        key = _child_key(namespace, labels)
        return {key: cached(kind, body)} if key else {}

    return index


def _index_owner(owner: kinds.Kind):
    async def index(namespace, name, body, **_):
        return {(owner.kind, namespace, name): cached(owner, body)}

    return index


def _index_refs(owner: kinds.OwnerKind):
    async def index(namespace, name, body, **_):
        named = ((ref.kind, ref.name_in(body)) for ref in owner.refs)
        return {(kind, namespace, n): name for kind, n in named if n}

    return index


for _owner in kinds.OWNERS:
    kopf.index(_owner.group, _owner.version, _owner.plural, id=index_name(_owner))(
        _index_owner(_owner)
    )
for _owner in kinds.OWNERS:
    if _owner.refs:  # who names whom: wakes and related owners follow the references
        kopf.index(_owner.group, _owner.version, _owner.plural, id=refs_index_name(_owner))(
            _index_refs(_owner)
        )
for _kind in kinds.WATCHED:
    kopf.index(_kind.group, _kind.version, _kind.plural, labels=MANAGED, id=index_name(_kind))(
        _index_child(_kind)
    )


# -- owners: every watch event queues the object (and a template's models) -----------------------
def _owner_event(owner: kinds.OwnerKind):
    async def handler(event, body, memo: kopf.Memo, **indices):
        memo.runtime.owner_event(owner, event, body, indices)

    return handler


for _owner in kinds.OWNERS:
    kopf.on.event(_owner.group, _owner.version, _owner.plural, id=f"{_owner.plural}_event")(
        _owner_event(_owner)
    )


# -- children: a change of any child (or pod) queues its owner -----------------------------------
def _child_event(kind: kinds.Kind):
    async def handler(event, body, namespace, labels, memo: kopf.Memo, **indices):
        key = _child_key(namespace, labels)
        if key is not None and key in indices[index_name(kinds.owner_of(labels))]:
            memo.runtime.event(kind, event, body, key, indices)

    return handler


for _kind in kinds.WATCHED:
    kopf.on.event(
        _kind.group, _kind.version, _kind.plural, labels=MANAGED, id=f"{_kind.plural}_event"
    )(_child_event(_kind))


# -- children that lost our labels: found by their owner reference, applied again at once ------
def _owner_ref_key(namespace: str | None, meta: Any) -> Key | None:
    for ref in meta.get("ownerReferences") or []:
        owner = kinds.OWNER_BY_KIND.get(ref.get("kind"))
        if ref.get("controller") and owner and ref.get("apiVersion") == owner.api_version:
            return (owner.kind, namespace, ref.get("name"))
    return None


def _lost_our_labels(labels, namespace, meta, **_) -> bool:
    """Someone removed (or changed) a label the watch caches select on: the object left them,
    so the labelled handlers never hear of it again."""
    ours = labels.get(MANAGED_BY_LABEL) == MANAGED_BY and kinds.owner_of(labels) is not None
    return not ours and _owner_ref_key(namespace, meta) is not None


def _unlabelled_child_event(kind: kinds.Kind):
    async def handler(event, body, namespace, meta, memo: kopf.Memo, **indices):
        key = _owner_ref_key(namespace, meta)
        if key is not None and key in indices[index_name(kinds.OWNER_BY_KIND[key[0]])]:
            memo.runtime.event(kind, event, body, key, indices)

    return handler


for _kind in kinds.CHILDREN:
    kopf.on.event(
        _kind.group,
        _kind.version,
        _kind.plural,
        when=_lost_our_labels,
        id=f"{_kind.plural}_unlabelled_event",
    )(_unlabelled_child_event(_kind))


# -- KEDA: scale-to-zero templates follow its CRD coming and going ------------------------------
@kopf.on.event(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    when=lambda name, **_: name == kinds.SCALED_OBJECT.optional_crd,
)
async def keda_crd_event(event, memo: kopf.Memo, **indices):
    installed = event.get("type") != "DELETED"
    reconciler = memo.runtime.reconciler
    if installed == reconciler.keda_installed:
        return
    reconciler.keda_installed = installed
    log.info("KEDA %s: re-reconciling everything", "installed" if installed else "removed")
    memo.runtime.enqueue_all(indices)
