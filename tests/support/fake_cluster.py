"""A recording :class:`~modeltemplate_operator.controller.cluster.Cluster` for decision tests.

Every write is recorded as a short tuple (``("apply", "Deployment/x")``, ``("status", patch)``,
``("event", "Warning", "InvalidSpec")``, ...); reads answer from what the test put in ``jobs``,
``events`` and ``objects``. ``fail`` maps an operation (``"apply"``, ``"create"``, ...,
optionally ``"apply Job"`` for one kind) to the ApiException it raises.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from modeltemplate_operator.api import kinds


def api_error(status: int, message: str = "", **details: Any) -> ApiException:
    """An ApiException as the API server's Status answer makes it."""
    exc = ApiException(status=status, reason=message or str(status))
    body: dict[str, Any] = {"kind": "Status", "code": status, "message": message}
    if details:
        body["details"] = details
    exc.body = json.dumps(body)
    return exc


class FakeCluster:
    def __init__(self, fail: Mapping[str, ApiException] | None = None):
        self.writes: list[tuple[Any, ...]] = []
        self.reads: list[tuple[str, str, str]] = []
        self.fail = dict(fail or {})
        #: Answers of ``get`` by (kind, name); of ``list`` by kind.
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.listed: dict[str, list[dict[str, Any]]] = {}
        #: What the last ``apply`` of each child stored.
        self.stored: dict[str, dict[str, Any]] = {}

    def _raise(self, op: str, kind: str = "") -> None:
        exc = self.fail.get(f"{op} {kind}") or self.fail.get(op)
        if exc is not None:
            raise exc

    @staticmethod
    def name(obj: Mapping[str, Any]) -> str:
        return f"{obj['kind']}/{obj['metadata']['name']}"

    # -- writes ---------------------------------------------------------------------------
    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        self.writes.append(("apply", self.name(obj)))
        self._raise("apply", obj["kind"])
        stored = copy.deepcopy(dict(obj))
        version = str(len(self.writes))
        uid = f"{obj['kind'].lower()}-{obj['metadata']['name']}"
        stored["metadata"].update(uid=uid, resourceVersion=version)
        self.stored[self.name(obj)] = stored
        return stored

    def replace_lists(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        self.writes.append(("replace_lists", self.name(obj)))
        return copy.deepcopy(dict(obj))

    def delete(self, obj: Mapping[str, Any]) -> None:
        self.writes.append(("delete", self.name(obj)))
        self._raise("delete", obj["kind"])

    def create(self, kind: kinds.Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.writes.append(("create", f"{kind.kind}/{body['metadata']['name']}"))
        self._raise("create", kind.kind)
        return {**body, "metadata": {**body["metadata"], "uid": "uid-created"}}

    def patch_status(
        self, owner: kinds.OwnerKind, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> None:
        self.writes.append(("status", dict(patch)))
        self._raise("status")

    def post_event(self, namespace: str, event: Mapping[str, Any]) -> None:
        self.writes.append(("event", event["type"], event["reason"]))
        self._raise("event")

    # -- reads ----------------------------------------------------------------------------
    def get(self, kind: kinds.Kind, namespace: str, name: str) -> dict[str, Any]:
        self.reads.append(("get", kind.kind, name))
        found = self.objects.get((kind.kind, name))
        if found is None:
            raise api_error(404, f'{kind.plural} "{name}" not found')
        return found

    def list(self, kind: kinds.Kind, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        self.reads.append(("list", kind.kind, field_selector))
        self._raise("list", kind.kind)
        return list(self.listed.get(kind.kind, []))

    # -- what the tests read --------------------------------------------------------------
    def child_writes(self) -> list[tuple[str, str]]:
        """The writes to children (apply, replace, delete, create), in order."""
        return [w for w in self.writes if w[0] in ("apply", "replace_lists", "delete", "create")]

    def statuses(self) -> list[dict[str, Any]]:
        return [w[1] for w in self.writes if w[0] == "status"]

    def events(self) -> list[tuple[str, str]]:
        return [(w[1], w[2]) for w in self.writes if w[0] == "event"]
