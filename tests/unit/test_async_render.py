"""ASYNC endpoints: the queue protocol, the broker setting, the async workload and its status."""

import json

import pytest
from support.templates import plan

from modeltemplate_operator import contract as c
from modeltemplate_operator.forwarder.config import parse_config
from modeltemplate_operator.observed import Observed
from modeltemplate_operator.plan.config import ConfigError, OperatorConfig
from modeltemplate_operator.plan.resolution import ScalingMode
from modeltemplate_operator.render.workloads import render
from modeltemplate_operator.status.conditions import compute_status
from modeltemplate_operator.tasks import protocol as t

BROKER = OperatorConfig(broker_url="redis://redis.modelops.svc:6380/2")
SECRET = OperatorConfig(
    broker_url="rediss://redis.example.com:6379", broker_password_secret=("redis-auth", "pw")
)
ASYNC = {"endpointType": "ASYNC"}
ELASTIC = {"minWorkers": 0, "maxWorkers": 10, "perWorker": 2}


def by_kind(objects):
    return {o["kind"]: o for o in objects}


def forwarder(objs):
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    return {x["name"]: x for x in pod["containers"]}["http-forwarder"]


def test_queue_names_round_trip_and_task_ids_are_checked():
    q = t.queue_name("team-a", "whisper")
    assert q == "modeltemplate:queue:team-a:whisper"
    tid = t.new_task_id()
    assert t.valid_task_id(tid) and not t.valid_task_id("../etc") and tid != t.new_task_id()


def test_launch_get_shape():
    assert t.response("x", None) == {
        "task_id": "x",
        "status": "UNDEFINED",
        "result": None,
        "traceback": None,
        "status_code": None,
        "error": None,
    }
    rec = {"status": "SUCCESS", **t.result_fields(t.SUCCESS, {"text": "hi"}, 200, None)}
    assert t.response("x", rec) == {
        "task_id": "x",
        "status": "SUCCESS",
        "result": {"text": "hi"},
        "traceback": None,
        "status_code": 200,
        "error": None,
    }
    failed = t.response("x", t.result_fields(t.FAILURE, None, 422, "invalid x"))
    assert (failed["status"], failed["status_code"], failed["error"]) == (
        "FAILURE",
        422,
        "invalid x",
    )
    assert t.main_body({"args": {"a": 1}, "url": None}) == {"a": 1}
    assert t.main_body({"a": 1}) == {"a": 1}


def test_broker_settings_from_file_and_env():
    cfg = OperatorConfig.from_sources(
        {"broker": {"url": "redis://r:6379", "passwordSecret": {"name": "redis"}}},
        {"MODELTEMPLATE_BROKER_RESULT_TTL_SECONDS": "600"},
    )
    assert cfg.broker_url == "redis://r:6379"
    assert cfg.broker_password_secret == ("redis", "password")
    assert cfg.broker_result_ttl_seconds == 600
    env = OperatorConfig.from_sources(
        {},
        {
            "MODELTEMPLATE_BROKER_URL": "redis://q:1",
            "MODELTEMPLATE_BROKER_PASSWORD_SECRET": "auth/token",
        },
    )
    assert (env.broker_url, env.broker_password_secret) == ("redis://q:1", ("auth", "token"))
    with pytest.raises(ConfigError, match=r"broker.url .* without a password"):
        OperatorConfig.from_sources({"broker": {"url": "redis://:pw@r:6379"}}, {})
    with pytest.raises(ConfigError, match="broker.url"):
        OperatorConfig.from_sources({}, {"MODELTEMPLATE_BROKER_URL": "http://r"})
    with pytest.raises(ConfigError, match="broker: unknown keys ttl"):
        OperatorConfig.from_sources({"broker": {"ttl": 1}}, {})
    with pytest.raises(ConfigError, match="broker.resultTtlSeconds"):
        OperatorConfig.from_sources({"broker": {"resultTtlSeconds": 0}}, {})


