"""The kinds the operator serves, renders and watches: one table, everything else derives from it.

``render`` builds objects with :meth:`Kind.object`, ``apply`` finds their paths with
:func:`for_object`, the handlers register one watch cache per :data:`WATCHED` kind and the
reconciler reads a template's children from those caches; ``deploy/base/rbac.yaml`` is checked
against :data:`CHILDREN` and :data:`WATCHED` by a unit test.

Adding a child kind is one entry in :data:`CHILDREN` plus its renderer. Adding a kind the
operator reconciles (an owner of children) is one entry in :data:`OWNERS` plus its reconcile.

Whose a child is: its ``app.kubernetes.io/name`` label is its owner's kind in lower case
(:func:`app_name`) and ``app.kubernetes.io/instance`` its owner's name, so a template and a
model of the same name never select each other's pods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import (
    FINE_TUNING_JOB_KIND,
    FINE_TUNING_JOB_PLURAL,
    GROUP,
    KIND,
    MODEL_KIND,
    MODEL_PLURAL,
    PLURAL,
    VERSION,
)

#: Labels every child (and its pods) carries; the watch caches select on ``managed-by``.
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY = "modeltemplate-operator"
MANAGED = {MANAGED_BY_LABEL: MANAGED_BY}


@dataclass(frozen=True)
class Kind:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    #: Served only when this CRD is installed (watched while it is).
    optional_crd: str | None = None
    #: The ``status`` fields the status of a template reads (None: all of them); the watch
    #: caches keep only these, and a change elsewhere in a child's status wakes no reconcile.
    status_fields: tuple[str, ...] | None = ()
    #: The ``spec`` fields read (None: all of them — apply compares a child's whole spec).
    spec_fields: tuple[str, ...] | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str, name: str | None = None) -> str:
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        path = f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{path}/{name}" if name else path

    def object(self, metadata: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": metadata,
            "spec": spec,
        }


MODEL_TEMPLATE = Kind(GROUP, VERSION, PLURAL, KIND, status_fields=None)
#: A model made from a template; owns its children as a template owns its own.
MODEL = Kind(GROUP, VERSION, MODEL_PLURAL, MODEL_KIND, status_fields=None)
#: A run of a template's fine-tuning bundle; owns its Job and the ConfigMap of its configuration.
FINE_TUNING_JOB = Kind(
    GROUP, VERSION, FINE_TUNING_JOB_PLURAL, FINE_TUNING_JOB_KIND, status_fields=None
)

DEPLOYMENT = Kind(
    "apps",
    "v1",
    "deployments",
    "Deployment",
    status_fields=(
        "observedGeneration",
        "replicas",
        "readyReplicas",
        "updatedReplicas",
        "conditions",  # Progressing: ProgressDeadlineExceeded
    ),
)
SERVICE = Kind("", "v1", "services", "Service")
HPA = Kind("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")
PDB = Kind("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
JOB = Kind(
    "batch",
    "v1",
    "jobs",
    "Job",
    # startTime, completionTime: a fine-tuning job's times.
    status_fields=("conditions", "active", "ready", "succeeded", "startTime", "completionTime"),
)
SCALED_OBJECT = Kind(
    "keda.sh", "v1alpha1", "scaledobjects", "ScaledObject", optional_crd="scaledobjects.keda.sh"
)
#: The configuration file of a fine-tuning job (mounted at the bundle's mount_location).
CONFIG_MAP = Kind("", "v1", "configmaps", "ConfigMap")
POD = Kind(
    "",
    "v1",
    "pods",
    "Pod",
    # startTime: when a fine-tuning job's pod started, if its container says nothing.
    status_fields=("phase", "reason", "message", "conditions", "containerStatuses", "startTime"),
    # Read, never written: its containers are the Deployment's. nodeSelector: the accelerator
    # class an old worker holds (gpu_rollout.frees_room).
    spec_fields=("nodeName", "nodeSelector"),
)

#: Kinds the operator reconciles: each owns the children it renders (owner references, labels).
OWNERS: tuple[Kind, ...] = (MODEL_TEMPLATE, MODEL, FINE_TUNING_JOB)

#: Kinds a template renders: applied, pruned and watched, owned by the template.
CHILDREN: tuple[Kind, ...] = (DEPLOYMENT, SERVICE, HPA, PDB, JOB, SCALED_OBJECT, CONFIG_MAP)
#: Everything labelled as a template's: its children and their pods (read, never written).
WATCHED: tuple[Kind, ...] = (*CHILDREN, POD)

_BY_TYPE = {(k.api_version, k.kind): k for k in CHILDREN}
_BY_APP_NAME = {k.kind.lower(): k for k in OWNERS}
#: The owner kinds by their ``kind`` name.
OWNER_BY_KIND = {k.kind: k for k in OWNERS}


def app_name(owner: Kind) -> str:
    """The ``app.kubernetes.io/name`` label of an owner's children and pods."""
    return owner.kind.lower()


def owner_of(labels: dict[str, str]) -> Kind | None:
    """The kind that owns an object carrying ``labels`` (None: not one of ours)."""
    return _BY_APP_NAME.get(labels.get(NAME_LABEL, ""))


def for_object(obj: dict[str, Any]) -> Kind:
    """The child kind of a rendered or live object (KeyError for a kind we do not render)."""
    return _BY_TYPE[(obj["apiVersion"], obj["kind"])]
