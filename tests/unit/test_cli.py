"""The modeltemplate CLI: validate (samples, invalid corpus, YAML edge cases) and convert."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modeltemplate_operator.api.convert import manifest_to_sgp, sgp_to_manifest
from modeltemplate_operator.api.validation import validate_manifest
from modeltemplate_operator.cli import load_documents, main

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "deploy" / "samples").glob("*.yaml"))
LLM = REPO / "deploy" / "samples" / "llm-vllm-h100-streaming.yaml"
INVALID = sorted((REPO / "tests" / "data" / "invalid").glob("*.yaml"))


def expected_field(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: <field>'"
    return first.removeprefix("# expect: ").strip()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_corpus_is_large_enough_and_named():
    assert len(INVALID) >= 60
    assert len({expected_field(p) for p in INVALID}) >= 40


def test_samples_validate(capsys):
    code, out, _ = run(capsys, "validate", *map(str, SAMPLES))
    assert code == 0
    assert out.count(": valid") == len(SAMPLES)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_corpus_rejected_naming_the_field(path, capsys):
    code, out, _ = run(capsys, "validate", "-q", str(path))
    assert code == 1
    assert expected_field(path) in out, out


def test_console_script_on_the_whole_corpus():
    exe = shutil.which("modeltemplate", path=str(Path(sys.executable).parent))
    assert exe, "console script not installed: run `make venv`"
    proc = subprocess.run(
        [exe, "validate", "-q", *map(str, INVALID)], capture_output=True, text=True
    )
    assert proc.returncode == 1
    for path in INVALID:
        lines = [line for line in proc.stdout.splitlines() if line.startswith(f"{path}:")]
        assert lines and any(expected_field(path) in line for line in lines), path.name


def test_multi_document_yaml_and_stdin(tmp_path, capsys, monkeypatch):
    good = SAMPLES[0].read_text()
    bad = INVALID[0].read_text()
    multi = tmp_path / "multi.yaml"
    multi.write_text(f"{good}\n---\n# empty document follows\n---\n{bad}")
    code, out, _ = run(capsys, "validate", str(multi))
    assert code == 1
    assert "document 1" in out and ": valid" in out and "document 2" in out
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(good))
    assert run(capsys, "validate", "-")[0] == 0


def test_kind_list_is_expanded(tmp_path, capsys):
    items = [yaml.safe_load(p.read_text()) for p in SAMPLES[:2]]
    f = tmp_path / "list.yaml"
    f.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    code, out, _ = run(capsys, "validate", str(f))
    assert code == 0 and out.count(": valid") == 2


def test_duplicate_keys_are_refused(tmp_path, capsys):
    f = tmp_path / "dup.yaml"
    f.write_text(SAMPLES[0].read_text().replace("spec:\n", "spec:\n  endpointType: SYNC\n", 1))
    code, _, err = run(capsys, "validate", str(f))
    assert code == 1 and "duplicate key 'endpointType'" in err


DEEP = {
    # reproduced: an uncaught RecursionError, and no other file reported
    "500 nested [": "[" * 500 + "]" * 500,
    "100,000 nested [, unterminated": "[" * 100_000,
    "65 nested empty lists": "[" * 65 + "]" * 65,
    "a block mapping 80 deep": "a:\n"
    + "".join(f"{'  ' * i}b{i}:\n" for i in range(1, 80))
    + "  " * 80
    + "x: 1\n",
    # aliases: an anchor inside itself (a RecursionError too), and a chain of anchors each
    # nesting the previous one deeper than the text does
    "an anchor inside itself": "a: &a [*a]\n",
    "a chain of anchors": "a0: &a0 [1]\n"
    + "".join(f"a{i}: &a{i} [[*a{i - 1}]]\n" for i in range(1, 40)),
}


@pytest.mark.parametrize("text", DEEP.values(), ids=DEEP.keys())
def test_documents_nested_too_deep_fail_alone(tmp_path, capsys, text):
    deep = tmp_path / "deep.yaml"
    deep.write_text(text)
    code, out, err = run(capsys, "validate", str(deep), str(SAMPLES[0]))
    assert code == 1
    assert re.search(rf"{re.escape(str(deep))}:\d+: document 1: nested deeper than 64 levels", err)
    assert "Traceback" not in err + out
    assert f"{SAMPLES[0]}: document 1" in out and ": valid" in out  # the other file: checked
    assert "2 document(s) checked, 1 with errors" in err


def test_a_document_64_deep_is_read():
    assert list(load_documents("[" * 64 + "]" * 64))
    assert list(load_documents("a: &a [[1]]\nb: [*a]\n")) == [{"a": [[1]], "b": [[[1]]]}]


def test_the_documents_around_a_failing_one_are_checked(tmp_path, capsys):
    sample = SAMPLES[0].read_text()
    f = tmp_path / "three.yaml"
    f.write_text(f"{sample}\n---\na: &a [*a]\n---\n{sample}\n---\n" + "[" * 1000)
    code, out, err = run(capsys, "validate", str(f))
    assert code == 1
    # Each named by its file and line.
    lines = f.read_text().splitlines()
    alias, deep = lines.index("a: &a [*a]") + 1, lines.index("[" * 1000) + 1
    assert f"{f}:{alias}: document 2: nested deeper than 64 levels through its aliases" in err
    assert f"{f}:{deep}: document 4: nested deeper than 64 levels" in err
    assert out.count(": valid") == 2
    assert f"{f}: document 1" in out and f"{f}: document 3" in out
    assert "4 document(s) checked, 2 with errors" in err


@pytest.mark.parametrize(
    "to,name,text",
    [
        ("manifest", "deep.json", "[" * 5000 + "]" * 5000),
        ("manifest", "deep.yaml", "[" * 100_000),
        ("manifest", "alias.yaml", "a: &a [*a]\n"),
        ("sgp", "deep.yaml", "[" * 500 + "]" * 500),
        ("sgp", "alias.yaml", "a: &a [*a]\n"),
    ],
)
def test_convert_refuses_documents_nested_too_deep(tmp_path, capsys, to, name, text):
    deep = tmp_path / name
    deep.write_text(text)
    code, _, err = run(capsys, "convert", "--to", to, str(deep))
    assert code == 1 and "nested deeper than 64 levels" in err
    assert "Traceback" not in err


_MEASURED = """
import sys, time
from modeltemplate_operator.cli import main
started = time.monotonic()
code = main(sys.argv[1:])
took = time.monotonic() - started
with open("/proc/self/status") as f:  # this program's peak (ru_maxrss would count the parent's)
    peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1000
