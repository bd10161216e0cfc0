"""Fine-tuning jobs, the pure core: the CRD model, checks, plan and render, phase and status."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from modeltemplate_operator.api.crdgen import crd_dict
from modeltemplate_operator.api.kinds import FINE_TUNING_JOB
from modeltemplate_operator.api.models import FineTuningJob, FineTuningPhase, Model
from modeltemplate_operator.api.validation import parse_manifest
from modeltemplate_operator.plan import finetuning as ft
from modeltemplate_operator.plan.config import OperatorConfig
from modeltemplate_operator.render import render_fine_tuning
from modeltemplate_operator.status import finetuning as fts

pytestmark = pytest.mark.unit
SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
GOOD = [{"input": "a", "output": "b"}, {"input": "c", "output": "d"}]


def template(**bundle):
    doc = yaml.safe_load((SAMPLES / "finetunable-llm-a100.yaml").read_text())
    doc["metadata"].update(namespace="team", uid="t-uid")
    doc["spec"]["vendorConfiguration"]["fineTuningJobBundleConfig"].update(bundle)
    return parse_manifest(doc)


def job(**spec) -> FineTuningJob:
    body = {"templateRef": {"name": "mistral-7b-finetunable"}, "trainingDataset": {"inline": GOOD}}
    body.update(spec)
    return FineTuningJob.model_validate(
        {"metadata": {"name": "tune", "namespace": "team", "uid": "j-uid"}, "spec": body}
    )


def fields(problems):
    return [p["field"] for p in problems]


# -- the resource ----------------------------------------------------------------------------


def test_crd_names_columns_and_rules():
    crd = crd_dict(FINE_TUNING_JOB)
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "FineTuningJob",
        "finetuningjobs",
        ["ftj"],
    )
    assert crd["spec"]["scope"] == "Namespaced"
    [version] = crd["spec"]["versions"]
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Phase", "Template", "Age"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["hyperparameters"]["x-kubernetes-preserve-unknown-fields"] is True
    assert [r["rule"] for r in spec["x-kubernetes-validations"]] == [
        "has(self.templateRef) != has(self.modelRef)"
    ]


@pytest.mark.parametrize(
    "dataset",
    [
        {},
        {"url": "s3://b/t.jsonl", "inline": GOOD},
        {"persistentVolumeClaim": {"claimName": "data", "path": "t.jsonl"}, "url": "s3://b/x"},
    ],
)
def test_a_dataset_has_exactly_one_source(dataset):
    with pytest.raises(ValidationError, match="exactly one of url, persistentVolumeClaim"):
        job(trainingDataset=dataset)


def test_template_or_model_not_both():
    with pytest.raises(ValidationError, match="exactly one of templateRef, modelRef"):
        job(modelRef={"name": "m"})


# -- checks ----------------------------------------------------------------------------------


def test_a_valid_job_has_no_problem():
    assert ft.check(job(outputModelName="tuned"), template()) == []


def test_overrides_above_the_bundle_are_named():
    problems = ft.check(job(resources={"memory": "65Gi", "cpus": 8, "gpus": 3}), template())
    assert fields(problems) == ["spec.resources.memory", "spec.resources.gpus"]
    assert problems[0]["problem"] == (
        "65Gi is above the template's fineTuningJobBundleConfig.resources.memory (64Gi)"
    )
    assert ft.check(job(resources={"memory": "64Gi", "gpus": 1}), template()) == []


def test_a_template_without_a_bundle_cannot_be_fine_tuned():
    t = template()
    t.spec.vendor_configuration.fine_tuning_job_bundle_config = None
    [problem] = ft.check(job(), t)
    assert problem["field"] == "spec.templateRef.name"
    assert "no vendorConfiguration.fineTuningJobBundleConfig" in problem["problem"]


def test_generation_rows_use_sgp_input_and_output():
    rows = [GOOD[0], {"prompt": "p", "response": "r"}, {"input": 1, "output": "x"}]
    [problem] = ft.check(job(trainingDataset={"inline": rows}), template())
    assert problem["field"] == "spec.trainingDataset.inline"
    assert problem["problem"] == (
        "2 of 3 rows do not match the GENERATION schema: "
        "row 1: missing input, output (GENERATION rows need input and output); "
        "row 2: input must be a string"
    )
    # A JSON Lines row that is not an object (inline rows are objects by the schema).
    [problem] = ft.check_rows(["text"], ft.TrainingDatasetSchemaType.GENERATION, "x")
    assert problem["problem"].endswith("row 0: must be an object, not str")


def test_reranking_rows():
    t = template(trainingDatasetSchemaType="RERANKING_QUESTIONS")
    good = {"question": "q", "positive": "p", "negative": ["n1", "n2"]}
    bad = [
        good,
        {"question": "q", "positive": []},
        {"question": "", "positive": "p", "negative": "n"},
    ]
    [problem] = ft.check(job(trainingDataset={"inline": bad}), t)
    assert "row 1: missing negative" in problem["problem"]
    assert "row 2: question must be a non-empty string" in problem["problem"]
    assert ft.check(job(trainingDataset={"inline": [good]}), t) == []


def test_configmap_rows_are_checked_as_json_lines():
    j = job(validationDataset={"configMap": {"name": "cm", "key": "v.jsonl"}})
    text = json.dumps(GOOD[0]) + "\n\n{oops\n" + json.dumps({"input": "x"}) + "\n"
    [problem] = ft.check(j, template(), {"validation": ft.DatasetRows(text=text)})
    assert problem["field"] == "spec.validationDataset.configMap (cm/v.jsonl)"
    assert "2 of 3 rows" in problem["problem"] and "row 1: not JSON" in problem["problem"]
    missing = ft.DatasetRows(error="ConfigMap 'cm' not found", missing=True)
    [problem] = ft.check(j, template(), {"validation": missing})
    assert problem["problem"] == "ConfigMap 'cm' not found"
    [problem] = ft.check(j, template(), {"validation": ft.DatasetRows(text="\n")})
    assert problem["problem"] == "the dataset has no rows"


def test_many_bad_rows_are_summarised():
    rows = [{"input": "x"}] * 30
    [problem] = ft.check(job(trainingDataset={"inline": rows}), template())
    assert problem["problem"].endswith("; and 10 more")


def test_the_output_model_must_fit_the_templates_parameters():
    problems = ft.check(job(outputModelName="tuned", outputWeightsParameter="weights"), template())
    assert fields(problems) == [
        "spec.outputWeightsParameter",
        "spec.outputModelName: its creationParameters.model_weights_uri",
    ]
    assert "declared: max_model_len, model_weights_uri" in problems[0]["problem"]


# -- plan and render -------------------------------------------------------------------------


def rendered(j=None, config=None, t=None):
    plan = ft.plan_fine_tuning(j or job(), t or template(), config or OperatorConfig())
    config_map, job_obj = render_fine_tuning(plan)
    return plan, config_map, job_obj


def test_render_mounts_the_configuration_as_one_file():
    _, config_map, job_obj = rendered()
    pod = job_obj["spec"]["template"]["spec"]
    [main] = pod["containers"]
    mount = "/workspace/launch_specific/config.json"
    [config_mount] = [m for m in main["volumeMounts"] if m["name"] == "fine-tuning-config"]
    assert config_mount == {
        "name": "fine-tuning-config",
        "mountPath": mount,
        "subPath": "config.json",
        "readOnly": True,
    }
    assert {"name": "FINE_TUNING_CONFIG", "value": mount} in main["env"]
    assert not any(m["mountPath"] == "/workspace/launch_specific" for m in main["volumeMounts"])
    assert not any("emptyDir" in v and v["name"] != "dshm" for v in pod["volumes"])
    assert pod["restartPolicy"] == "Never"
    assert job_obj["spec"]["backoffLimit"] == 0
    assert job_obj["spec"]["activeDeadlineSeconds"] == 604800
    assert config_map["metadata"]["ownerReferences"][0]["kind"] == "FineTuningJob"
    labels = job_obj["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "finetuningjob"
    assert labels["app.kubernetes.io/managed-by"] == "modeltemplate-operator"


def test_gpu_resolved_as_for_endpoints_presets_and_mig():
    _, _, j = rendered(config=OperatorConfig(gpu_preset="nvidia-gfd"))
    pod = j["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"}
    mig = template(
        resources={
            "cpus": 4,
            "memory": "32Gi",
            "storage": "32Gi",
            "gpus": 1,
            "gpuType": "nvidia-hopper-h100-1g20gb",
        }
    )
    _, _, j = rendered(t=mig)
    limits = j["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/mig-1g.20gb"] == "1"


def test_overrides_lower_the_resources():
    _, _, j = rendered(job(resources={"memory": "16Gi", "gpus": 1}))
    limits = j["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert (limits["memory"], limits["nvidia.com/gpu"], limits["cpu"]) == ("16Gi", "1", "8")


def test_job_configuration_and_dataset_mounts():
    j = job(
        trainingDataset={"persistentVolumeClaim": {"claimName": "data", "path": "sets/t.jsonl"}},
        validationDataset={"url": "s3://bucket/v.jsonl"},
        hyperparameters={"epochs": 3},
        output="s3://weights/tuned",
    )
    plan, config_map, job_obj = rendered(j)
    config = json.loads(config_map["data"]["config.json"])
    assert config["training_dataset"] == {
        "schema_type": "GENERATION",
        "path": "/var/run/modeltemplate/datasets/training-volume/sets/t.jsonl",
        "format": "jsonl",
    }
    assert config["validation_dataset"] == {
        "schema_type": "GENERATION",
        "url": "s3://bucket/v.jsonl",
    }
    assert config["hyperparameters"] == {"epochs": 3} and config["output"] == "s3://weights/tuned"
    assert set(config_map["data"]) == {"config.json"}
    pod = job_obj["spec"]["template"]["spec"]
    assert {
        "name": "training-dataset",
        "persistentVolumeClaim": {"claimName": "data", "readOnly": True},
    } in pod["volumes"]


def test_default_output_location_is_the_setting():
    config = OperatorConfig.from_sources({"fineTuning": {"outputPrefix": "gs://w/"}}, {})
    assert ft.output_location(job(), config) == "gs://w/team/tune"


def test_a_model_is_fine_tuned_with_its_parameters_and_the_output_model_keeps_them():
    model = Model.model_validate(
        {
            "metadata": {"name": "base", "namespace": "team", "uid": "m-uid"},
            "spec": {
                "templateRef": {"name": "mistral-7b-finetunable"},
                "creationParameters": {"model_weights_uri": "s3://base", "max_model_len": 4096},
            },
        }
    )
    j = job(templateRef=None, modelRef={"name": "base"}, outputModelName="tuned")
    plan = ft.plan_fine_tuning(j, template(), OperatorConfig(), model)
    assert ft.job_configuration(plan)["base_model"]["creation_parameters"]["max_model_len"] == 4096
    out = ft.output_model(j, "mistral-7b-finetunable", "s3://new", model)
    assert out["spec"]["creationParameters"] == {
        "model_weights_uri": "s3://new",
        "max_model_len": 4096,
    }


# -- phase and status ------------------------------------------------------------------------


def pod(phase="Pending", **status):
    return {"metadata": {"name": "tune-x"}, "status": {"phase": phase, **status}}


def test_phases():
    assert fts.verdict(None, []).phase is FineTuningPhase.PENDING
    job_obj = {"status": {"startTime": "t0"}}
    assert fts.verdict(job_obj, [pod()]).phase is FineTuningPhase.PENDING
    unschedulable = pod(
        conditions=[
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/9"}
        ]
    )
    v = fts.verdict(job_obj, [unschedulable])
    assert (v.phase, v.reason) == (FineTuningPhase.PENDING, "Unschedulable")
    running = pod(
        "Running",
        containerStatuses=[{"name": "main", "state": {"running": {"startedAt": "t1"}}}],
    )
    v = fts.verdict(job_obj, [running])
    assert (v.phase, v.start_time) == (FineTuningPhase.RUNNING, "t1")
    done = {
        "status": {
            "startTime": "t0",
            "completionTime": "t2",
            "conditions": [{"type": "Complete", "status": "True"}],
        }
    }
    v = fts.verdict(done, [])
    assert (v.phase, v.completion_time) == (FineTuningPhase.SUCCEEDED, "t2")
    failed = {
        "status": {
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "message": "Job has reached the specified backoff limit",
                    "lastTransitionTime": "t3",
                }
            ]
        }
    }
    crashed = pod(
        "Failed",
        containerStatuses=[
            {"name": "main", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
        ],
    )
    v = fts.verdict(failed, [crashed])
    assert (v.phase, v.reason, v.completion_time) == (FineTuningPhase.FAILED, "JobFailed", "t3")
    assert v.message.endswith("pod tune-x: OOMKilled (exit code 137)")


def test_status_conditions_and_finished():
    body = {"metadata": {"name": "tune", "uid": "u", "generation": 2, "creationTimestamp": "c"}}
    running = fts.Phase(FineTuningPhase.RUNNING, "Running", "pod runs", "t1")
    status = fts.fine_tuning_status(body, running, "now", extra={"template": "tpl"})
    assert status["phase"] == "Running" and status["startTime"] == "t1"
    assert status["id"] == "u" and status["template"] == "tpl" and status["observedGeneration"] == 2
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "Running")
    assert not fts.is_finished(status)
    body["status"] = status
    done = fts.fine_tuning_status(
        body, fts.Phase(FineTuningPhase.SUCCEEDED, "Succeeded", "ok", None, "t2"), "later"
    )
    assert done["startTime"] == "t1" and done["completionTime"] == "t2"
    assert done["template"] == "tpl" and fts.is_finished(done)
    invalid = fts.fine_tuning_status(
        {"metadata": {"generation": 1}}, None, "now", errors=["spec.resources.memory: too big"]
    )
    conditions = {c["type"]: c for c in invalid["conditions"]}
    assert invalid["phase"] == "Pending" and conditions["Stalled"]["reason"] == "InvalidSpec"
    assert conditions["Valid"]["message"] == "spec.resources.memory: too big"
    cancelled = fts.cancelled(copy.deepcopy(done) | {"completionTime": None}, "now")
    assert cancelled.phase is FineTuningPhase.CANCELLED and cancelled.completion_time == "now"


def test_the_sample_is_valid_against_its_template():
    path = SAMPLES / "fine-tuning" / "mistral-7b-support-ft.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["metadata"].update(namespace="team", uid="s-uid")
    sample = FineTuningJob.model_validate(doc)
    assert ft.check(sample, template()) == []
    manifest = sample.to_manifest()
    assert manifest["spec"] == {**doc["spec"], "cancelled": False}


# -- the gateway's mapping -------------------------------------------------------------------


def test_gateway_dataset_ids_and_sgp_shape():
    from modeltemplate_operator.gateway.routers import finetuning as gw
    from modeltemplate_operator.gateway.sgp import ApiError

    assert gw.dataset_from_id("pvc://data/sets/t.jsonl", "training_dataset_id") == {
        "persistentVolumeClaim": {"claimName": "data", "path": "sets/t.jsonl"}
    }
    assert gw.dataset_from_id("configmap://cm/t.jsonl", "x") == {
        "configMap": {"name": "cm", "key": "t.jsonl"}
    }
    assert gw.dataset_from_id("s3://b/k", "x") == {"url": "s3://b/k"}
    for bad in ("train.jsonl", "pvc://only", 7):
        with pytest.raises(ApiError) as err:
            gw.dataset_from_id(bad, "training_dataset_id")
        assert err.value.status == 422
    for source in ("pvc://data/sets/t.jsonl", "configmap://cm/t.jsonl", "s3://b/k"):
        assert gw.dataset_to_id(gw.dataset_from_id(source, "x")) == source
    body = {
        "training_dataset_id": "s3://b/t",
        "vendor_configuration": {"hyperparameters": {"epochs": 1}, "suffix": "v2"},
    }
    manifest = gw.manifest_from_request(body, "team", "llm", {})
    assert manifest["spec"]["outputModelName"] == "llm-v2"
    with pytest.raises(ApiError):
        gw.manifest_from_request(
            {**body, "vendor_configuration": {"vendor": "OPENAI"}}, "team", "llm", {}
        )
    obj = {
        "metadata": {"uid": "u", "namespace": "team", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": manifest["spec"],
        "status": {
            "phase": "Failed",
            "message": "BackoffLimitExceeded",
            "completionTime": "2026-01-01T01:00:00Z",
            "startTime": "2026-01-01T00:01:00Z",
        },
    }
    sgp = gw.job_to_sgp(obj)
    assert (sgp["status"], sgp["training_dataset_id"]) == ("FAILED", "s3://b/t")
    events = gw.events_of(obj)
    assert [e["level"] for e in events] == ["info", "info", "error"]
    assert events[-1]["message"] == "Failed: BackoffLimitExceeded"
    assert events[-1]["timestamp"] == 1767229200.0


def test_a_job_deleted_before_it_finished_is_lost_and_final():
    deleting = {
        "metadata": {"name": "tune", "deletionTimestamp": "t9"},
        "status": {"startTime": "t0", "active": 1},
    }
    v = fts.verdict(deleting, [pod("Running")])
    assert (v.phase, v.reason, v.completion_time) == (FineTuningPhase.FAILED, fts.JOB_LOST, "t9")
    assert "is being deleted" in v.message and "not restarted by itself" in v.message
    # A Job that completed before it was deleted: the run succeeded.
    deleting["status"]["conditions"] = [{"type": "Complete", "status": "True"}]
    assert fts.verdict(deleting, []).phase is FineTuningPhase.SUCCEEDED
    lost = fts.job_lost("tune", "t1", "now")
    body = {"metadata": {"name": "tune", "generation": 1}, "status": {"jobName": "tune"}}
    status = fts.fine_tuning_status(body, lost, "now")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Failed" and fts.is_finished(status)
    assert status["jobName"] == "tune" and status["completionTime"] == "now"
    assert conditions["Stalled"]["reason"] == fts.JOB_LOST


def test_a_job_whose_pod_is_refused_names_the_refusal():
    job_obj = {"metadata": {"name": "tune", "uid": "u"}, "status": {"startTime": "t0"}}
    event = {
        "reason": "FailedCreate",
        "involvedObject": {"uid": "u"},
        "message": 'Error creating: pods "tune-x" is forbidden: exceeded quota: gpus',
    }
    v = fts.verdict(job_obj, [], [event])
    assert (v.phase, v.reason) == (FineTuningPhase.PENDING, "FailedCreate")
    assert (
        v.message
        == 'Job tune cannot create its pods: pods "tune-x" is forbidden: exceeded quota: gpus'
    )
    assert fts.verdict(job_obj, []).reason == "Pending"
