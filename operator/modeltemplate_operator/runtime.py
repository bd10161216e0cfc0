"""The operator's runtime: from "this template may need work" to a reconcile, and back on retry.

Watch events put a template's key on a :class:`~.workqueue.WorkQueue`; :data:`WORKERS` workers
take keys off it, read the template and its children from the watch caches (Kopf indices) and
run the blocking :class:`~.reconciler.Reconciler` in a thread of their own. What a reconcile
returns decides what happens next, as controller-runtime's ``Result`` does: nothing, or a
retry after a backoff — the reconciler's ``REFUSED`` when the API server refused a child (a
quota, an admission policy: nothing about the template changes when the cause is fixed), or
:data:`TRANSIENT` when the call itself failed (conflict, throttling, 5xx, lost connection).
Both are the same mechanism, the queue's per-key backoff; an event in between reconciles at once.

Leader election stays with Kopf peering: the non-active replicas pause their watches and
handlers as a whole, which a ``coordination.k8s.io`` Lease would have us re-implement around
Kopf's own watch loop; the peering object is created here when missing.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from kubernetes import config as k8s_config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException

from . import __version__, kinds
from .kube import is_transient, request
from .reconciler import Reconciler
from .status import Observed
from .workqueue import Backoff, WorkQueue

Key = tuple[str, str]  # (namespace, template name)
USER_AGENT = f"modeltemplate-operator/{__version__}"
WORKERS = 16  # queue workers, each with a thread for the (blocking) API calls
TRANSIENT = Backoff(first=1.0, cap=16.0)
TEMPLATES_INDEX = "templates_idx"
log = logging.getLogger(__name__)


def index_name(kind: kinds.Kind) -> str:
    """The Kopf index (watch cache) of a watched kind, keyed by ``(namespace, template)``."""
    return f"{kind.plural}_idx"


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


class Runtime:
    """The work queue, its workers and the watch caches they read; one per operator process."""

    def __init__(self, reconciler: Reconciler, workers: int = WORKERS):
        self.reconciler = reconciler
        self.queue = WorkQueue()
        self._indices: dict[str, Any] = {}
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="reconcile")
        self._tasks = [asyncio.create_task(self._work()) for _ in range(workers)]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def enqueue(self, key: Key, indices: dict[str, Any]) -> None:
        self._indices = indices  # the live indices, as every handler call receives them
        self.queue.add(key)

    def enqueue_all(self, indices: dict[str, Any]) -> None:
        for key in list(indices[TEMPLATES_INDEX].keys()):
            self.enqueue(key, indices)

    def forget(self, key: Key, body: dict[str, Any]) -> None:
        """A template is gone: drop its pending retry and what the reconciler keeps of it."""
        self.queue.forget(key)
        self.reconciler.forget(body)

    def observed(self, key: Key) -> Observed:
        """A template's children and pods from the watch caches."""
        objects = [o for kind in kinds.CHILDREN for o in self._cached(kind, key)]
        return Observed(objects=objects, pods=self._cached(kinds.POD, key))

    def _cached(self, kind: kinds.Kind, key: Key) -> list[dict[str, Any]]:
        return list(self._indices[index_name(kind)].get(key, []))

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            key = await self.queue.get()
            retry = None
            try:
                retry = await loop.run_in_executor(self._executor, self._reconcile, key)
            except Exception:
                log.exception("reconcile of %s/%s failed", *key)
            finally:
                self.queue.done(key)
            if retry is None:
                self.queue.forget(key)
            else:
                delay = self.queue.retry(key, retry)
                log.debug("reconcile of %s/%s again in %.0f s", *key, delay)

    def _reconcile(self, key: Key) -> Backoff | None:
        """One reconcile of the template's latest cached state (a worker thread)."""
        template = next(iter(self._indices[TEMPLATES_INDEX].get(key, [])), None)
        if template is None:
            return None  # deleted meanwhile
        try:
            outcome = self.reconciler.reconcile(template, self.observed(key))
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("reconcile of %s/%s failed (%s); retrying", *key, exc)
            return TRANSIENT
        return outcome.retry if outcome is not None else None
