"""Building ModelTemplates for unit tests of the pure layers."""

from __future__ import annotations

import copy
from typing import Any

from modeltemplate_operator.api.validation import parse_manifest
from modeltemplate_operator.plan.config import OperatorConfig
from modeltemplate_operator.plan.resolution import Plan, plan_for

BASE: dict[str, Any] = {
    "apiVersion": "launch.modelops.dev/v1alpha1",
    "kind": "ModelTemplate",
    "metadata": {
        "name": "llm",
        "namespace": "team-a",
        "uid": "uid-1",
        "generation": 3,
        "creationTimestamp": "2026-01-02T03:04:05Z",
    },
    "spec": {
        "endpointType": "SYNC",
        "modelType": "COMPLETION",
        "vendorConfiguration": {
            "bundleConfig": {
                "registry": "docker.io",
                "image": "vllm/vllm-openai",
                "tag": "v0.6.3",
                "command": ["serve"],
                "streamingCommand": ["serve", "--stream"],
            },
            "endpointConfig": {
                "gpus": 1,
                "gpuType": "nvidia-hopper-h100",
                "minWorkers": 1,
                "maxWorkers": 4,
            },
        },
    },
}


def manifest(
    endpoint: dict | None = None, bundle: dict | None = None, **spec: Any
) -> dict[str, Any]:
    m = copy.deepcopy(BASE)
    m["spec"].update(spec)
    m["spec"]["vendorConfiguration"]["endpointConfig"].update(endpoint or {})
    m["spec"]["vendorConfiguration"]["bundleConfig"].update(bundle or {})
    return m


def plan(
    endpoint: dict | None = None,
    bundle: dict | None = None,
    *,
    keda: bool = False,
    config: OperatorConfig | None = None,
    **spec: Any,
) -> Plan:
    template = parse_manifest(manifest(endpoint, bundle, **spec))
    return plan_for(template, config or OperatorConfig(), keda)