def test_async_with_keda_renders_deployment_scaledobject_pdb_and_no_service():
    p = plan(ELASTIC, keda=True, config=BROKER, **ASYNC)
    assert p.workers.mode is ScalingMode.KEDA
    objs = by_kind(render(p))
    assert list(objs) == ["Deployment", "ScaledObject", "PodDisruptionBudget"]
    dep = objs["Deployment"]
    assert "replicas" not in dep["spec"]  # KEDA owns them
    pod = dep["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 1800
    fwd = forwarder(objs)
    queue = "modeltemplate:queue:team-a:llm"
    for flag in (
        "--mode=async",
        "--broker-url=redis://redis.modelops.svc:6380/2",
        f"--queue={queue}",
        "--per-worker=2",
        "--result-ttl-seconds=86400",
        "--visibility-timeout-seconds=60",
        "--grace-period-seconds=1780",
    ):
        assert flag in fwd["args"]
    assert fwd["env"] == [
        {
            "name": "FORWARDER_CONSUMER_NAME",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
        }
    ]
    so = objs["ScaledObject"]["spec"]
    assert (so["minReplicaCount"], so["maxReplicaCount"]) == (0, 10)
    assert so["scaleTargetRef"]["envSourceContainerName"] == "http-forwarder"
    assert so["triggers"] == [
        {
            "type": "redis-streams",
            "metadata": {
                "address": "redis.modelops.svc:6380",
                "stream": queue,
                "consumerGroup": "forwarders",
                "streamLength": "2",
                "databaseIndex": "2",
            },
        }
    ]


def test_async_password_comes_from_the_secret_and_tls_from_rediss():
    objs = by_kind(render(plan(ELASTIC, keda=True, config=SECRET, **ASYNC)))
    assert {
        "name": c.BROKER_PASSWORD_ENV,
        "valueFrom": {"secretKeyRef": {"name": "redis-auth", "key": "pw"}},
    } in forwarder(objs)["env"]
    assert not any("pw" in a for a in forwarder(objs)["args"] if "secret" in a)
    meta = objs["ScaledObject"]["spec"]["triggers"][0]["metadata"]
    assert meta["passwordFromEnv"] == c.BROKER_PASSWORD_ENV
    assert meta["enableTLS"] == "true" and meta["databaseIndex"] == "0"


def test_async_without_keda_runs_fixed_workers_and_says_why():
    p = plan({"minWorkers": 2, "maxWorkers": 6}, config=BROKER, **ASYNC)
    assert p.workers.mode is ScalingMode.NO_QUEUE_SCALING
    objs = by_kind(render(p))
    assert list(objs) == ["Deployment", "PodDisruptionBudget"]
    assert objs["Deployment"]["spec"]["replicas"] == 2
    zero = plan(ELASTIC, config=BROKER, **ASYNC)
    assert by_kind(render(zero))["Deployment"]["spec"]["replicas"] == 1
    st = compute_status({"metadata": {"generation": 1}}, zero, [], Observed(), "now")
    cond = {x["type"]: x for x in st["conditions"]}
    assert (cond["Autoscaling"]["status"], cond["Autoscaling"]["reason"]) == (
        "False",
        "NoQueueScaling",
    )
    assert "install KEDA" in cond["Autoscaling"]["message"]
    assert st["queue"] == "modeltemplate:queue:team-a:llm"
    assert "endpoints" not in st


def test_async_status_with_keda_and_without_broker():
    st = compute_status(
        {"metadata": {"generation": 1}},
        plan(ELASTIC, keda=True, config=BROKER, **ASYNC),
        [],
        Observed(),
        "now",
    )
    cond = {x["type"]: x for x in st["conditions"]}
    assert (cond["Autoscaling"]["status"], cond["Autoscaling"]["reason"]) == ("True", "KEDA")
    assert cond["Ready"]["reason"] == "Pending"
    none = compute_status({"metadata": {"generation": 1}}, plan(**ASYNC), [], Observed(), "now")
    cond = {x["type"]: x for x in none["conditions"]}
    assert (cond["Ready"]["status"], cond["Ready"]["reason"]) == ("False", "BrokerNotConfigured")
    assert "broker.url" in cond["Ready"]["message"]
    assert cond["Stalled"]["reason"] == "BrokerNotConfigured"
    assert "queue" not in none and "Autoscaling" not in cond


def test_rendered_async_args_parse_in_the_forwarder():
    schema = {"parameters": [{"name": "language", "type": "str", "required": True}]}
    objs = by_kind(
        render(
            plan(ELASTIC, keda=True, config=BROKER, modelRequestParametersSchema=schema, **ASYNC)
        )
    )
    cfg = parse_config(forwarder(objs)["args"], environ={})
    assert cfg.mode == "async" and cfg.queue == "modeltemplate:queue:team-a:llm"
    assert cfg.per_worker == 2 and cfg.grace_period_seconds == 1780
    assert cfg.request_parameters_schema.has_required
    assert json.loads(json.dumps(cfg.broker_url)) == "redis://redis.modelops.svc:6380/2"
