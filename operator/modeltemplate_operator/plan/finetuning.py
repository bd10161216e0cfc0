"""Fine-tuning jobs, the pure part: checks, plan, job configuration, phase and status.

- :func:`check` lists every problem of a FineTuningJob against its template, one
  ``{"field", "problem"}`` dict each (the shape :mod:`.parameters` reports): no
  ``fineTuningJobBundleConfig``, a resource override above the bundle's value, dataset rows that
  do not match the bundle's ``trainingDatasetSchemaType`` (inline rows, and the rows of a
  ConfigMap dataset, read by the caller) — all before any Job (any GPU) is requested.
- :func:`plan_fine_tuning` resolves the run: the bundle, its resources with the overrides, the
  GPU scheduling (:func:`~.resolution.resolve_gpu`, exactly as for endpoints: presets, MIG) and
  the output location; :func:`~.render.render_fine_tuning` renders it.
- :func:`job_configuration` is the JSON file the job reads at the bundle's ``mount_location``.
- :func:`verdict` folds the Job and its pod into a phase (scheduling and image failures named
  by :func:`~.status.pod_problem`, pods the API server refuses by
  :func:`~.status.job_refused`, as for endpoints); :func:`fine_tuning_status` is the whole
  status. A phase in :data:`~.models.finetuning.TERMINAL_PHASES` is final: its Job is never
  created again.
- A run is started once: ``status.jobName`` is written *before* its Job is created, and a run
  whose status names its Job while the Job is gone (deleted by hand, or lost while the operator
  was down — even between that write and the create) is ``Failed`` with :data:`JOB_LOST`
  (:func:`job_lost`), never created again: training never runs twice by itself.

Row schemas: GENERATION rows are SGP's ``TrainingDatasetGenerationItem`` (``input`` and
``output`` strings); RERANKING_QUESTIONS rows carry a ``question`` string and ``positive`` and
``negative`` passages (a string or a non-empty list of strings each).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..api.kinds import FINE_TUNING_JOB, Kind
from ..api.models import (
    FineTuningJob,
    FineTuningJobBundleConfig,
    Model,
    ModelTemplate,
    TrainingDatasetSchemaType,
    parse_quantity,
)
from ..api.models.finetuning import Dataset
from ..api.parameters import ParameterSchema
from .config import OperatorConfig
from .instantiate import creation_schema
from .resolution import Scheduling, resolve_gpu

#: The key of the operator's ConfigMap holding the job configuration.
CONFIG_KEY = "config.json"
#: Where dataset files are mounted in the job's container.
DATA_ROOT = "/var/run/modeltemplate/datasets"
ROLES = ("training", "validation")
#: SGP's TrainingDatasetGenerationItem.
GENERATION_FIELDS = ("input", "output")
RERANKING_FIELDS = ("question", "positive", "negative")
#: Bad rows named in a message, at most (the count says how many more).
MAX_ROWS_REPORTED = 20
#: Ready reason while a configMap dataset's ConfigMap (or key) does not exist.
DATASET_MISSING = "DatasetMissing"
_RESOURCE_FIELDS = (("cpus", "cpus"), ("memory", "memory"), ("storage", "storage"))


def dataset_field(role: str) -> str:
    return f"spec.{role}Dataset"


def dataset_of(job: FineTuningJob, role: str) -> Dataset | None:
    return job.spec.training_dataset if role == "training" else job.spec.validation_dataset


# -- checks ----------------------------------------------------------------------------------


def _is_passages(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)


def row_problem(row: Any, schema: TrainingDatasetSchemaType) -> str | None:
    """Why one row does not match the schema (None: it does)."""
    if not isinstance(row, dict):
        return f"must be an object, not {type(row).__name__}"
    if schema is TrainingDatasetSchemaType.GENERATION:
        missing = [f for f in GENERATION_FIELDS if f not in row]
        if missing:
            return f"missing {', '.join(missing)} (GENERATION rows need input and output)"
        wrong = [f for f in GENERATION_FIELDS if not isinstance(row[f], str)]
        if wrong:
            return f"{', '.join(wrong)} must be a string"
        return None
    missing = [f for f in RERANKING_FIELDS if f not in row]
    if missing:
        return (
            f"missing {', '.join(missing)} "
            "(RERANKING_QUESTIONS rows need question, positive and negative)"
        )
    if not isinstance(row["question"], str) or not row["question"]:
        return "question must be a non-empty string"
    wrong = [f for f in ("positive", "negative") if not _is_passages(row[f])]
    if wrong:
        return f"{', '.join(wrong)} must be a string or a non-empty list of strings"
    return None


def parse_jsonl(text: str) -> tuple[list[Any], dict[int, str]]:
    """Rows of a JSON Lines text (blank lines skipped) and the lines that are not JSON, by
    row index."""
    rows: list[Any] = []
    bad: dict[int, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            bad[len(rows)] = f"not JSON ({exc.msg})"
            rows.append(None)
    return rows, bad


def check_rows(
    rows: list[Any],
    schema: TrainingDatasetSchemaType,
    where: str,
    bad: Mapping[int, str] | None = None,
) -> list[dict[str, str]]:
    """One problem naming every bad row by index (``row 3: ...``), or none; ``bad``: rows
    already known bad (lines that are not JSON)."""
    problems = dict(bad or {})
    for index, row in enumerate(rows):
        if index not in problems:
            problem = row_problem(row, schema)
            if problem:
                problems[index] = problem
    if not rows:
        return [{"field": where, "problem": "the dataset has no rows"}]
    if not problems:
        return []
    shown = sorted(problems)[:MAX_ROWS_REPORTED]
    text = "; ".join(f"row {i}: {problems[i]}" for i in shown)
    more = len(problems) - len(shown)
    if more:
        text += f"; and {more} more"
    return [
        {
            "field": where,
            "problem": f"{len(problems)} of {len(rows)} rows do not match the "
            f"{schema.value} schema: {text}",
        }
    ]


@dataclass(frozen=True)
class DatasetRows:
    """The rows of a ConfigMap dataset as read by the caller (or why they could not be)."""

    text: str | None = None
    error: str | None = None
    #: The ConfigMap or its key is missing (it may appear: the check is retried).
    missing: bool = False


def check(
    job: FineTuningJob,
    template: ModelTemplate,
    config_map_rows: Mapping[str, DatasetRows] | None = None,
    model: Model | None = None,
) -> list[dict[str, str]]:
    """Every problem of ``job`` against ``template`` (empty: the Job can be created).
    ``config_map_rows`` holds, by role, what the ConfigMap of a configMap dataset holds."""
    bundle = template.spec.vendor_configuration.fine_tuning_job_bundle_config
    name = template.metadata.name
    if bundle is None:
        return [
            {
                "field": "spec.templateRef.name" if job.spec.template_ref else "spec.modelRef.name",
                "problem": f"ModelTemplate {name!r} has no "
                "vendorConfiguration.fineTuningJobBundleConfig: it cannot be fine-tuned",
            }
        ]
    # Free-form, but held to the limits of every user value (depth) by the one checker.
    errors = ParameterSchema().check_values(job.spec.hyperparameters or {}, "spec.hyperparameters")
    overrides = job.spec.resources
    if overrides is not None:
        caps = bundle.resources
        for attr, key in _RESOURCE_FIELDS:
            want = getattr(overrides, attr)
            if want is not None and parse_quantity(want) > parse_quantity(getattr(caps, attr)):
                errors.append(
                    {
                        "field": f"spec.resources.{key}",
                        "problem": f"{want} is above the template's "
                        f"fineTuningJobBundleConfig.resources.{key} ({getattr(caps, attr)})",
                    }
                )
        if overrides.gpus is not None and overrides.gpus > caps.gpus:
            errors.append(
                {
                    "field": "spec.resources.gpus",
                    "problem": f"{overrides.gpus} is above the template's "
                    f"fineTuningJobBundleConfig.resources.gpus ({caps.gpus})",
                }
            )
    if job.spec.output_model_name:
        # The Model made on success must be valid: a parameter the template does not declare
        # would never reach its workers, a missing required one would make it invalid.
        params = output_parameters(job, "weights-location", model)
        declared = {p.name for p in creation_schema(template).parameters}
        if job.spec.output_weights_parameter not in declared:
            errors.append(
                {
                    "field": "spec.outputWeightsParameter",
                    "problem": f"{job.spec.output_weights_parameter!r} is not a creation "
                    f"parameter of ModelTemplate {name!r} (declared: "
                    f"{', '.join(sorted(declared)) or 'none'})",
                }
            )
        errors += creation_schema(template).check_values(
            params, "spec.outputModelName: its creationParameters"
        )
    schema = bundle.training_dataset_schema_type
    for role in ROLES:
        dataset = dataset_of(job, role)
        if dataset is None:
            continue
        where = dataset_field(role)
        if dataset.inline is not None:
            errors += check_rows(list(dataset.inline), schema, f"{where}.inline")
        elif dataset.config_map is not None:
            ref = dataset.config_map
            where = f"{where}.configMap ({ref.name}/{ref.key})"
            got = (config_map_rows or {}).get(role) or DatasetRows(error="not read")
            if got.error is not None:
                errors.append({"field": where, "problem": got.error})
            else:
                rows, bad = parse_jsonl(got.text or "")
                errors += check_rows(rows, schema, where, bad)
    return errors


# -- plan ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FineTuningPlan:
    """Everything the renderer needs for one run (names its children and owner like a Plan)."""

    name: str
    namespace: str
    uid: str
    job: FineTuningJob
    template: ModelTemplate
    bundle: FineTuningJobBundleConfig
    #: Container resources: cpu, memory, ephemeral-storage (the GPU is in ``scheduling``).
    resources: dict[str, str]
    scheduling: Scheduling
    output: str
    config: OperatorConfig
    model: Model | None = None
    owner: Kind = FINE_TUNING_JOB


def output_location(job: FineTuningJob, config: OperatorConfig) -> str:
    if job.spec.output:
        return job.spec.output
    prefix = config.fine_tuning_output_prefix.rstrip("/")
    return f"{prefix}/{job.metadata.namespace}/{job.metadata.name}"


def plan_fine_tuning(
    job: FineTuningJob, template: ModelTemplate, config: OperatorConfig, model: Model | None = None
) -> FineTuningPlan:
    """The run of ``job`` (check it with :func:`check` first)."""
    bundle = template.spec.vendor_configuration.fine_tuning_job_bundle_config
    assert bundle is not None, "check() first"
    caps = bundle.resources
    overrides = job.spec.resources
    values = {
        attr: getattr(overrides, attr, None) if overrides else None
        for attr in ("cpus", "memory", "storage", "gpus")
    }
    resources = {
        "cpu": str(values["cpus"] if values["cpus"] is not None else caps.cpus),
        "memory": str(values["memory"] if values["memory"] is not None else caps.memory),
        "ephemeral-storage": str(
            values["storage"] if values["storage"] is not None else caps.storage
        ),
    }
    gpus = values["gpus"] if values["gpus"] is not None else caps.gpus
    gpu_type = caps.gpu_type.value if caps.gpu_type else None
    return FineTuningPlan(
        name=job.metadata.name or "",
        namespace=job.metadata.namespace or "",
        uid=job.metadata.uid or "",
        job=job,
        template=template,
        bundle=bundle,
        resources=resources,
        scheduling=resolve_gpu(gpu_type, gpus, config),
        output=output_location(job, config),
        config=config,
        model=model,
    )


def dataset_path(role: str, dataset: Dataset) -> str | None:
    """Where the job finds a mounted dataset (None: it downloads ``url`` itself)."""
    if dataset.url is not None:
        return None
    if dataset.persistent_volume_claim is not None:
        return f"{DATA_ROOT}/{role}-volume/{dataset.persistent_volume_claim.path}"
    return f"{DATA_ROOT}/{role}.jsonl"


def job_configuration(plan: FineTuningPlan) -> dict[str, Any]:
    """The job's configuration file (JSON) at the bundle's ``mount_location``."""
    job, template = plan.job, plan.template
    schema = plan.bundle.training_dataset_schema_type.value
    datasets: dict[str, Any] = {}
    for role in ROLES:
        dataset = dataset_of(job, role)
        if dataset is None:
            datasets[f"{role}_dataset"] = None
            continue
        entry: dict[str, Any] = {"schema_type": schema}
        if dataset.url is not None:
            entry["url"] = dataset.url
        else:
            entry["path"] = dataset_path(role, dataset)
            entry["format"] = "jsonl"
        datasets[f"{role}_dataset"] = entry
    base: dict[str, Any] = {
        "model_template": template.metadata.name,
        "model_template_id": template.metadata.uid,
        "model_type": template.spec.model_type.value,
    }
    if plan.model is not None:
        base["model"] = plan.model.metadata.name
        base["model_id"] = plan.model.metadata.uid
        base["creation_parameters"] = dict(plan.model.spec.creation_parameters or {})
    return {
        "fine_tuning_job": plan.name,
        "fine_tuning_job_id": plan.uid,
        "namespace": plan.namespace,
        "base_model": base,
        **datasets,
        "hyperparameters": dict(job.spec.hyperparameters or {}),
        "output": plan.output,
    }


def inline_datasets(job: FineTuningJob) -> dict[str, str]:
    """The ConfigMap keys of the inline datasets (JSON Lines), by role."""
    out = {}
    for role in ROLES:
        dataset = dataset_of(job, role)
        if dataset is not None and dataset.inline is not None:
            out[f"{role}.jsonl"] = "".join(
                json.dumps(row, separators=(",", ":"), sort_keys=True) + "\n"
                for row in dataset.inline
            )
    return out


def output_parameters(
    job: FineTuningJob, output: str, model: Model | None = None
) -> dict[str, Any]:
    """The creation parameters of the output Model: those of the fine-tuned Model (if a Model
    was fine-tuned) with the weights location as ``outputWeightsParameter``."""
    base = dict(model.spec.creation_parameters or {}) if model is not None else {}
    return {**base, job.spec.output_weights_parameter: output}


def output_model(
    plan_job: FineTuningJob, template: str, output: str, model: Model | None = None
) -> dict[str, Any] | None:
    """The Model a succeeded job creates (None: the job names no outputModelName): made from
    the template with :func:`output_parameters`, owned by nobody (it outlives the job)."""
    spec = plan_job.spec
    if not spec.output_model_name:
        return None
    return {
        "apiVersion": FINE_TUNING_JOB.api_version,
        "kind": "Model",
        "metadata": {
            "name": spec.output_model_name,
            "namespace": plan_job.metadata.namespace,
            "labels": {"launch.modelops.dev/fine-tuning-job": plan_job.metadata.name or ""},
            "annotations": {"launch.modelops.dev/fine-tuning-job-id": plan_job.metadata.uid or ""},
        },
        "spec": {
            "templateRef": {"name": template},
            "creationParameters": output_parameters(plan_job, output, model),
        },
    }
