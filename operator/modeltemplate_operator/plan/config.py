"""Operator configuration: one environment prefix, plus a YAML file (the mounted ConfigMap).

Precedence: built-in defaults < the config file < environment variables.

================================  ==========================================================
environment variable              meaning (config file key)
================================  ==========================================================
MODELTEMPLATE_CONFIG_FILE         path of the YAML config file (the ConfigMap's config.yaml)
MODELTEMPLATE_GPU_PRESET          node labelling preset: launch | nvidia-gfd | gke (gpuPreset)
MODELTEMPLATE_MIG_STRATEGY        single | mixed (migStrategy)
MODELTEMPLATE_FORWARDER_IMAGE     image of the http-forwarder sidecar (forwarderImage)
MODELTEMPLATE_PRIORITY_CLASS_HIGH     PriorityClass of highPriority templates (priorityClasses.high)
MODELTEMPLATE_PRIORITY_CLASS_DEFAULT  PriorityClass of the others (priorityClasses.default)
MODELTEMPLATE_KEDA_PROMETHEUS_URL Prometheus the KEDA trigger queries (keda.prometheusUrl)
MODELTEMPLATE_CLUSTER_DOMAIN      DNS domain of Service URLs in status (clusterDomain)
MODELTEMPLATE_BROKER_URL          task queue of ASYNC endpoints: redis://host:port[/db] or
                                  rediss://... (broker.url); unset: ASYNC templates are not served
MODELTEMPLATE_BROKER_PASSWORD_SECRET  ``name/key`` of a Secret holding the broker's password, in
                                  each namespace that runs ASYNC endpoints (broker.passwordSecret:
                                  {name, key}); the pods read it as an env var from secretKeyRef
MODELTEMPLATE_BROKER_RESULT_TTL_SECONDS   how long task results are kept (broker.resultTtlSeconds,
                                  default 86400)
MODELTEMPLATE_BROKER_VISIBILITY_TIMEOUT_SECONDS  a task held this long by a forwarder that
                                  stopped renewing it (killed, node lost) is run again
                                  (broker.visibilityTimeoutSeconds, default 60)
MODELTEMPLATE_NAMESPACE           watch only this namespace (default: all)
MODELTEMPLATE_LOG_FORMAT          json | text
MODELTEMPLATE_LOG_LEVEL           debug | info | warning | error (read by __main__: --log-level)
MODELTEMPLATE_WORKERS             templates reconciled at once (default 32)
MODELTEMPLATE_METRICS_PORT        serve Prometheus metrics on this port (default: off)
MODELTEMPLATE_PEERING_PRIORITY    this replica's peering priority (default: drawn at random)
MODELTEMPLATE_PEERING_LIFETIME_SECONDS  how long a replica's peering entry stays valid without
                                  renewal: a standby takes over this long after the active
                                  replica dies (peering.lifetimeSeconds, default 60, at least 5)
MODELTEMPLATE_MODEL_ROLLOUT_MAX_UNAVAILABLE  models of one template moving to its new generation
                                  at once (modelRollout.maxUnavailable, default 1)
MODELTEMPLATE_FINE_TUNING_ACTIVE_DEADLINE_SECONDS  a fine-tuning Job's activeDeadlineSeconds
                                  (fineTuning.activeDeadlineSeconds, default 7 days)
MODELTEMPLATE_FINE_TUNING_BACKOFF_LIMIT  pod retries of a fine-tuning Job
                                  (fineTuning.backoffLimit, default 0)
MODELTEMPLATE_FINE_TUNING_OUTPUT_PREFIX  where fine-tuned weights go when a job names no
                                  spec.output: <prefix>/<namespace>/<name> (fineTuning.outputPrefix)
================================  ==========================================================

``gpuClasses`` in the file overrides the preset per gpuType::

    gpuClasses:
      nvidia-hopper-h100:
        resourceName: nvidia.com/gpu
        nodeSelector: {node.example.com/gpu: h100}
        tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ENV_PREFIX = "MODELTEMPLATE_"
GPU_PRESETS = ("launch", "nvidia-gfd", "gke")
MIG_STRATEGIES = ("single", "mixed")


class ConfigError(ValueError):
    """Operator configuration that cannot be used; the message names the setting."""


@dataclass(frozen=True)
class GpuClassOverride:
    resource_name: str | None = None
    node_selector: Mapping[str, str] | None = None
    tolerations: tuple[Mapping[str, Any], ...] | None = None


@dataclass(frozen=True)
class OperatorConfig:
    gpu_preset: str = "launch"
    mig_strategy: str = "mixed"
    gpu_classes: Mapping[str, GpuClassOverride] = field(default_factory=dict)
    forwarder_image: str = "ghcr.io/modelops-dev/modeltemplate-operator:0.1.0"
    priority_class_high: str = "modeltemplate-high-priority"
    priority_class_default: str = "modeltemplate-default-priority"
    keda_prometheus_url: str = "http://prometheus-server.monitoring.svc.cluster.local"
    cluster_domain: str = "cluster.local"
    namespace: str | None = None
    log_format: str = "json"
    workers: int = 32
    model_rollout_max_unavailable: int = 1
    peering_lifetime_seconds: int = 60
    broker_url: str = ""
    broker_password_secret: tuple[str, str] | None = None
    broker_result_ttl_seconds: int = 86400
    broker_visibility_timeout_seconds: int = 60
    fine_tuning_active_deadline_seconds: int = 7 * 24 * 3600
    fine_tuning_backoff_limit: int = 0
    fine_tuning_output_prefix: str = "s3://modeltemplate-fine-tuning"

    def __post_init__(self) -> None:
        if self.broker_url:
            parts = urlsplit(self.broker_url)
            if parts.scheme not in ("redis", "rediss") or not parts.hostname or parts.password:
                raise ConfigError(
                    f"broker.url ({self.broker_url}) must be redis://host:port[/db] or "
                    "rediss://host:port[/db], without a password (use broker.passwordSecret)"
                )
        for attr, key in (
            ("broker_result_ttl_seconds", "broker.resultTtlSeconds"),
            ("broker_visibility_timeout_seconds", "broker.visibilityTimeoutSeconds"),
        ):
            value = getattr(self, attr)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{key} ({value}) must be a positive integer")
        if self.gpu_preset not in GPU_PRESETS:
            raise ConfigError(
                f"gpuPreset ({self.gpu_preset}) must be one of {', '.join(GPU_PRESETS)}"
            )
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"workers ({self.workers}) must be a positive integer")
        limit = self.model_rollout_max_unavailable
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ConfigError(f"modelRollout.maxUnavailable ({limit}) must be a positive integer")
        for name, value, low in (
            ("peering.lifetimeSeconds", self.peering_lifetime_seconds, 5),
            ("fineTuning.activeDeadlineSeconds", self.fine_tuning_active_deadline_seconds, 1),
            ("fineTuning.backoffLimit", self.fine_tuning_backoff_limit, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"{name} ({value}) must be an integer >= {low}")
        if self.mig_strategy not in MIG_STRATEGIES:
            raise ConfigError(
                f"migStrategy ({self.mig_strategy}) must be one of {', '.join(MIG_STRATEGIES)}"
            )

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        env = os.environ if env is None else env
        path = env.get(f"{ENV_PREFIX}CONFIG_FILE")
        data = yaml.safe_load(Path(path).read_text()) if path else None
        return cls.from_sources(data or {}, env)

    @classmethod
    def from_sources(cls, data: Mapping[str, Any], env: Mapping[str, str]) -> OperatorConfig:
        known = {
            "gpuPreset",
            "migStrategy",
            "gpuClasses",
            "forwarderImage",
            "priorityClasses",
            "keda",
            "clusterDomain",
            "modelRollout",
            "peering",
            "broker",
            "fineTuning",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(unknown)}")
        priorities = data.get("priorityClasses") or {}
        broker = data.get("broker") or {}
        extra = sorted(
            set(broker) - {"url", "passwordSecret", "resultTtlSeconds", "visibilityTimeoutSeconds"}
        )
        if extra:
            raise ConfigError(f"broker: unknown keys {', '.join(extra)}")
        peering = data.get("peering") or {}
        extra = sorted(set(peering) - {"lifetimeSeconds"})
        if extra:
            raise ConfigError(f"peering: unknown keys {', '.join(extra)}")
        fine_tuning = data.get("fineTuning") or {}
        extra = sorted(set(fine_tuning) - {"activeDeadlineSeconds", "backoffLimit", "outputPrefix"})
        if extra:
            raise ConfigError(f"fineTuning: unknown keys {', '.join(extra)}")
        values: dict[str, Any] = {
            "gpu_preset": data.get("gpuPreset"),
            "mig_strategy": data.get("migStrategy"),
            "gpu_classes": _gpu_classes(data.get("gpuClasses") or {}),
            "forwarder_image": data.get("forwarderImage"),
            "priority_class_high": priorities.get("high"),
            "priority_class_default": priorities.get("default"),
            "keda_prometheus_url": (data.get("keda") or {}).get("prometheusUrl"),
            "cluster_domain": data.get("clusterDomain"),
            "model_rollout_max_unavailable": (data.get("modelRollout") or {}).get("maxUnavailable"),
            "peering_lifetime_seconds": peering.get("lifetimeSeconds"),
            "broker_url": broker.get("url"),
            "broker_password_secret": _secret_ref(broker.get("passwordSecret")),
            "broker_result_ttl_seconds": broker.get("resultTtlSeconds"),
            "broker_visibility_timeout_seconds": broker.get("visibilityTimeoutSeconds"),
            "fine_tuning_active_deadline_seconds": fine_tuning.get("activeDeadlineSeconds"),
            "fine_tuning_backoff_limit": fine_tuning.get("backoffLimit"),
            "fine_tuning_output_prefix": fine_tuning.get("outputPrefix"),
        }
        for attr in (
            "gpu_preset",
            "mig_strategy",
            "forwarder_image",
            "priority_class_high",
            "priority_class_default",
            "keda_prometheus_url",
            "cluster_domain",
            "namespace",
            "log_format",
            "broker_url",
            "fine_tuning_output_prefix",
        ):
            from_env = env.get(ENV_PREFIX + attr.upper())
            if from_env:
                values[attr] = from_env
        secret = env.get(ENV_PREFIX + "BROKER_PASSWORD_SECRET")
        if secret:
            name, _, key = secret.partition("/")
            values["broker_password_secret"] = _secret_ref({"name": name, "key": key or None})
        for attr in (
            "workers",
            "model_rollout_max_unavailable",
            "peering_lifetime_seconds",
            "broker_result_ttl_seconds",
            "broker_visibility_timeout_seconds",
            "fine_tuning_active_deadline_seconds",
            "fine_tuning_backoff_limit",
        ):
            raw = env.get(ENV_PREFIX + attr.upper())
            if raw:
                try:
                    values[attr] = int(raw)
                except ValueError:
                    name = ENV_PREFIX + attr.upper()
                    raise ConfigError(f"{name} ({raw}) must be an integer") from None
        return replace(cls(), **{k: v for k, v in values.items() if v is not None})


def _secret_ref(raw: Any) -> tuple[str, str] | None:
    """``{name, key}`` of the broker password's Secret (key defaults to ``password``)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not raw.get("name"):
        raise ConfigError("broker.passwordSecret must be {name: <secret>, key: <key>}")
    return (str(raw["name"]), str(raw.get("key") or "password"))


def _gpu_classes(raw: Mapping[str, Any]) -> dict[str, GpuClassOverride]:
    from ..api.models import GpuType

    out = {}
    for gpu_type, entry in raw.items():
        if gpu_type not in {t.value for t in GpuType}:
            raise ConfigError(f"gpuClasses.{gpu_type}: not a known gpuType")
        extra = set(entry) - {"resourceName", "nodeSelector", "tolerations"}
        if extra:
            raise ConfigError(f"gpuClasses.{gpu_type}: unknown keys {', '.join(sorted(extra))}")
        tolerations = entry.get("tolerations")
        out[gpu_type] = GpuClassOverride(
            resource_name=entry.get("resourceName"),
            node_selector=entry.get("nodeSelector"),
            tolerations=tuple(tolerations) if tolerations is not None else None,
        )
    return out
