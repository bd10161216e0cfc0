"""Render a fine-tuning run: a FineTuningPlan -> its ConfigMap and Job (pure).

The ConfigMap holds the run's configuration (and its inline datasets); the Job runs the
template's fineTuningJobBundleConfig in the worker pod (:mod:`.pod`) with the configuration
mounted as one file at the bundle's ``mount_location`` and the datasets read from the cluster.
"""

from __future__ import annotations

import json
from typing import Any

from ..api import kinds
from ..plan import finetuning as ft
from ..plan.finetuning import FineTuningPlan
from .meta import labels, object_meta
from .pod import bundle_env, main_container, pod_spec

COMPONENT = "fine-tuning"
#: The job configuration file, mounted alone (subPath) at the bundle's mount_location.
FINE_TUNING_CONFIG_VOLUME = "fine-tuning-config"
#: Env variable naming the configuration file's path.
FINE_TUNING_CONFIG_ENV = "FINE_TUNING_CONFIG"


def _dataset_mounts(
    plan: FineTuningPlan,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes and mounts of the datasets the job reads from the cluster (not URLs)."""
    volumes, mounts = [], []
    for role in ft.ROLES:
        dataset = ft.dataset_of(plan.job, role)
        if dataset is None or dataset.url is not None:
            continue
        volume = f"{role}-dataset"
        if dataset.persistent_volume_claim is not None:
            claim = dataset.persistent_volume_claim.claim_name
            volumes.append(
                {"name": volume, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
            )
            mounts.append(
                {"name": volume, "mountPath": f"{ft.DATA_ROOT}/{role}-volume", "readOnly": True}
            )
            continue
        if dataset.config_map is not None:
            source = {
                "name": dataset.config_map.name,
                "items": [{"key": dataset.config_map.key, "path": f"{role}.jsonl"}],
            }
        else:  # inline: a key of the operator's ConfigMap
            source = {
                "name": plan.name,
                "items": [{"key": f"{role}.jsonl", "path": f"{role}.jsonl"}],
            }
        volumes.append({"name": volume, "configMap": source})
        mounts.append(
            {
                "name": volume,
                "mountPath": ft.dataset_path(role, dataset),
                "subPath": f"{role}.jsonl",
                "readOnly": True,
            }
        )
    return volumes, mounts


def _config_map(plan: FineTuningPlan) -> dict[str, Any]:
    config = json.dumps(ft.job_configuration(plan), indent=2, sort_keys=True) + "\n"
    return {
        "apiVersion": kinds.CONFIG_MAP.api_version,
        "kind": kinds.CONFIG_MAP.kind,
        "metadata": object_meta(plan, COMPONENT),
        "data": {ft.CONFIG_KEY: config, **ft.inline_datasets(plan.job)},
    }


def _job(plan: FineTuningPlan) -> dict[str, Any]:
    bundle = plan.bundle
    volumes, mounts = _dataset_mounts(plan)
    container = main_container(
        bundle,
        plan.scheduling,
        resources=plan.resources,
        env=[{"name": FINE_TUNING_CONFIG_ENV, "value": bundle.mount_location}, *bundle_env(bundle)],
        command=bundle.command,
        mounts=[
            # The file alone: whatever the image keeps beside it stays visible.
            {
                "name": FINE_TUNING_CONFIG_VOLUME,
                "mountPath": bundle.mount_location,
                "subPath": ft.CONFIG_KEY,
                "readOnly": True,
            },
            *mounts,
        ],
    )
    pod = pod_spec(
        [container],
        bundle,
        plan.scheduling,
        priority_class=plan.config.priority_class_default,
        restart_policy="Never",
        volumes=[
            {
                "name": FINE_TUNING_CONFIG_VOLUME,
                "configMap": {
                    "name": plan.name,
                    "items": [{"key": ft.CONFIG_KEY, "path": ft.CONFIG_KEY}],
                },
            },
            *volumes,
        ],
    )
    return kinds.JOB.object(
        object_meta(plan, COMPONENT),
        {
            "backoffLimit": plan.config.fine_tuning_backoff_limit,
            "activeDeadlineSeconds": plan.config.fine_tuning_active_deadline_seconds,
            "template": {"metadata": {"labels": labels(plan, COMPONENT)}, "spec": pod},
        },
    )


def render_fine_tuning(plan: FineTuningPlan) -> list[dict[str, Any]]:
    """A fine-tuning run: the ConfigMap holding its configuration (and inline datasets), and
    the Job running the bundle with that configuration as one file at ``mount_location``."""
    return [_config_map(plan), _job(plan)]
