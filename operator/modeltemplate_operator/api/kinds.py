"""The kinds the operator serves, renders and watches: one table, everything else derives from it.

``render`` builds objects with :meth:`Kind.object`, ``apply`` finds their paths with
:func:`for_object`, the handlers register one watch cache per :data:`WATCHED` kind and the
reconciler reads a template's children from those caches; ``deploy/base/rbac.yaml`` is checked
against :data:`CHILDREN` and :data:`WATCHED` by a unit test.

Adding a child kind is one entry in :data:`CHILDREN` plus its renderer. Adding a kind the
operator reconciles (an owner of children) is one :class:`OwnerKind` in :data:`OWNERS` — its
names, pydantic root, printer columns and the owners its spec names (:class:`Ref`: who depends
on whom) — plus its reconcile (``@reconciles(KIND)`` in the reconciler) and its plan and
render; its CRD, watch cache, dispatch, wake-ups, RBAC and user roles follow from the entry.

Whose a child is: its ``app.kubernetes.io/name`` label is its owner's kind in lower case
(:func:`app_name`) and ``app.kubernetes.io/instance`` its owner's name, so a template and a
model of the same name never select each other's pods.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import (
    FINE_TUNING_JOB_KIND,
    FINE_TUNING_JOB_PLURAL,
    GROUP,
    KIND,
    MODEL_DEPLOYMENT_KIND,
    MODEL_DEPLOYMENT_PLURAL,
    MODEL_KIND,
    MODEL_PLURAL,
    PLURAL,
    VERSION,
)
from .models import FineTuningJob, Model, ModelDeployment, ModelTemplate

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


@dataclass(frozen=True)
class Ref:
    """``spec.<field>.name``: the owner of ``kind`` (same namespace) an owner is made from."""

    field: str
    kind: str
    #: The named owner counts its referrers in its status: it looks again when one changes.
    counted: bool = False
    #: The named owner's referrers move to its new generation a few at a time (staged rollout):
    #: when one changes, those waiting for their turn look again.
    staged: bool = False

    def name_in(self, body: Mapping[str, Any]) -> str | None:
        return ((body.get("spec") or {}).get(self.field) or {}).get("name")

    @property
    def json_path(self) -> str:
        return f".spec.{self.field}.name"


@dataclass(frozen=True)
class OwnerKind(Kind):
    """A resource of this API that the operator reconciles into children it owns."""

    short_names: tuple[str, ...] = ()
    #: The pydantic class of the whole resource: the one source of its CRD.
    root: type | None = None
    printer_columns: tuple[dict[str, Any], ...] = ()
    #: ``kubectl get --field-selector`` fields besides each :class:`Ref`'s name.
    selectable_fields: tuple[str, ...] = ()
    refs: tuple[Ref, ...] = ()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"


_EC = ".spec.vendorConfiguration.endpointConfig"
PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Endpoint",
        "type": "string",
        "jsonPath": ".spec.endpointType",
        "description": "Endpoint type",
    },
    {"name": "Model", "type": "string", "jsonPath": ".spec.modelType", "description": "Model type"},
    {
        "name": "GPU",
        "type": "string",
        "jsonPath": f"{_EC}.gpuType",
        "description": "GPU type of a worker",
    },
    {
        "name": "GPUs",
        "type": "integer",
        "jsonPath": f"{_EC}.gpus",
        "description": "GPUs per worker",
    },
    {
        "name": "Min",
        "type": "integer",
        "jsonPath": f"{_EC}.minWorkers",
        "description": "Minimum workers",
    },
    {
        "name": "Max",
        "type": "integer",
        "jsonPath": f"{_EC}.maxWorkers",
        "description": "Maximum workers",
    },
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        "description": "Ready condition",
    },
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        "description": "Reason of the Ready condition",
    },
    {
        "name": "Protocol",
        "type": "string",
        "jsonPath": ".spec.endpointProtocol",
        "priority": 1,
        "description": "Endpoint protocol",
    },
    {
        "name": "Workers",
        "type": "integer",
        "jsonPath": ".status.workers.ready",
        "priority": 1,
        "description": "Ready workers",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

#: `kubectl get mt --field-selector spec.endpointType!=ASYNC` (e.g. to wait for the others).
#: The structural form of an integer-or-string field (what the API server publishes for it).
MODEL_PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Template",
        "type": "string",
        "jsonPath": ".spec.templateRef.name",
        "description": "The ModelTemplate the model is made from",
    },
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        "description": "Ready condition",
    },
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        "description": "Reason of the Ready condition",
    },
    {
        "name": "Valid",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Valid")].status',
        "description": "Valid condition (parameters checked against the template)",
    },
    {
        "name": "TemplateGen",
        "type": "integer",
        "jsonPath": ".status.templateGeneration",
        "priority": 1,
        "description": "Generation of the template the model runs",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
_READY = '.status.conditions[?(@.type=="Ready")]'
MODEL_DEPLOYMENT_PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Model",
        "type": "string",
        "jsonPath": ".spec.modelRef.name",
        "description": "The Model the deployment runs",
    },
    {"name": "Ready", "type": "string", "jsonPath": f"{_READY}.status"},
    {"name": "Reason", "type": "string", "jsonPath": f"{_READY}.reason"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
FINE_TUNING_JOB_PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Phase",
        "type": "string",
        "jsonPath": ".status.phase",
        "description": "Pending, Running, Succeeded, Failed or Cancelled",
    },
    {
        "name": "Template",
        "type": "string",
        "jsonPath": ".status.template",
        "description": "The ModelTemplate whose fine-tuning bundle runs",
    },
    {
        "name": "Output",
        "type": "string",
        "jsonPath": ".status.outputModel",
        "priority": 1,
        "description": "The Model created on success",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


MODEL_TEMPLATE = OwnerKind(
    GROUP,
    VERSION,
    PLURAL,
    KIND,
    status_fields=None,
    short_names=("mt",),
    root=ModelTemplate,
    printer_columns=tuple(PRINTER_COLUMNS),
    selectable_fields=(".spec.endpointType", ".spec.modelType"),
)
#: A model made from a template; owns its children as a template owns its own.
MODEL = OwnerKind(
    GROUP,
    VERSION,
    MODEL_PLURAL,
    MODEL_KIND,
    status_fields=None,
    short_names=("mdl",),
    root=Model,
    printer_columns=tuple(MODEL_PRINTER_COLUMNS),
    refs=(Ref("templateRef", KIND, counted=True, staged=True),),
)
#: One more running endpoint of a Model (SGP deployment), its template reached through it.
MODEL_DEPLOYMENT = OwnerKind(
    GROUP,
    VERSION,
    MODEL_DEPLOYMENT_PLURAL,
    MODEL_DEPLOYMENT_KIND,
    status_fields=None,
    short_names=("mdep",),
    root=ModelDeployment,
    printer_columns=tuple(MODEL_DEPLOYMENT_PRINTER_COLUMNS),
    refs=(Ref("modelRef", MODEL_KIND),),
)
#: The references the SGP API follows: a Model's (or a job's) template, a deployment's Model.
TEMPLATE_REF = MODEL.refs[0]
MODEL_REF = MODEL_DEPLOYMENT.refs[0]
#: A run of a template's fine-tuning bundle; owns its Job and the ConfigMap of its configuration.
FINE_TUNING_JOB = OwnerKind(
    GROUP,
    VERSION,
    FINE_TUNING_JOB_PLURAL,
    FINE_TUNING_JOB_KIND,
    status_fields=None,
    short_names=("ftj",),
    root=FineTuningJob,
    printer_columns=tuple(FINE_TUNING_JOB_PRINTER_COLUMNS),
    refs=(Ref("templateRef", KIND), Ref("modelRef", MODEL_KIND)),
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
OWNERS: tuple[OwnerKind, ...] = (MODEL_TEMPLATE, MODEL, MODEL_DEPLOYMENT, FINE_TUNING_JOB)

#: Kinds a template renders: applied, pruned and watched, owned by the template.
CHILDREN: tuple[Kind, ...] = (DEPLOYMENT, SERVICE, HPA, PDB, JOB, SCALED_OBJECT, CONFIG_MAP)
#: Everything labelled as a template's: its children and their pods (read, never written).
WATCHED: tuple[Kind, ...] = (*CHILDREN, POD)

_BY_TYPE = {(k.api_version, k.kind): k for k in CHILDREN}
_BY_APP_NAME = {k.kind.lower(): k for k in OWNERS}
#: The owner kinds by their ``kind`` name.
OWNER_BY_KIND = {k.kind: k for k in OWNERS}


def refs_to(kind: str) -> list[tuple[OwnerKind, Ref]]:
    """The owner kinds whose spec names an owner of ``kind``, with the reference."""
    return [(owner, ref) for owner in OWNERS for ref in owner.refs if ref.kind == kind]


def app_name(owner: Kind) -> str:
    """The ``app.kubernetes.io/name`` label of an owner's children and pods."""
    return owner.kind.lower()


def owner_of(labels: dict[str, str]) -> Kind | None:
    """The kind that owns an object carrying ``labels`` (None: not one of ours)."""
    return _BY_APP_NAME.get(labels.get(NAME_LABEL, ""))


def for_object(obj: dict[str, Any]) -> Kind:
    """The child kind of a rendered or live object (KeyError for a kind we do not render)."""
    return _BY_TYPE[(obj["apiVersion"], obj["kind"])]