print(f"{code} {took:.2f} {peak:.1f}", file=sys.stderr)
"""


@pytest.mark.parametrize(
    "name,text",
    [
        ("1 MB of [", "[" * 1_000_000),
        ("1 MB of documents nested 70 deep", ("---\n" + "[" * 70 + "]" * 70 + "\n") * 6800),
        ("1 MB at depth 60", "[" * 60 + ",".join(["[1]"] * 250_000) + "]" * 60),
        ("1 MB at depth 1", "[" + ",".join(["[1]"] * 250_000) + "]"),
        ("1 MB of a block mapping 1,000 deep", "".join(f"{' ' * i}k{i}:\n" for i in range(1000))),
    ],
)
def test_a_1_mb_hostile_file_costs_little(tmp_path, name, text):
    """The whole CLI in a process of its own: its time and peak memory printed, the memory
    asserted: a 1 MB file of 1,000,000 nested brackets ran for over 10 minutes when the rest of
    a too-deep document was read on (PyYAML's scanner is quadratic in the nesting), and 1 MB of
    250,000 small lists took 13-26 s and 417 MB before documents were capped at 100,000 nodes
    while they are read."""
    f = tmp_path / "hostile.yaml"
    f.write_text(text)
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, "validate", "-q", str(f)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    code, took, peak = done.stderr.strip().splitlines()[-1].split()
    print(f"\n{name} ({len(text)} bytes): exit {code}, {took} s, peak RSS {peak} MB")
    assert code == "1" and "Traceback" not in done.stderr
    assert float(peak) < 150


def test_unreadable_and_empty_files(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    # A missing file is not invalid content: its own exit code, which wins.
    code, _, err = run(capsys, "validate", str(empty), str(tmp_path / "missing.yaml"))
    assert code == 3, err
    assert f"{tmp_path / 'missing.yaml'}: No such file or directory" in err
    assert f"{empty}: no documents" in err
    assert run(capsys, "validate", str(empty))[0] == 1


# --- convert --------------------------------------------------------------------------------


# The example item of the SGP list response in the SGP API documentation.
SEED_ITEM = {
    "name": "<string>",
    "endpoint_type": "SYNC",
    "model_type": "COMPLETION",
    "vendor_configuration": {
        "bundle_config": {
            "registry": "<string>",
            "image": "<string>",
            "tag": "<string>",
            "command": ["<string>"],
            "env": {},
            "streaming_command": ["<string>"],
            "readiness_initial_delay_seconds": 120,
            "healthcheck_route": "/readyz",
            "predict_route": "/predict",
            "streaming_predict_route": "/generate_streaming",
        },
        "vendor": "LAUNCH",
        "endpoint_config": {
            "cpus": 3,
            "memory": "8Gi",
            "storage": "16Gi",
            "gpus": 0,
            "gpu_type": "nvidia-tesla-t4",
            "min_workers": 0,
            "max_workers": 1,
            "per_worker": 10,
            "endpoint_type": "ASYNC",
            "high_priority": False,
        },
        "fine_tuning_job_bundle_config": {
            "registry": "<string>",
            "image": "<string>",
            "tag": "<string>",
            "command": ["<string>"],
            "env": {},
            "mount_location": "/workspace/launch_specific/config.json",
            "training_dataset_schema_type": "GENERATION",
            "resources": {
                "cpus": 3,
                "memory": "8Gi",
                "storage": "16Gi",
                "gpus": 0,
                "gpu_type": "nvidia-tesla-t4",
            },
        },
    },
    "id": "<string>",
    "created_at": "2023-11-07T05:31:56Z",
    "account_id": "<string>",
    "created_by_user_id": "<string>",
    "created_by_identity_type": "user",
    "model_creation_parameters_schema": {
        "parameters": [
            {"name": "<string>", "type": "<string>", "description": "<string>", "required": True}
        ]
    },
    "model_request_parameters_schema": {
        "parameters": [
            {"name": "<string>", "type": "<string>", "description": "<string>", "required": True}
        ]
    },
    "endpoint_protocol": "SGP",
}


def seed_item() -> dict:
    return json.loads(json.dumps(SEED_ITEM))


def test_seed_example_converts_and_its_contradictions_are_reported():
    sgp = seed_item()
    manifest = sgp_to_manifest(sgp)
    assert manifest["metadata"]["name"] == "<string>"
    ec = manifest["spec"]["vendorConfiguration"]["endpointConfig"]
    assert ec["gpuType"] == "nvidia-tesla-t4" and ec["perWorker"] == 10
    ft = manifest["spec"]["vendorConfiguration"]["fineTuningJobBundleConfig"]
    assert ft["mountLocation"] == "/workspace/launch_specific/config.json"
    assert manifest["status"]["createdByIdentityType"] == "user"
    assert manifest["status"]["createdAt"] == "2023-11-07T05:31:56Z"
    # The seed example is a placeholder: "<string>" images and names, gpuType with gpus 0,
    # endpointConfig.endpointType ASYNC against endpointType SYNC. Each is reported.
    errors = "\n".join(validate_manifest(manifest))
    assert "metadata.name (<string>) must be a DNS-1035 label" in errors
    assert "spec.vendorConfiguration.bundleConfig.registry (<string>)" in errors
    assert "spec.modelCreationParametersSchema.parameters[0].name (<string>)" in errors
    fixed = json.loads(json.dumps(sgp).replace('"<string>"', '"x"'))
    fixed["model_creation_parameters_schema"]["parameters"][0]["type"] = "str"
    fixed["model_request_parameters_schema"]["parameters"][0]["type"] = "str"
    fixed_manifest = sgp_to_manifest(fixed)
    assert validate_manifest(fixed_manifest) == [
        "spec.vendorConfiguration.endpointConfig.gpus (0) must be > 0 when gpuType (nvidia-tesla-t4) is set",
        "spec.vendorConfiguration.fineTuningJobBundleConfig.resources.gpus (0) must be > 0 when gpuType (nvidia-tesla-t4) is set",
    ]
    fixed["vendor_configuration"]["endpoint_config"]["gpus"] = 1
    fixed["vendor_configuration"]["fine_tuning_job_bundle_config"]["resources"]["gpus"] = 1
    assert validate_manifest(sgp_to_manifest(fixed)) == [
        "spec.vendorConfiguration.endpointConfig.endpointType (ASYNC) must equal endpointType (SYNC) when set"
    ]
    sgp_again, warnings = manifest_to_sgp(manifest)
    assert sgp_again == sgp and warnings == []


def test_convert_round_trip_through_the_cli(tmp_path, capsys):
    src = LLM
    code, out, err = run(capsys, "convert", "--to", "sgp", str(src))
    assert code == 0
    sgp = json.loads(out)
    assert sgp["name"] == yaml.safe_load(src.read_text())["metadata"]["name"]
    assert "vendor_configuration" in sgp and "bundle_config" in sgp["vendor_configuration"]
    assert "secretEnv has no SGP field" in err  # the llm sample references a Secret
    assert "secret_env" not in json.dumps(sgp)
    sgp_file = tmp_path / "sgp.json"
    sgp_file.write_text(out)
    code, out, _ = run(capsys, "convert", "--to", "manifest", str(sgp_file), "-n", "models")
    assert code == 0
    manifest = yaml.safe_load(out)
    original = yaml.safe_load(src.read_text())
    bundle = dict(original["spec"]["vendorConfiguration"]["bundleConfig"])
    bundle.pop("secretEnv")
    assert manifest["spec"]["vendorConfiguration"]["bundleConfig"] == bundle
    assert manifest["metadata"] == {"name": original["metadata"]["name"], "namespace": "models"}


def test_convert_keep_extensions_and_output_file(tmp_path, capsys):
    out_file = tmp_path / "out.json"
    code, _, err = run(
        capsys, "convert", "--to", "sgp", "--keep-extensions", "-o", str(out_file), str(LLM)
    )
    assert code == 0 and "dropped" not in err
    sgp = json.loads(out_file.read_text())
    assert (
        sgp["vendor_configuration"]["bundle_config"]["secret_env"][0]["secret_key_ref"]["key"]
        == "token"
    )
    assert sgp_to_manifest(sgp)["spec"] == yaml.safe_load(LLM.read_text())["spec"]


def test_convert_list_response_to_multiple_documents(tmp_path, capsys):
    items = [
        manifest_to_sgp(yaml.safe_load(p.read_text()), keep_extensions=True)[0] for p in SAMPLES
    ]
    f = tmp_path / "list.json"
    f.write_text(json.dumps({"items": items, "total_item_count": len(items)}))
    code, out, err = run(capsys, "convert", "--to", "manifest", str(f))
    assert code == 0, err
    docs = list(yaml.safe_load_all(out))
    assert [d["metadata"]["name"] for d in docs] == [
        yaml.safe_load(p.read_text())["metadata"]["name"] for p in SAMPLES
    ]
    assert all(validate_manifest(d) == [] for d in docs)


def test_convert_strict_fails_on_invalid_result(tmp_path, capsys):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({"name": "x", "endpoint_type": "SYNC", "model_type": "LLM"}))
    code, _, err = run(capsys, "convert", "--to", "manifest", "--strict", str(f))
    assert code == 1 and "spec.modelType (LLM)" in err
    assert run(capsys, "convert", "--to", "manifest", str(f))[0] == 0  # warnings only


def test_env_names_are_not_renamed():
    sgp = {
        "name": "n",
        "endpoint_type": "SYNC",
        "model_type": "GENERIC",
        "vendor_configuration": {
            "bundle_config": {
                "registry": "r.io",
                "image": "i",
                "tag": "t",
                "env": {"my_var": "a_b"},
            },
            "endpoint_config": {"min_workers": 1, "max_workers": 2},
        },
        "model_request_parameters_schema": {
            "parameters": [{"name": "max_new_tokens", "type": "int"}]
        },
    }
    m = sgp_to_manifest(sgp)
    assert m["spec"]["vendorConfiguration"]["bundleConfig"]["env"] == {"my_var": "a_b"}
    assert m["spec"]["vendorConfiguration"]["endpointConfig"] == {"minWorkers": 1, "maxWorkers": 2}
    assert m["spec"]["modelRequestParametersSchema"]["parameters"][0]["name"] == "max_new_tokens"
    assert manifest_to_sgp(m)[0] == sgp


def _alias_bomb(levels: int) -> str:
    """A "billion laughs" template: each level a list of ten aliases of the one before, the last
    one used as a field the validator reports on."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines += [
        "apiVersion: launch.modelops.dev/v1alpha1",
        "kind: ModelTemplate",
        "metadata: {name: bomb}",
        f"spec: {{endpointType: SYNC, modelType: GENERIC, vendorConfiguration: *a{levels - 1}}}",
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("command", [["validate"], ["convert", "--to", "manifest"]])
def test_alias_bombs_are_refused_cheaply(tmp_path, capsys, command):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_alias_bomb(9))  # under 1 KB, 10**9 nodes expanded
    assert len(bomb.read_bytes()) < 1000
    # Refused before anything is built from it (without the check: minutes and gigabytes).
    assert main([*command, str(bomb)]) == 1
    assert (
        "expands to 2345679035 nodes through its aliases (at most 100000)"
        in capsys.readouterr().err
    )


def test_aliases_within_reason_still_load():
    (doc,) = load_documents(_alias_bomb(3))  # 1,100 nodes expanded: fine
    assert len(doc["a2"]) == 10 and doc["a2"][9][9] == doc["a0"]
