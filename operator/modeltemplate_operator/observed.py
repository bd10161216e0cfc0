"""What was observed, and the words for it: shared by the plan (rollout decisions), the status
and the API, below all of them.

- :class:`Observed`: an owner's children, their pods and (for a stuck Job) its Events, as the
  watch caches last saw them.
- The reasons of the ``Ready`` condition that deserve a Warning Event (:data:`WARNING_REASONS`)
  and those that need a person (:data:`STALLED_REASONS`: ``Stalled=True``), and the reasons of
  an owner that renders nothing.
- The annotations holding SGP's creator fields (written by the optional admission policies).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .api import kinds
from .api.kinds import Kind

FAILED_WAITING_REASONS = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
}
#: Ready=False reasons worth a Warning event when they appear.
WARNING_REASONS = FAILED_WAITING_REASONS | {
    "Unschedulable",
    "InvalidSpec",
    "JobFailed",
    "ApplyFailed",
    "Evicted",
    "ProgressDeadlineExceeded",
    "FailedCreate",
    "InvalidParameters",
    "TemplateMissing",
    "ModelMissing",
    "TemplateInvalid",
    "RolloutBlocked",
    "JobLost",
}
#: Ready=False reasons that no retry or rollout fixes: the spec, the image, the cluster's
#: capacity or policy must change, or (ASYNC) the operator's broker setting. They set
#: Stalled=True.
#: Not Evicted: the Deployment is already replacing the evicted worker.
STALLED_REASONS = (WARNING_REASONS - {"Evicted"}) | {"BrokerNotConfigured"}
PURE_TEMPLATE = "PureTemplate"
INVALID_SPEC = "InvalidSpec"
#: Why a model renders nothing (the reasons of its Valid and Ready conditions).
INVALID_PARAMETERS = "InvalidParameters"
TEMPLATE_MISSING = "TemplateMissing"
#: Why a deployment renders nothing: its Model is gone (it keeps its workers as they were).
MODEL_MISSING = "ModelMissing"
TEMPLATE_INVALID = "TemplateInvalid"
CREATED_BY_USER_ANNOTATION = "launch.modelops.dev/created-by-user-id"
CREATED_BY_TYPE_ANNOTATION = "launch.modelops.dev/created-by-identity-type"


def deployment_behind(deployment: Mapping[str, Any] | None) -> bool:
    """Has the Deployment controller not seen the Deployment's latest spec yet?"""
    deployment = deployment or {}
    seen = (deployment.get("status") or {}).get("observedGeneration", 0)
    return seen < (deployment.get("metadata") or {}).get("generation", 0)


@dataclass
class Observed:
    """A template's children and their pods, as the watch caches last saw them."""

    objects: list[Mapping[str, Any]] = field(default_factory=list)
    pods: list[Mapping[str, Any]] = field(default_factory=list)
    #: The ``FailedCreate`` Events of the Job, read by the reconciler only while the Job has no
    #: pods and no progress (:func:`job_stuck`): a Job has no condition saying that the API
    #: server refuses its pods, only its controller's Events do.
    events: list[Mapping[str, Any]] = field(default_factory=list)

    def first(self, kind: Kind) -> dict[str, Any] | None:
        return next((dict(o) for o in self.objects if o.get("kind") == kind.kind), None)

    @property
    def deployment(self) -> dict[str, Any] | None:
        return self.first(kinds.DEPLOYMENT)

    @property
    def job(self) -> dict[str, Any] | None:
        return self.first(kinds.JOB)
