"""Render: a resolved plan -> the desired Kubernetes objects, as plain dicts (pure).

SYNC / STREAMING  Deployment (``main`` on 5005 + ``http-forwarder`` on 5000), Service 80 -> 5000,
                  the autoscaler of the scaling mode (HPA or KEDA ScaledObject), a PDB.
BATCH             an Indexed Job (completions = parallelism = maxWorkers).
ASYNC             Deployment (``main`` + the forwarder in ``--mode async`` consuming the
                  endpoint's task queue; no Service: nothing calls the pods), a KEDA
                  ScaledObject on the queue's length (redis-streams trigger) when KEDA is
                  installed, a PDB. Nothing without a broker in the operator's settings
                  (status says so).

Every workload's pod is the worker pod of :mod:`.pod`; this module adds what only endpoints
have (ports, probes, the forwarder sidecar). Fine-tuning runs: :mod:`.finetuning`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from .. import contract as c
from ..api import kinds
from ..api.models import EndpointType
from ..plan.instantiate import parameter_env
from ..plan.resolution import Plan, Rollout, RolloutMode, ScalingMode
from ..tasks import protocol as t
from .meta import labels, object_meta, selector_labels
from .pod import GRACE_PERIOD_SECONDS, bundle_env, main_container, pod_spec

#: An async forwarder's own drain deadline: inside the pod's 1800 s, leaving time to return
#: unfinished tasks to the queue.
ASYNC_DRAIN_SECONDS = c.ASYNC_TERMINATION_GRACE_SECONDS - 20
FORWARDER_RESOURCES = {"cpu": "1", "memory": "100M"}
FORWARDER_CONTAINER = "http-forwarder"


def per_worker(plan: Plan) -> int:
    """The concurrent requests one worker takes (perWorker, a model's override applied): what
    the forwarder admits and what every autoscaler targets."""
    return plan.workers.per_worker


def _main_container(plan: Plan) -> dict[str, Any]:
    bundle = plan.spec.bundle_config
    ec = plan.spec.endpoint_config
    streaming = plan.spec.endpoint_type is EndpointType.STREAMING
    env = [
        {"name": "PORT", "value": str(c.MAIN_PORT)},
        {"name": "HEALTHCHECK_ROUTE", "value": bundle.healthcheck_route},
        {"name": "PREDICT_ROUTE", "value": bundle.predict_route},
        {"name": "STREAMING_PREDICT_ROUTE", "value": bundle.streaming_predict_route},
        *bundle_env(bundle),
    ]
    if plan.parameters is not None:
        env += parameter_env(plan.parameters)
    return main_container(
        bundle,
        plan.scheduling,
        resources={
            "cpu": str(ec.cpus),
            "memory": str(ec.memory),
            "ephemeral-storage": str(ec.storage),
        },
        env=env,
        command=(bundle.streaming_command or bundle.command) if streaming else bundle.command,
    )


def _is_async(plan: Plan) -> bool:
    return plan.spec.endpoint_type is EndpointType.ASYNC


def queue_name(plan: Plan) -> str:
    return t.queue_name(plan.namespace, plan.name)


def _forwarder_container(plan: Plan) -> dict[str, Any]:
    bundle = plan.spec.bundle_config
    args = []
    env: list[dict[str, Any]] = []
    if _is_async(plan):
        cfg = plan.config
        args += [
            c.flag(c.MODE_FLAG, c.MODE_ASYNC),
            c.flag(c.BROKER_URL_FLAG, cfg.broker_url),
            c.flag(c.QUEUE_FLAG, queue_name(plan)),
            c.flag(c.RESULT_TTL_FLAG, cfg.broker_result_ttl_seconds),
            c.flag(c.VISIBILITY_TIMEOUT_FLAG, cfg.broker_visibility_timeout_seconds),
            c.flag(c.GRACE_PERIOD_FLAG, ASYNC_DRAIN_SECONDS),
        ]
        env.append(
            {
                "name": "FORWARDER_CONSUMER_NAME",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
            }
        )
        if cfg.broker_password_secret:
            name, key = cfg.broker_password_secret
            env.append(
                {
                    "name": c.BROKER_PASSWORD_ENV,
                    "valueFrom": {"secretKeyRef": {"name": name, "key": key}},
                }
            )
    args += [
        c.flag(c.PORT_FLAG, c.FORWARDER_PORT),
        c.flag(c.UPSTREAM_FLAG, f"http://127.0.0.1:{c.MAIN_PORT}"),
        c.flag(c.PREDICT_ROUTE_FLAG, bundle.predict_route),
        c.flag(c.STREAMING_PREDICT_ROUTE_FLAG, bundle.streaming_predict_route),
        c.flag(c.HEALTHCHECK_ROUTE_FLAG, bundle.healthcheck_route),
        c.flag(c.PROTOCOL_FLAG, plan.spec.endpoint_protocol.value),
        c.flag(c.PER_WORKER_FLAG, per_worker(plan)),
    ]
    schema = plan.spec.model_request_parameters_schema
    if schema is not None:
        payload = schema.model_dump(mode="json", by_alias=True, exclude_none=True)
        args.append(
            c.flag(c.REQUEST_PARAMETERS_SCHEMA_FLAG, json.dumps(payload, separators=(",", ":")))
        )
    container: dict[str, Any] = {
        "name": FORWARDER_CONTAINER,
        "image": plan.config.forwarder_image,
        "command": [c.FORWARDER_COMMAND],
        "args": args,
        "ports": [{"name": "http", "containerPort": c.FORWARDER_PORT, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": c.READY_PATH, "port": c.FORWARDER_PORT},
            "periodSeconds": 5,
            "timeoutSeconds": 5,
        },
        "livenessProbe": {
            "httpGet": {"path": c.LIVE_PATH, "port": c.FORWARDER_PORT},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 6,
        },
        "resources": {"requests": dict(FORWARDER_RESOURCES), "limits": dict(FORWARDER_RESOURCES)},
    }
    if env:
        container["env"] = env
    return container


def _pod_spec(plan: Plan, containers: list[dict[str, Any]]) -> dict[str, Any]:
    config = plan.config
    high = plan.spec.endpoint_config.high_priority
    return pod_spec(
        containers,
        plan.spec.bundle_config,
        plan.scheduling,
        priority_class=config.priority_class_high if high else config.priority_class_default,
        grace_period_seconds=c.ASYNC_TERMINATION_GRACE_SECONDS
        if _is_async(plan)
        else GRACE_PERIOD_SECONDS,
    )


def rolling_update(rollout: Rollout) -> dict[str, int]:
    """A new worker before an old one stops, unless there is no room for it (:mod:`.gpu_rollout`):
    then one old worker at a time is replaced in place."""
    if rollout.mode is RolloutMode.IN_PLACE:
        return {"maxSurge": 0, "maxUnavailable": 1}
    return {"maxSurge": 1, "maxUnavailable": 0}


def _deployment(plan: Plan) -> dict[str, Any]:
    main = _main_container(plan)
    main["ports"] = [{"name": "http-main", "containerPort": c.MAIN_PORT, "protocol": "TCP"}]
    bundle = plan.spec.bundle_config
    main["readinessProbe"] = {
        "httpGet": {"path": bundle.healthcheck_route, "port": c.MAIN_PORT},
        "initialDelaySeconds": bundle.readiness_initial_delay_seconds,
        "periodSeconds": 5,
        "timeoutSeconds": 5,
    }
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(plan)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": rolling_update(plan.rollout)},
        "template": {
            "metadata": {"labels": labels(plan, "endpoint")},
            "spec": _pod_spec(plan, [main, _forwarder_container(plan)]),
        },
    }
    replicas = plan.workers.fixed_replicas
    if replicas is not None:
        spec["replicas"] = replicas
    return kinds.DEPLOYMENT.object(
        object_meta(plan, "endpoint"),
        spec,
    )


def _service(plan: Plan) -> dict[str, Any]:
    return kinds.SERVICE.object(
        object_meta(plan, "endpoint"),
        {
            "type": "ClusterIP",
            "selector": selector_labels(plan),
            "ports": [
                {
                    "name": "http",
                    "port": c.SERVICE_PORT,
                    "targetPort": c.FORWARDER_PORT,
                    "protocol": "TCP",
                }
            ],
        },
    )


def _scale_target(plan: Plan) -> dict[str, str]:
    d = kinds.DEPLOYMENT
    return {"apiVersion": d.api_version, "kind": d.kind, "name": plan.name}


def _hpa(plan: Plan) -> dict[str, Any]:
    return kinds.HPA.object(
        object_meta(plan, "autoscaler"),
        {
            "scaleTargetRef": _scale_target(plan),
            "minReplicas": plan.workers.min,
            "maxReplicas": plan.workers.max,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": c.HPA_METRIC},
                        "target": {
                            "type": "AverageValue",
                            "averageValue": str(per_worker(plan)),
                        },
                    },
                }
            ],
        },
    )


def _scaled_object(plan: Plan) -> dict[str, Any]:
    query = f'sum({c.IN_FLIGHT_METRIC}{{namespace="{plan.namespace}",modeltemplate="{plan.name}"}})'
    return kinds.SCALED_OBJECT.object(
        object_meta(plan, "autoscaler"),
        {
            "scaleTargetRef": _scale_target(plan),
            "minReplicaCount": plan.workers.min,
            "maxReplicaCount": plan.workers.max,
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": plan.config.keda_prometheus_url,
                        "query": query,
                        "threshold": str(per_worker(plan)),
                    },
                }
            ],
        },
    )


def _queue_scaled_object(plan: Plan) -> dict[str, Any]:
    """KEDA's redis-streams trigger on the stream's length: the forwarders delete entries once
    acknowledged, so XLEN is waiting + in-flight tasks, and KEDA keeps
    ceil(XLEN / perWorker) workers (none while the queue is empty, when minWorkers is 0)."""
    broker = urlsplit(plan.config.broker_url)
    metadata = {
        "address": f"{broker.hostname}:{broker.port or 6379}",
        "stream": queue_name(plan),
        "consumerGroup": t.CONSUMER_GROUP,
        "streamLength": str(per_worker(plan)),
        "databaseIndex": (broker.path or "/0").strip("/") or "0",
    }
    if broker.scheme == "rediss":
        metadata["enableTLS"] = "true"
    if plan.config.broker_password_secret:
        metadata["passwordFromEnv"] = c.BROKER_PASSWORD_ENV
    return kinds.SCALED_OBJECT.object(
        object_meta(plan, "autoscaler"),
        {
            "scaleTargetRef": {
                **_scale_target(plan),
                "envSourceContainerName": FORWARDER_CONTAINER,
            },
            "minReplicaCount": plan.workers.min,
            "maxReplicaCount": plan.workers.max,
            "triggers": [{"type": "redis-streams", "metadata": metadata}],
        },
    )


def _pdb(plan: Plan) -> dict[str, Any]:
    return kinds.PDB.object(
        object_meta(plan, "endpoint"),
        {"maxUnavailable": "50%", "selector": {"matchLabels": selector_labels(plan)}},
    )


def _job(plan: Plan) -> dict[str, Any]:
    workers = max(1, plan.workers.max)
    pod = _pod_spec(plan, [_main_container(plan)])
    # Set last, where it has always been in the rendered Job.
    pod["restartPolicy"] = "Never"
    return kinds.JOB.object(
        object_meta(plan, "batch"),
        {
            "completionMode": "Indexed",
            "completions": workers,
            "parallelism": workers,
            "backoffLimit": 3,
            "template": {"metadata": {"labels": labels(plan, "batch")}, "spec": pod},
        },
    )


def render(plan: Plan) -> list[dict[str, Any]]:
    """Desired children of a template, in apply order."""
    endpoint_type = plan.spec.endpoint_type
    if plan.pure:
        return []
    if endpoint_type is EndpointType.ASYNC:
        if not plan.config.broker_url:
            return []
        objects = [_deployment(plan)]
        if plan.workers.mode is ScalingMode.KEDA:
            objects.append(_queue_scaled_object(plan))
        objects.append(_pdb(plan))
        return objects
    if endpoint_type is EndpointType.BATCH:
        return [_job(plan)]
    objects = [_deployment(plan), _service(plan)]
    if plan.workers.mode is ScalingMode.HPA:
        objects.append(_hpa(plan))
    elif plan.workers.mode is ScalingMode.KEDA:
        objects.append(_scaled_object(plan))
    objects.append(_pdb(plan))
    return objects
