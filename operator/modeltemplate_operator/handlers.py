"""Kopf wiring: watch caches and watch events in, :class:`~.runtime.Runtime` calls, nothing else.

Children are kept in Kopf indices (in-memory watch caches keyed by ``(namespace, template)``),
so a reconcile reads nothing from the API server and a converged template writes nothing.
Events only queue the template's key; the runtime's workers reconcile queued templates from the
latest cached state.

A full resync happens at every start (the initial listing delivers every template). There is no
periodic timer: Kopf timers put a finalizer on every object, and a change of a template or of
any child already arrives as an event.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from . import kinds
from .caches import cached
from .kinds import INSTANCE_LABEL, MANAGED
from .reconciler import Reconciler
from .runtime import (
    TEMPLATES_INDEX,
    NoDiffBase,
    Runtime,
    api_client,
    ensure_peering_object,
    index_name,
    keda_crd_installed,
)

log = logging.getLogger(__name__)
TEMPLATE = kinds.MODEL_TEMPLATE


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = memo.config  # loaded once, by __main__
    settings.posting.enabled = False  # our own Events only, on condition changes
    settings.watching.server_timeout = 600
    settings.persistence.diffbase_storage = NoDiffBase()  # no change handlers: no essences
    api = api_client(config.workers)
    if not settings.peering.standalone:
        await asyncio.to_thread(ensure_peering_object, api, settings.peering.name, config.namespace)
    # Shared by every handler (each gets a shallow copy of this memo).
    keda = await asyncio.to_thread(keda_crd_installed, api)
    memo.runtime = Runtime(Reconciler(api, config, keda_installed=keda), config.workers)
    log.info("configuration: %s", config)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.stop()


# -- indices: the watch caches of children and templates ---------------------------------------
def _key(namespace: str | None, labels: dict[str, str]) -> tuple[str | None, str | None]:
    return (namespace, labels.get(INSTANCE_LABEL))


def _index_child(kind: kinds.Kind):
    async def index(namespace, labels, body, **_):  # async: Kopf runs sync ones in threads
        return {_key(namespace, labels): cached(kind, body)}

    return index


async def _index_template(namespace, name, body, **_):
    return {(namespace, name): cached(TEMPLATE, body)}


kopf.index(TEMPLATE.group, TEMPLATE.version, TEMPLATE.plural, id=TEMPLATES_INDEX)(_index_template)
for _kind in kinds.WATCHED:
    kopf.index(_kind.group, _kind.version, _kind.plural, labels=MANAGED, id=index_name(_kind))(
        _index_child(_kind)
    )


# -- templates: every watch event queues the template ---------------------------------------------
@kopf.on.event(TEMPLATE.group, TEMPLATE.version, TEMPLATE.plural)
async def template_event(event, body, namespace, name, memo: kopf.Memo, **indices):
    if event.get("type") == "DELETED":
        memo.runtime.forget((namespace, name), body)  # children go by garbage collection
        return
    memo.runtime.event(TEMPLATE, event, body, (namespace, name), indices)


# -- children: a change of any child (or pod) queues its template --------------------------------
def _child_event(kind: kinds.Kind):
    async def handler(event, body, namespace, labels, memo: kopf.Memo, **indices):
        key = _key(namespace, labels)
        if key in indices[TEMPLATES_INDEX]:
            memo.runtime.event(kind, event, body, key, indices)

    return handler


for _kind in kinds.WATCHED:
    kopf.on.event(
        _kind.group, _kind.version, _kind.plural, labels=MANAGED, id=f"{_kind.plural}_event"
    )(_child_event(_kind))


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
    log.info("KEDA %s: re-reconciling every template", "installed" if installed else "removed")
    memo.runtime.enqueue_all(indices)
