"""Kopf wiring: watch events in, :class:`Reconciler` calls, nothing else.

Children are kept in Kopf indices (in-memory watch caches keyed by ``(namespace, template)``),
so a reconcile reads nothing from the API server and a converged template writes nothing.
Events only queue the template's key; a few workers reconcile queued templates from the latest
cached state (see workqueue.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from kubernetes import config as k8s_config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException

from . import GROUP, PLURAL, VERSION, __version__
from .config import OperatorConfig
from .kube import is_transient, request
from .reconciler import KEDA_CRD, Children, Reconciler
from .render import INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL
from .workqueue import WorkQueue

MANAGED = {MANAGED_BY_LABEL: MANAGED_BY}
USER_AGENT = f"modeltemplate-operator/{__version__}"
RETRY_ATTEMPTS = 6  # 1 + 2 + 4 + 8 + 16 s of backoff
RETRY_MAX_DELAY = 16
RETRY_TICK_SECONDS = 2.0
RECONCILE_WORKERS = 16  # queue workers, each with a thread for the (blocking) API calls
CHILD_KINDS = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("batch", "v1", "jobs"),
    ("keda.sh", "v1alpha1", "scaledobjects"),  # watched only while KEDA's CRD is installed
)
#: Everything labelled as a template's: its children and their pods.
WATCHED = (*CHILD_KINDS, ("", "v1", "pods"))
log = logging.getLogger(__name__)


def _api_client(connections: int) -> ApiClient:
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


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = OperatorConfig.load()
    settings.posting.enabled = False  # our own Events only, on condition changes
    settings.watching.server_timeout = 600
    api = _api_client(RECONCILE_WORKERS)
    if not settings.peering.standalone:
        await asyncio.to_thread(ensure_peering_object, api, settings.peering.name, config.namespace)
    memo.reconciler = Reconciler(api, config)
    # Shared by every handler (each gets a shallow copy of this memo).
    memo.live = {
        "queue": WorkQueue(),
        "executor": ThreadPoolExecutor(RECONCILE_WORKERS, thread_name_prefix="reconcile"),
    }
    memo.live["tasks"] = [asyncio.create_task(_worker(memo)) for _ in range(RECONCILE_WORKERS)]
    memo.live["tasks"].append(asyncio.create_task(_retry_loop(memo)))
    log.info("configuration: %s", config)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    for task in memo.live["tasks"]:
        task.cancel()
    memo.live["executor"].shutdown(wait=False, cancel_futures=True)


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


# -- indices: the watch caches of children and templates ---------------------------------------
def _child_key(namespace: str | None, labels: dict[str, str]) -> tuple[str | None, str | None]:
    return (namespace, labels.get(INSTANCE_LABEL))


def _cached(body) -> dict[str, Any]:
    """What the caches keep of an object: everything but managedFields (often half its size)."""
    metadata = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    return {**body, "metadata": metadata}


def _index_child(namespace, labels, body, **_):
    return {_child_key(namespace, labels): _cached(body)}


for _group, _version, _plural in WATCHED:
    kopf.index(_group, _version, _plural, labels=MANAGED, id=f"{_plural}_idx")(_index_child)


@kopf.index(GROUP, VERSION, PLURAL)
def templates_idx(namespace, name, body, **_):
    return {(namespace, name): _cached(body)}


def _children(key: tuple[str, str], indices: dict[str, Any]) -> Children:
    objects = []
    for _group, _version, plural in CHILD_KINDS:
        objects.extend(indices[f"{plural}_idx"].get(key, []))
    return Children(objects=objects, pods=list(indices["pods_idx"].get(key, [])))


def _enqueue(memo: kopf.Memo, key: tuple[str, str], indices: dict[str, Any]) -> None:
    memo.live["indices"] = indices  # the live indices, for the workers
    memo.live["queue"].add(key)


def _reconcile_with_backoff(
    memo: kopf.Memo, body, key: tuple[str, str], indices: dict[str, Any]
) -> None:
    """Reconcile, retrying transient API failures (conflicts, throttling, 5xx, lost connections)
    with backoff. Watch events carry no retries of their own, and this is the only place where a
    failure would otherwise wait for the next event."""
    for attempt in range(RETRY_ATTEMPTS):
        try:
            memo.reconciler.reconcile(body, _children(key, indices))
            return
        except Exception as exc:
            if not is_transient(exc) or attempt == RETRY_ATTEMPTS - 1:
                raise
            delay = min(RETRY_MAX_DELAY, 2**attempt)
            log.warning("reconcile of %s/%s failed (%s); retrying in %ss", *key, exc, delay)
            time.sleep(delay)  # a worker thread, only on failure
            # The template may have changed meanwhile: take its latest state from the index.
            body = next(iter(indices["templates_idx"].get(key, [])), body)


# -- workers: reconcile queued templates; refused children come back on a backoff -------------
async def _worker(memo: kopf.Memo) -> None:
    queue: WorkQueue = memo.live["queue"]
    while True:
        key = await queue.get()
        try:
            indices = memo.live["indices"]
            # The latest state of the template, whichever event queued it.
            for template in list(indices["templates_idx"].get(key, [])):
                await asyncio.get_running_loop().run_in_executor(
                    memo.live["executor"], _reconcile_with_backoff, memo, template, key, indices
                )
        except Exception:
            log.exception("reconcile of %s/%s failed", *key)
        finally:
            queue.done(key)


async def _retry_loop(memo: kopf.Memo) -> None:
    while True:
        await asyncio.sleep(RETRY_TICK_SECONDS)
        for key in memo.reconciler.retries.due(time.monotonic()):
            memo.live["queue"].add(key)


# -- templates: every watch event ----------------------------------------------------------------
# A full resync happens at every start (the initial listing delivers every template). There is
# no periodic timer: Kopf timers put a finalizer on every object, and a change of a template or
# of any child already arrives as an event.
@kopf.on.event(GROUP, VERSION, PLURAL)
async def template_event(event, body, namespace, name, memo: kopf.Memo, **indices):
    if event.get("type") == "DELETED":
        memo.reconciler.forget(body)  # children go by garbage collection
        return
    _enqueue(memo, (namespace, name), indices)


# -- KEDA: scale-to-zero templates follow its CRD coming and going ------------------------------
@kopf.on.event(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    when=lambda name, **_: name == KEDA_CRD,
)
async def keda_crd_event(event, memo: kopf.Memo, **indices):
    installed = event.get("type") != "DELETED"
    if installed == memo.reconciler.keda_installed:
        return
    memo.reconciler.keda_installed = installed
    log.info("KEDA %s: re-reconciling every template", "installed" if installed else "removed")
    for key in list(indices["templates_idx"].keys()):
        _enqueue(memo, key, indices)


# -- children: a change of any child re-reconciles its template ----------------------------------
async def _child_event(event, namespace, labels, memo: kopf.Memo, **indices):
    key = _child_key(namespace, labels)
    if key in indices["templates_idx"]:
        _enqueue(memo, key, indices)


for _group, _version, _plural in WATCHED:
    kopf.on.event(_group, _version, _plural, labels=MANAGED, id=f"{_plural}_event")(_child_event)
