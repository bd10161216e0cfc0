"""Render: the Launch-style objects of each endpoint type, field by field."""

import json

import pytest
from support.templates import plan

from modeltemplate_operator.plan.config import OperatorConfig
from modeltemplate_operator.render.workloads import render


def by_kind(objects):
    return {o["kind"]: o for o in objects}


def containers(deployment):
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def test_sync_endpoint_renders_deployment_service_hpa_pdb():
    objs = by_kind(render(plan()))
    assert list(objs) == ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"]
    for obj in objs.values():
        meta = obj["metadata"]
        assert meta["name"] == "llm" and meta["namespace"] == "team-a"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "modeltemplate-operator"
        assert meta["labels"]["app.kubernetes.io/instance"] == "llm"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "launch.modelops.dev/v1alpha1",
                "kind": "ModelTemplate",
                "name": "llm",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def test_main_container_is_launch_style():
    dep = by_kind(render(plan(bundle={"env": {"MODEL": "x"}, "readinessInitialDelaySeconds": 30})))[
        "Deployment"
    ]
    main = containers(dep)["main"]
    assert main["image"] == "docker.io/vllm/vllm-openai:v0.6.3"
    assert main["command"] == ["serve"]
    assert main["ports"] == [{"name": "http-main", "containerPort": 5005, "protocol": "TCP"}]
    assert main["readinessProbe"] == {
        "httpGet": {"path": "/readyz", "port": 5005},
        "initialDelaySeconds": 30,
        "periodSeconds": 5,
        "timeoutSeconds": 5,
    }
    assert "livenessProbe" not in main
    expected = {"cpu": "3", "memory": "8Gi", "ephemeral-storage": "16Gi", "nvidia.com/gpu": "1"}
    assert main["resources"] == {"requests": expected, "limits": expected}
    assert {"name": "MODEL", "value": "x"} in main["env"]
    assert {"name": "PORT", "value": "5005"} in main["env"]
    assert main["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]


def test_pod_spec_scheduling_priority_rollout():
    dep = by_kind(render(plan(endpoint={"highPriority": True})))["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"k8s.amazonaws.com/accelerator": "nvidia-hopper-h100"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert pod["priorityClassName"] == "modeltemplate-high-priority"
    assert pod["terminationGracePeriodSeconds"] == 600
    assert pod["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    assert dep["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert "replicas" not in dep["spec"]  # the HPA owns it
    low = by_kind(render(plan()))["Deployment"]["spec"]["template"]["spec"]
    assert low["priorityClassName"] == "modeltemplate-default-priority"


def test_forwarder_sidecar_carries_routes_protocol_and_concurrency():
    schema = {"parameters": [{"name": "temperature", "type": "float", "required": False}]}
    p = plan(
        endpoint={"perWorker": 7},
        endpointProtocol="VLLM",
        modelRequestParametersSchema=schema,
        config=OperatorConfig(forwarder_image="registry.local/fwd:1"),
    )
    fwd = containers(by_kind(render(p))["Deployment"])["http-forwarder"]
    assert fwd["image"] == "registry.local/fwd:1"
    assert fwd["ports"][0]["containerPort"] == 5000
    assert fwd["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 5000}
    args = dict(a.removeprefix("--").split("=", 1) for a in fwd["args"])
    assert args["upstream"] == "http://127.0.0.1:5005"
    assert args["predict-route"] == "/predict"
    assert args["streaming-predict-route"] == "/generate_streaming"
    assert args["protocol"] == "VLLM" and args["per-worker"] == "7"
    assert json.loads(args["request-parameters-schema"])["parameters"][0]["name"] == "temperature"
    assert fwd["resources"]["requests"] == {"cpu": "1", "memory": "100M"}


def test_streaming_uses_streaming_command():
    dep = by_kind(render(plan(endpointType="STREAMING")))["Deployment"]
    assert containers(dep)["main"]["command"] == ["serve", "--stream"]


def test_service_routes_port_80_to_the_forwarder():
    svc = by_kind(render(plan()))["Service"]
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": 5000, "protocol": "TCP"}
    ]
    assert svc["spec"]["selector"] == {
        "app.kubernetes.io/name": "modeltemplate",
        "app.kubernetes.io/instance": "llm",
    }


def test_hpa_targets_request_concurrency_per_worker():
    hpa = by_kind(render(plan(endpoint={"minWorkers": 2, "maxWorkers": 9, "perWorker": 5})))[
        "HorizontalPodAutoscaler"
    ]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 9
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "request-concurrency-average"},
                "target": {"type": "AverageValue", "averageValue": "5"},
            },
        }
    ]


def test_fixed_workers_set_replicas_and_render_no_autoscaler():
    objs = by_kind(render(plan(endpoint={"minWorkers": 3, "maxWorkers": 3})))
    assert "HorizontalPodAutoscaler" not in objs and "ScaledObject" not in objs
    assert objs["Deployment"]["spec"]["replicas"] == 3


def test_scale_to_zero_uses_keda_when_installed_and_one_worker_otherwise():
    with_keda = by_kind(render(plan(endpoint={"minWorkers": 0, "maxWorkers": 5}, keda=True)))
    so = with_keda["ScaledObject"]
    assert so["spec"]["minReplicaCount"] == 0 and so["spec"]["maxReplicaCount"] == 5
    assert so["spec"]["triggers"][0]["metadata"]["threshold"] == "10"
    assert "replicas" not in with_keda["Deployment"]["spec"]
    without = by_kind(render(plan(endpoint={"minWorkers": 0, "maxWorkers": 5}, keda=False)))
    assert "ScaledObject" not in without and "HorizontalPodAutoscaler" not in without
    assert without["Deployment"]["spec"]["replicas"] == 1


def test_cpu_only_template_has_no_gpu_anything():
    dep = by_kind(render(plan(endpoint={"gpus": 0, "gpuType": None})))["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert not any(
        k.startswith("nvidia.com") for k in containers(dep)["main"]["resources"]["limits"]
    )


def test_mig_mixed_requests_the_slice_resource():
    dep = by_kind(render(plan(endpoint={"gpuType": "nvidia-hopper-h100-1g20gb"})))["Deployment"]
    assert containers(dep)["main"]["resources"]["limits"]["nvidia.com/mig-1g.20gb"] == "1"


def test_secret_env_and_image_pull_secrets():
    p = plan(
        bundle={
            "secretEnv": [{"name": "HF_TOKEN", "secretKeyRef": {"name": "hf", "key": "token"}}],
            "imagePullSecrets": [{"name": "regcred"}],
        }
    )
    dep = by_kind(render(p))["Deployment"]
    main = containers(dep)["main"]
    assert {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}},
    } in main["env"]
    assert dep["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert "token" not in json.dumps(main["env"]).replace('"key": "token"', "")


def test_batch_renders_an_indexed_job():
    [job] = render(plan(endpointType="BATCH", endpoint={"minWorkers": 2, "maxWorkers": 2}))
    assert job["kind"] == "Job"
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 2
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert [c["name"] for c in pod["containers"]] == ["main"]


@pytest.mark.parametrize("endpoint_type", ["ASYNC"])
def test_async_renders_nothing_without_a_broker(endpoint_type):
    assert render(plan(endpointType=endpoint_type)) == []
