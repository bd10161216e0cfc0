"""What a reconcile asks of and writes to the API server: the reconciler's only I/O.

:class:`Cluster` is the protocol the :class:`~.reconciler.Reconciler` and the
:class:`~.apply.Applier` are given; :class:`KubeCluster` is the one the operator runs with (REST
calls through :func:`~.kube.request`), and the unit tests give a recording stand-in, so every
decision of a reconcile (which writes, which status, which Events, which retry) is checked
without a server. Failures are the client's :class:`~kubernetes.client.exceptions.ApiException`
either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from ..api import kinds
from .kube import APPLY_PATCH, MERGE_PATCH, request

FIELD_MANAGER = "modeltemplate-operator"
#: Events are read (a Job's refusals) and posted (an owner's transitions), never watched.
EVENT = kinds.Kind("", "v1", "events", "Event")


class Cluster(Protocol):
    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply a child; the object as the API server stored it."""

    def replace_lists(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch a child's spec (its lists replaced wholesale); the object stored."""

    def delete(self, obj: Mapping[str, Any]) -> None:
        """Delete a child (in the background); one already gone is no error."""

    def get(self, kind: kinds.Kind, namespace: str, name: str) -> dict[str, Any]:
        """One object (ApiException 404 when there is none)."""

    def list(self, kind: kinds.Kind, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        """The objects of ``kind`` in ``namespace`` matching ``field_selector``."""

    def create(self, kind: kinds.Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create an object; the object stored (ApiException 409 when it exists)."""

    def patch_status(
        self, owner: kinds.OwnerKind, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> None:
        """Merge-patch an owner's status subresource with ``{"status": patch}``."""

    def post_event(self, namespace: str, event: Mapping[str, Any]) -> None:
        """Post an Event (ApiException 409 when one of its name exists)."""


class KubeCluster:
    """:class:`Cluster` over the API server's REST API, with one field manager for applies."""

    def __init__(self, api: ApiClient, field_manager: str = FIELD_MANAGER):
        self.api = api
        self.field_manager = field_manager

    @staticmethod
    def _path(obj: Mapping[str, Any]) -> str:
        meta = obj["metadata"]
        return kinds.for_object(obj).path(meta["namespace"], meta["name"])

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        query = [("fieldManager", self.field_manager), ("force", "true")]
        return request(
            self.api, "PATCH", self._path(obj), body=obj, query=query, content_type=APPLY_PATCH
        )

    def replace_lists(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        query = [("fieldManager", self.field_manager)]
        body = {"spec": obj["spec"]}
        return request(
            self.api, "PATCH", self._path(obj), body=body, query=query, content_type=MERGE_PATCH
        )

    def delete(self, obj: Mapping[str, Any]) -> None:
        try:
            request(self.api, "DELETE", self._path(obj), body={"propagationPolicy": "Background"})
        except ApiException as exc:
            if exc.status != 404:
                raise

    def get(self, kind: kinds.Kind, namespace: str, name: str) -> dict[str, Any]:
        return request(self.api, "GET", kind.path(namespace, name))

    def list(self, kind: kinds.Kind, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        query = [("fieldSelector", field_selector)]
        found = request(self.api, "GET", kind.path(namespace), query=query)
        return list(found.get("items") or [])

    def create(self, kind: kinds.Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return request(self.api, "POST", kind.path(namespace), body=body)

    def patch_status(
        self, owner: kinds.OwnerKind, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> None:
        path = owner.path(namespace, name) + "/status"
        body = {"status": patch}
        request(self.api, "PATCH", path, body=body, content_type=MERGE_PATCH, decode=False)

    def post_event(self, namespace: str, event: Mapping[str, Any]) -> None:
        request(self.api, "POST", EVENT.path(namespace), body=event, decode=False)
