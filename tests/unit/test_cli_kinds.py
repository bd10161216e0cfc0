"""``modeltemplate``: every kind of the project, directories, file:line errors, exit codes,
conversions refused by shape, Models to and from SGP, --version, progress on a terminal."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modeltemplate_operator import __version__
from modeltemplate_operator.api.kinds import OWNERS
from modeltemplate_operator.cli import build_parser, cmd_validate, main

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "deploy" / "samples"
TEMPLATE = SAMPLES / "vllm-family-h100.yaml"
MODELS = SAMPLES / "models" / "vllm-h100-models.yaml"
FINE_TUNING = SAMPLES / "fine-tuning" / "mistral-7b-support-ft.yaml"
API = "launch.modelops.dev/v1alpha1"
DEPLOYMENT = {
    "apiVersion": API,
    "kind": "ModelDeployment",
    "metadata": {"name": "llama-prod"},
    "spec": {"modelRef": {"name": "llama-3-1-8b-instruct"}},
}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, *docs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(list(docs), sort_keys=False))
    return path


def docs_of(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# --- validate: kinds --------------------------------------------------------------------------
def test_every_kind_of_the_project_validates(tmp_path, capsys):
    deployment = write(tmp_path / "deployment.yaml", DEPLOYMENT)
    files = (TEMPLATE, MODELS, FINE_TUNING, deployment)
    code, out, err = run(capsys, "validate", *map(str, files))
    assert code == 0, out + err
    docs = [d for f in files for d in docs_of(f)]
    assert {d["kind"] for d in docs} == {k.kind for k in OWNERS}
    assert out.count(": valid") == len(docs) and "must be" not in out


def test_each_kind_is_checked_by_its_own_rules(tmp_path, capsys):
    job = docs_of(FINE_TUNING)[0]
    del job["spec"]["trainingDataset"]
    bad_deployment = {**DEPLOYMENT, "spec": {"modelRef": {}}}
    path = write(tmp_path / "bad.yaml", job, bad_deployment)
    code, out, _ = run(capsys, "validate", str(path))
    assert code == 1
    assert f"{path}: document 1 ({job['metadata']['name']}): spec.trainingDataset: required" in out
    assert f"{path}: document 2 (llama-prod): spec.modelRef.name: required" in out


def test_an_unknown_kind_is_named_with_the_kinds_known(tmp_path, capsys):
    path = write(tmp_path / "cm.yaml", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})
    code, out, _ = run(capsys, "validate", str(path))
    known = [k.kind for k in OWNERS]
    assert len(known) == 4
    assert code == 1
    assert f"kind (ConfigMap) must be one of {', '.join(known)}" in out
    # --skip-other-kinds leaves it, and only it, out.
    code, out, err = run(capsys, "validate", "--skip-other-kinds", str(path), str(FINE_TUNING))
    assert code == 0 and "ConfigMap" not in out and "1 document(s) checked" in err


# --- validate: directories ---------------------------------------------------------------------
def test_a_directory_is_walked_for_yaml_and_json_files(tmp_path, capsys):
    template = docs_of(TEMPLATE)[0]
    write(tmp_path / "a.yaml", template)
    write(tmp_path / "sub" / "b.yml", DEPLOYMENT)
    (tmp_path / "sub" / "c.json").write_text(json.dumps(docs_of(FINE_TUNING)[0]))
    (tmp_path / "notes.txt").write_text("not: [a manifest")
    write(tmp_path / ".git" / "d.yaml", {"kind": "Broken"})
    code, out, err = run(capsys, "validate", str(tmp_path))
    assert code == 0, out + err
    assert "Errno" not in err
    files = [line.split(": ")[0] for line in out.splitlines()]
    assert files == [
        str(tmp_path / "a.yaml"),
        str(tmp_path / "sub/b.yml"),
        str(tmp_path / "sub/c.json"),
    ]


def test_the_samples_directory_validates_recursively(capsys):
    code, out, err = run(capsys, "validate", str(SAMPLES))
    want = sum(len(docs_of(p)) for p in SAMPLES.rglob("*.yaml"))
    assert code == 0, out + err
    assert out.count(": valid") == want and f"{want} document(s) checked, 0 with errors" in err
    # Models are checked against their template, found in another file of the directory.
    assert "parameters not checked" not in out


def test_a_directory_without_manifests_cannot_be_read(tmp_path, capsys):
    (tmp_path / "README.md").write_text("# nothing here\n")
    code, _, err = run(capsys, "validate", str(tmp_path))
    assert code == 3
    assert f"{tmp_path}: a directory without .yaml, .yml, .json files" in err


# --- errors and exit codes -----------------------------------------------------------------------
def test_yaml_errors_name_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("apiVersion: v1\nkind: ModelTemplate\nspec:\n  a: [1, 2\n  b: 3\n")
    code, _, err = run(capsys, "validate", str(path))
    assert code == 1
    (line,) = [x for x in err.splitlines() if x.startswith(str(path))]
    assert line.startswith(f"{path}:5:"), line
    assert "document 1" in line and "expected ',' or ']'" in line
    dup = tmp_path / "dup.yaml"
    dup.write_text("kind: ModelTemplate\nmetadata: {}\nkind: Model\n")
    _, _, err = run(capsys, "validate", str(dup))
    assert f"{dup}:3: document 1: line 3: duplicate key 'kind'" in err


def test_json_errors_of_convert_name_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "sgp.json"
    path.write_text('{\n  "name": "x",\n  "endpoint_type": SYNC\n}\n')
    code, out, err = run(capsys, "convert", "--to", "manifest", str(path))
    assert (code, out) == (1, "")
    assert err.startswith(f"{path}:3:20: Expecting value"), err


@pytest.mark.parametrize(
    ("files", "code"),
    [
        (["good"], 0),
        (["bad"], 1),
        (["missing"], 3),
        (["good", "missing"], 3),
        (["bad", "missing"], 3),  # cannot read wins over invalid
    ],
)
def test_exit_codes(tmp_path, capsys, files, code):
    paths = {
        "good": str(FINE_TUNING),
        "bad": str(write(tmp_path / "bad.yaml", {**DEPLOYMENT, "spec": {}})),
        "missing": str(tmp_path / "missing.yaml"),
    }
    assert run(capsys, "validate", *[paths[f] for f in files])[0] == code


def test_exit_codes_are_documented_in_help():
    for parser in (build_parser(), *build_parser()._subparsers._group_actions[0].choices.values()):
        text = parser.format_help()
        assert "exit codes:" in text
        for code, word in ((0, "valid"), (1, "invalid"), (2, "usage"), (3, "cannot be read")):
            assert any(
                line.strip().startswith(f"{code}  ") and word in line for line in text.splitlines()
            ), (code, text)
    readme = (REPO / "README.md").read_text()
    for code in (0, 1, 2, 3):
        assert f"| {code} |" in readme


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"modeltemplate {__version__}"


# --- convert: shapes ---------------------------------------------------------------------------
def test_a_manifest_given_as_sgp_json_is_refused(tmp_path, capsys):
    path = tmp_path / "template.json"
    path.write_text(json.dumps(docs_of(TEMPLATE)[0]))
    code, out, err = run(capsys, "convert", "--to", "manifest", str(path))
    assert (code, out) == (1, "")
    assert (
        "item 1: a Kubernetes manifest (kind ModelTemplate), not SGP JSON: convert it with --to sgp"
        in err
    )


def test_sgp_json_given_as_a_manifest_is_refused(tmp_path, capsys):
    path = tmp_path / "sgp.json"
    path.write_text(json.dumps({"name": "x", "endpoint_type": "SYNC"}))
    code, out, err = run(capsys, "convert", "--to", "sgp", str(path))
    assert (code, out) == (1, "")
    assert (
        "not a Kubernetes manifest (no apiVersion nor kind); SGP JSON converts with --to manifest"
        in err
    )


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            DEPLOYMENT,
            "kind ModelDeployment has no SGP shape; --to sgp converts ModelTemplate and Model",
        ),
        (
            {"apiVersion": "v1", "kind": "Secret"},
            "kind Secret is not one of ModelTemplate, Model, ModelDeployment, FineTuningJob",
        ),
        ([1, 2], "not a Kubernetes manifest"),
    ],
)
def test_other_shapes_to_sgp_are_refused_and_nothing_is_written(tmp_path, capsys, doc, message):
    # Beside a convertible template: the whole input is refused, nothing half-written.
    path = write(tmp_path / "in.yaml", docs_of(TEMPLATE)[0], doc)
    out_file = tmp_path / "out.json"
    code, out, err = run(capsys, "convert", "--to", "sgp", str(path), "-o", str(out_file))
    assert (code, out) == (1, "")
    assert message in err
    assert not out_file.exists()


def test_models_convert_to_sgp_models_and_back(tmp_path, capsys):
    template = docs_of(TEMPLATE)[0]
    template["metadata"]["uid"] = "8c0ad5c2-6d2e-4b43-9b7e-0d1f3b8e8a11"
    models = docs_of(MODELS)
    path = write(tmp_path / "in.yaml", template, *models)
    code, out, err = run(capsys, "convert", "--to", "sgp", str(path))
    assert code == 0, err
    sgp_template, *sgp_models = json.loads(out)
    assert sgp_template["name"] == template["metadata"]["name"]
    for model, sgp in zip(models, sgp_models, strict=True):
        assert sgp["name"] == model["metadata"]["name"]
        assert sgp["model_template_id"] == template["metadata"]["uid"]
        assert sgp["model_creation_parameters"] == model["spec"]["creationParameters"]
        assert sgp["model_vendor"] == "LAUNCH"
    # Back: an SGP model names its template by id, so its name is asked for.
    sgp_file = tmp_path / "models.json"
    sgp_file.write_text(json.dumps(sgp_models))
    code, out, err = run(capsys, "convert", "--to", "manifest", str(sgp_file))
    assert (code, out) == (1, "")
    assert "give the template's name with --template-name" in err
    code, out, err = run(
        capsys,
        "convert",
        "--to",
        "manifest",
        str(sgp_file),
        "--template-name",
        "vllm-h100",
        "--strict",
    )
    assert code == 0, err
    back = list(yaml.safe_load_all(out))
    assert [(m["kind"], m["metadata"]["name"], m["spec"]["templateRef"]) for m in back] == [
        ("Model", m["metadata"]["name"], m["spec"]["templateRef"]) for m in models
    ]
    assert [m["spec"]["creationParameters"] for m in back] == [
        m["spec"]["creationParameters"] for m in models
    ]


def test_a_model_without_its_template_converts_with_a_null_template_id(capsys):
    code, out, err = run(capsys, "convert", "--to", "sgp", str(MODELS))
    assert code == 0
    assert [m["model_template_id"] for m in json.loads(out)] == [None, None]
    assert "model_template_id is the id (uid) of template 'vllm-h100'" in err


def test_sgp_model_fields_without_a_model_field_are_refused(tmp_path, capsys):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"name": "m", "model_template_id": "x", "model_card": "card"}))
    code, out, err = run(capsys, "convert", "--to", "manifest", str(path), "--template-name", "t")
    assert (code, out) == (1, "")
    assert "model_card: no Model field holds it" in err


def test_unreadable_input_and_output(tmp_path, capsys):
    code, _, err = run(capsys, "convert", "--to", "sgp", str(tmp_path / "missing.yaml"))
    assert code == 3 and "No such file or directory" in err
    code, _, err = run(capsys, "convert", "--to", "sgp", str(tmp_path))
    assert code == 3 and "Is a directory" in err
    code, _, err = run(
        capsys, "convert", "--to", "sgp", str(TEMPLATE), "-o", str(tmp_path / "no" / "out.json")
    )
    assert code == 3 and "No such file or directory" in err


# --- progress ------------------------------------------------------------------------------------
class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _validate(tmp_path: Path, err: io.StringIO, count: int) -> str:
    path = tmp_path / f"many-{count}.yaml"
    path.write_text(
        "---\n".join(f"kind: FineTuningJob\nmetadata: {{name: j{i}}}\n" for i in range(count))
    )
    args = build_parser().parse_args(["validate", "-q", str(path)])
    assert cmd_validate(args, io.StringIO(), err) == 1
    return err.getvalue()


def test_progress_on_a_terminal_for_thousands_of_documents(tmp_path, monkeypatch):
    monkeypatch.setattr("modeltemplate_operator.cli.PROGRESS_EVERY", 0.0)
    shown = _validate(tmp_path, Terminal(), 1000)
    assert "\rchecked 1/1000 documents" in shown and "\rchecked 1000/1000 documents" in shown
    assert shown.endswith("\r\033[K")  # the line is cleared at the end
    # Not on a pipe or a file, and not for a short run.
    assert "\r" not in _validate(tmp_path, io.StringIO(), 1000)
    assert "\r" not in _validate(tmp_path, Terminal(), 999)


def test_no_progress_through_a_pipe(tmp_path):
    path = tmp_path / "many.yaml"
    path.write_text(
        "---\n".join(f"kind: FineTuningJob\nmetadata: {{name: j{i}}}\n" for i in range(1500))
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, modeltemplate_operator.cli as cli; cli.PROGRESS_EVERY = 0.0; "
            "sys.exit(cli.main(sys.argv[1:]))",
            "validate",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr == "1500 document(s) checked, 1500 with errors\n"  # nothing else
