"""The SGP fine-tuning job routes (``/v4/fine-tuning-jobs``) over FineTuningJob resources.

create, list, get, delete and events, as the official client calls them. Every call goes to
the API server with the caller's own token (its RBAC decides); the account is the namespace
(``x-selected-account-id``, or ``account_id`` in the body or query; a list without one covers
every account the key may list).

The gateway keeps no dataset store, so ``training_dataset_id`` / ``validation_dataset_id`` name
where the data is: a URL (``s3://...``, ``https://...``), ``pvc://<claim>/<path>`` or
``configmap://<name>/<key>`` (JSON Lines). ``base_model_id`` is the id of a model template of the
account. ``vendor_configuration`` carries ``hyperparameters``, ``output`` (where the weights go)
and ``suffix``: the Model ``<template>-<suffix>`` made on success.

The mapping itself (:func:`manifest_from_request`, :func:`job_to_sgp`, :func:`events_of`) is
pure; :data:`router` is the HTTP side.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError

from ... import API_VERSION
from ...api.kinds import FINE_TUNING_JOB, MODEL_TEMPLATE, TEMPLATE_REF
from ...api.models import FineTuningJob
from ...api.validation import ManifestInvalid, parse_manifest
from ...limits import truncate
from ...observed import CREATED_BY_TYPE_ANNOTATION, CREATED_BY_USER_ANNOTATION
from ...plan.finetuning import check
from ..caller import Caller, CallerDep
from ..calls import PageQuery
from ..openapi import json_body
from ..schemas import ERRORS, DeleteResponse, FineTuningJobEvent, Page
from ..schemas import FineTuningJob as FineTuningJobOut
from ..sgp import creator_annotations, order_key, validation_error

__all__ = ["PREFIX", "events_of", "job_to_sgp", "manifest_from_request", "router"]

PREFIX = "/v4/fine-tuning-jobs"
#: Phase -> SGP status.
STATUS = {
    "Pending": "PENDING",
    "Running": "RUNNING",
    "Succeeded": "COMPLETED",
    "Failed": "FAILED",
    "Cancelled": "CANCELED",
}
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*)://(.+)$")


def dataset_from_id(value: Any, field: str) -> dict[str, Any]:
    """A dataset id (a location, see the module doc) as a FineTuningJob dataset."""
    match = _SCHEME.match(value) if isinstance(value, str) else None
    if match is None:
        raise validation_error(
            [
                (
                    field,
                    f"{field} ({truncate(value)}) must be a URL, pvc://<claim>/<path> or "
                    "configmap://<name>/<key>",
                )
            ]
        )
    scheme, rest = match.groups()
    if scheme in ("pvc", "configmap"):
        name, _, tail = rest.partition("/")
        if not name or not tail:
            raise validation_error(
                [(field, f"{field} ({truncate(value)}) must be {scheme}://<name>/<...>")]
            )
        if scheme == "pvc":
            return {"persistentVolumeClaim": {"claimName": name, "path": tail}}
        return {"configMap": {"name": name, "key": tail}}
    return {"url": value}


def dataset_to_id(dataset: dict[str, Any] | None) -> str | None:
    if not dataset:
        return None
    if "url" in dataset:
        return dataset["url"]
    if "persistentVolumeClaim" in dataset:
        pvc = dataset["persistentVolumeClaim"]
        return f"pvc://{pvc['claimName']}/{pvc['path']}"
    if "configMap" in dataset:
        cm = dataset["configMap"]
        return f"configmap://{cm['name']}/{cm['key']}"
    return "inline"


def manifest_from_request(
    body: dict[str, Any], namespace: str, template: str, annotations: dict[str, str]
) -> dict[str, Any]:
    """The FineTuningJob a create request asks for (``template``: the base model template's
    name); 422 naming the field for what cannot be mapped."""
    vendor = body.get("vendor_configuration") or {}
    if not isinstance(vendor, dict):
        raise validation_error([("vendor_configuration", "must be an object")])
    if vendor.get("vendor") not in (None, "LAUNCH"):
        raise validation_error(
            [
                (
                    "vendor_configuration.vendor",
                    f"only LAUNCH is served, not {truncate(vendor['vendor'])}",
                )
            ]
        )
    spec: dict[str, Any] = {
        "templateRef": {"name": template},
        "trainingDataset": dataset_from_id(body.get("training_dataset_id"), "training_dataset_id"),
    }
    if body.get("validation_dataset_id") is not None:
        spec["validationDataset"] = dataset_from_id(
            body["validation_dataset_id"], "validation_dataset_id"
        )
    if vendor.get("hyperparameters") is not None:
        spec["hyperparameters"] = vendor["hyperparameters"]
    if vendor.get("output") is not None:
        spec["output"] = vendor["output"]
    if vendor.get("suffix"):
        spec["outputModelName"] = f"{template}-{vendor['suffix']}"
    manifest = {
        "apiVersion": API_VERSION,
        "kind": FINE_TUNING_JOB.kind,
        "metadata": {
            "generateName": f"{template[:50]}-ft-",
            "namespace": namespace,
            "annotations": annotations,
        },
        "spec": spec,
    }
    try:
        FineTuningJob.model_validate({**manifest, "metadata": {"namespace": namespace}})
    except Exception as exc:  # a pydantic ValidationError: name each field
        errors = getattr(exc, "errors", lambda **_: [])(include_url=False)
        raise validation_error(
            [(".".join(str(x) for x in e["loc"]), e["msg"]) for e in errors] or [("", str(exc))]
        ) from None
    return manifest


def job_to_sgp(obj: dict[str, Any], base_model_id: str | None = None) -> dict[str, Any]:
    """A FineTuningJob as SGP's FineTuningJob, from what it says before the operator has seen
    it too (``base_model_id``: the template's id, known to the caller that made it)."""
    meta, spec = obj["metadata"], obj.get("spec") or {}
    status = obj.get("status") or {}
    annotations = meta.get("annotations") or {}
    vendor: dict[str, Any] = {"vendor": "LAUNCH"}
    if spec.get("hyperparameters") is not None:
        vendor["hyperparameters"] = spec["hyperparameters"]
    if status.get("output") or spec.get("output"):
        vendor["output"] = status.get("output") or spec.get("output")
    template = (spec.get("templateRef") or {}).get("name")
    output_model = spec.get("outputModelName") or ""
    if template and output_model.startswith(f"{template}-"):
        vendor["suffix"] = output_model[len(template) + 1 :]
    out = {
        "id": meta["uid"],
        "account_id": meta["namespace"],
        "created_at": meta["creationTimestamp"],
        "created_by_user_id": annotations.get(CREATED_BY_USER_ANNOTATION, ""),
        "created_by_identity_type": annotations.get(CREATED_BY_TYPE_ANNOTATION, "user"),
        "status": STATUS.get(status.get("phase") or "Pending", "PENDING"),
        "training_dataset_id": dataset_to_id(spec.get("trainingDataset")),
        "validation_dataset_id": dataset_to_id(spec.get("validationDataset")),
        "base_model_id": status.get("baseModelId") or base_model_id,
        "fine_tuned_model_id": status.get("fineTunedModelId"),
        "vendor_configuration": vendor,
    }
    return {k: v for k, v in out.items() if v is not None}


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def events_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """SGP events of a job from what its status records: created, started, finished (or why
    it waits), oldest first."""
    meta, status = obj["metadata"], obj.get("status") or {}
    events = [
        {
            "level": "info",
            "message": "fine-tuning job created",
            "timestamp": _epoch(meta.get("creationTimestamp")),
        }
    ]
    if status.get("startTime"):
        events.append(
            {
                "level": "info",
                "message": "fine-tuning job running",
                "timestamp": _epoch(status["startTime"]),
            }
        )
    phase = status.get("phase")
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    if phase in ("Succeeded", "Failed", "Cancelled"):
        level = "error" if phase == "Failed" else "info"
        stamp = status.get("completionTime")
    elif "Stalled" in conditions:
        level, stamp = "warning", conditions["Stalled"].get("lastTransitionTime")
    else:
        return events
    events.append(
        {
            "level": level,
            "message": f"{phase}: {status.get('message', '')}".rstrip(": "),
            "timestamp": _epoch(stamp),
        }
    )
    return events


def run_problems(manifest: dict[str, Any], template: dict[str, Any]) -> list[tuple[str, str]]:
    """What the operator would refuse in this run, said before it is created (the one check,
    :func:`..plan.finetuning.check`, without the ConfigMap datasets it reads itself): a run
    whose output Model cannot be made is refused up front, as a Model's create is."""
    try:
        job = FineTuningJob.model_validate(manifest)
        parsed = parse_manifest(template)
    except (ValidationError, ManifestInvalid):
        return []  # the API server's own validation answers these
    return [
        (_sgp_field(p["field"]), f"{_sgp_field(p['field'])}: {p['problem']}")
        for p in check(job, parsed)
    ]


def _sgp_field(field: str) -> str:
    """The SGP field of a FineTuningJob spec path the check names."""
    for spec_path, sgp in (
        ("spec.outputWeightsParameter", "vendor_configuration.suffix"),
        ("spec.outputModelName", "vendor_configuration.suffix"),
        ("spec.hyperparameters", "vendor_configuration.hyperparameters"),
        ("spec.trainingDataset", "training_dataset_id"),
        ("spec.validationDataset", "validation_dataset_id"),
        ("spec.templateRef.name", "base_model_id"),
    ):
        if field.startswith(spec_path):
            return sgp + field[len(spec_path) :]
    return field


router = APIRouter(prefix=PREFIX, tags=["fine-tuning-jobs"], responses=ERRORS)


def _template_ids(caller: Caller, namespace: str) -> dict[str, str]:
    """Template name -> id in ``namespace`` (a job's ``base_model_id`` before the operator
    has written it in the job's status)."""
    return {e.name: e.uid for e in caller.gateway.store.ordered(namespace)}


def _to_sgp(caller: Caller, obj: dict[str, Any]) -> dict[str, Any]:
    ids = _template_ids(caller, obj["metadata"]["namespace"])
    template = TEMPLATE_REF.name_in(obj) or ""
    return job_to_sgp(obj, base_model_id=ids.get(template or ""))


@router.post(
    "",
    summary="Create a fine tuning job",
    response_model=FineTuningJobOut,
    openapi_extra=json_body("FineTuningJobCreate"),
)
async def create(request: Request, caller: CallerDep):
    body, namespace = await caller.create_body(request)
    if not isinstance(body, dict):
        raise validation_error([("", "the body must be an object")])
    await caller.access.require(caller.token, namespace, "get")  # the account, before any id
    base = body.get("base_model_id")
    entry = caller.gateway.store.get(base) if isinstance(base, str) else None
    if entry is None or entry.namespace != namespace:
        raise validation_error(
            [
                (
                    "base_model_id",
                    f"base_model_id ({truncate(base)}) is not a model template of account "
                    f"{namespace!r}",
                )
            ]
        )
    user = await caller.access.username(caller.token)
    annotations = creator_annotations(user, datetime.now(UTC))
    manifest = manifest_from_request(body, namespace, entry.name, annotations)
    template = await caller.kube(
        "GET", MODEL_TEMPLATE.path(namespace, entry.name), what="model template"
    )
    problems = run_problems(manifest, template)
    if problems:
        raise validation_error(problems)
    created = await caller.create(FINE_TUNING_JOB, manifest)
    return job_to_sgp(created, base_model_id=entry.uid)


@router.get("", summary="List fine tuning jobs (paged)", response_model=Page[FineTuningJobOut])
async def list_jobs(
    caller: CallerDep, paging: PageQuery, account_id: Annotated[str | None, Query()] = None
):
    namespaces = await caller.namespaces(FINE_TUNING_JOB, caller.listed(account_id))
    items = await caller.list(FINE_TUNING_JOB, namespaces)
    items.sort(key=order_key)
    page = paging.of(items)
    page["items"] = [_to_sgp(caller, o) for o in page["items"]]
    return page


@router.get(
    "/{fine_tuning_job_id}", summary="Get a fine tuning job", response_model=FineTuningJobOut
)
async def retrieve(fine_tuning_job_id: str, caller: CallerDep):
    return _to_sgp(caller, await caller.find(FINE_TUNING_JOB, fine_tuning_job_id))


@router.get(
    "/{fine_tuning_job_id}/events",
    summary="Events of a fine tuning job",
    response_model=list[FineTuningJobEvent],
)
async def events(fine_tuning_job_id: str, caller: CallerDep):
    return events_of(await caller.find(FINE_TUNING_JOB, fine_tuning_job_id))


@router.delete(
    "/{fine_tuning_job_id}",
    summary="Delete (and so stop) a fine tuning job",
    response_model=DeleteResponse,
)
async def delete(fine_tuning_job_id: str, caller: CallerDep):
    meta = (await caller.find(FINE_TUNING_JOB, fine_tuning_job_id))["metadata"]
    return await caller.delete(FINE_TUNING_JOB, meta["namespace"], meta["name"], meta["uid"])
