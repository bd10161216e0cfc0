"""Names, labels and owner of the rendered objects, shared by every renderer (pure).

A plan here is anything naming its children and its owner: an endpoint's :class:`~..plan.
resolution.Plan` or a fine-tuning run's :class:`~..plan.finetuning.FineTuningPlan`."""

from __future__ import annotations

from typing import Any, Protocol

from ..api.kinds import (
    COMPONENT_LABEL,
    INSTANCE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NAME_LABEL,
    Kind,
    app_name,
)


class Owned(Protocol):
    """What names the children of a plan and their owner."""

    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def uid(self) -> str: ...
    @property
    def owner(self) -> Kind: ...


def selector_labels(plan: Owned) -> dict[str, str]:
    return {NAME_LABEL: app_name(plan.owner), INSTANCE_LABEL: plan.name}


def labels(plan: Owned, component: str) -> dict[str, str]:
    return {
        **selector_labels(plan),
        MANAGED_BY_LABEL: MANAGED_BY,
        COMPONENT_LABEL: component,
    }


def object_meta(plan: Owned, component: str) -> dict[str, Any]:
    """A child's metadata: named after the plan, in its namespace, controlled by its owner."""
    return {
        "name": plan.name,
        "namespace": plan.namespace,
        "labels": labels(plan, component),
        "ownerReferences": [
            {
                "apiVersion": plan.owner.api_version,
                "kind": plan.owner.kind,
                "name": plan.name,
                "uid": plan.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
