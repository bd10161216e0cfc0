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
from .kinds import INSTANCE_LABEL, MANAGED
from .reconciler import Reconciler
from .runtime import (
    TEMPLATES_INDEX,
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
    api = api_client()
    if not settings.peering.standalone:
        await asyncio.to_thread(ensure_peering_object, api, settings.peering.name, config.namespace)
    # Shared by every handler (each gets a shallow copy of this memo).
    keda = await asyncio.to_thread(keda_crd_installed, api)
    memo.runtime = Runtime(Reconciler(api, config, keda_installed=keda))
    log.info("configuration: %s", config)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.stop()


# -- indices: the watch caches of children and templates ---------------------------------------
def _key(namespace: str | None, labels: dict[str, str]) -> tuple[str | None, str | None]:
    return (namespace, labels.get(INSTANCE_LABEL))


def _cached(body) -> dict[str, Any]:
    """What the caches keep of an object: everything but managedFields (often half its size)."""
    metadata = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    return {**body, "metadata": metadata}


def _index_child(namespace, labels, body, **_):
    return {_key(namespace, labels): _cached(body)}


def _index_template(namespace, name, body, **_):
    return {(namespace, name): _cached(body)}


kopf.index(TEMPLATE.group, TEMPLATE.version, TEMPLATE.plural, id=TEMPLATES_INDEX)(_index_template)
for _kind in kinds.WATCHED:
    kopf.index(_kind.group, _kind.version, _kind.plural, labels=MANAGED, id=index_name(_kind))(
        _index_child
    )


# -- templates: every watch event queues the template ---------------------------------------------
@kopf.on.event(TEMPLATE.group, TEMPLATE.version, TEMPLATE.plural)
async def template_event(event, body, namespace, name, memo: kopf.Memo, **indices):
    if event.get("type") == "DELETED":
        memo.runtime.forget((namespace, name), body)  # children go by garbage collection
        return
    memo.runtime.enqueue((namespace, name), indices)


# -- children: a change of any child (or pod) queues its template --------------------------------
async def _child_event(event, namespace, labels, memo: kopf.Memo, **indices):
    key = _key(namespace, labels)
    if key in indices[TEMPLATES_INDEX]:
        memo.runtime.enqueue(key, indices)


for _kind in kinds.WATCHED:
    kopf.on.event(
        _kind.group, _kind.version, _kind.plural, labels=MANAGED, id=f"{_kind.plural}_event"
    )(_child_event)


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
