"""The optional Model admission webhook on the real API server: a Model whose parameters do not
fit its template is refused at apply time, naming each parameter."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request

import pytest
from support.k8s import apply_list
from support.manifests import tiny_template

from devtools.localcluster.pki import CertificateAuthority
from devtools.ports import free_port
from modeltemplate_operator.admission import PATH

pytestmark = pytest.mark.integration


@pytest.fixture
def webhook(cluster, crd_installed, namespace, tmp_path):
    """The webhook server as a process with its own TLS certificate, registered for the test's
    namespace only."""
    ca = CertificateAuthority(tmp_path)
    cert, key = ca.issue("admission", "modeltemplate-admission", server_names=["127.0.0.1"])
    port = free_port()
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    args = ["--host", "127.0.0.1", "--port", str(port), "--cert", str(cert), "--key", str(key)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "modeltemplate_operator.admission", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    context = ssl.create_default_context(cafile=str(ca.cert_path))
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=context, timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"admission server did not start: {proc.stderr.read().decode()}")
            time.sleep(0.2)
    name = f"model-admission-{namespace}"
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "models.launch.modelops.dev",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}{PATH}",
                    "caBundle": base64.b64encode(ca.cert_path.read_bytes()).decode(),
                },
                "rules": [
                    {
                        "apiGroups": ["launch.modelops.dev"],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["models"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            }
        ],
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(config))
    yield
    cluster.kubectl("delete", "validatingwebhookconfiguration", name, check=False)
    proc.terminate()
    proc.wait(timeout=10)


def _model(name: str, template: str, params: dict) -> dict:
    return {
        "apiVersion": "launch.modelops.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {"templateRef": {"name": template}, "creationParameters": params},
    }


def test_bad_parameters_are_refused_at_apply_time(cluster, namespace, webhook):
    template = tiny_template("vllm")
    template["spec"]["modelCreationParametersSchema"] = {
        "parameters": [
            {"name": "hf_repo", "type": "str", "required": True},
            {"name": "tensor_parallel_size", "type": "int"},
        ]
    }
    apply_list(cluster, namespace, [template])

    def apply(doc):
        return cluster.kubectl(
            "apply", "-n", namespace, "-f", "-", input=json.dumps(doc), check=False
        )

    # The webhook registration takes a moment to reach the API server's admission chain.
    deadline = time.monotonic() + 30
    while True:
        refused = apply(_model("bad", "vllm", {"tensor_parallel_size": "two"}))
        if refused.returncode or time.monotonic() > deadline:
            break
        cluster.kubectl("delete", "model", "bad", "-n", namespace)
        time.sleep(0.5)
    assert refused.returncode != 0
    assert "spec.creationParameters.hf_repo: required parameter is missing" in refused.stderr
    assert "spec.creationParameters.tensor_parallel_size: must be of type int" in refused.stderr
    assert cluster.kubectl("get", "model", "bad", "-n", namespace, check=False).returncode
    good = apply(_model("good", "vllm", {"hf_repo": "org/x", "tensor_parallel_size": 2}))
    assert good.returncode == 0, good.stderr
    # An update is checked too.
    broken = apply(_model("good", "vllm", {"hf_repo": 7}))
    assert broken.returncode != 0 and "spec.creationParameters.hf_repo" in broken.stderr
    # A template applied later (GitOps order): admitted, with a warning.
    early = apply(_model("early", "not-yet", {"anything": 1}))
    assert early.returncode == 0, early.stderr
    assert "ModelTemplate 'not-yet' not found" in early.stderr
    # Hostile values (reproduced: a 1,000-deep object made the webhook answer 500, so the API
    # server said only that the call failed; NUL and over-long values were admitted).
    for params, said in (
        ({"hf_repo": "org/x", "deep": {}}, "spec.creationParameters.deep: nested deeper than 32"),
        ({"hf_repo": "a\u0000b"}, "spec.creationParameters.hf_repo: contains a NUL character"),
        ({"hf_repo": "a" * 40_000}, "spec.creationParameters.hf_repo: is 40000 characters"),
    ):
        text = json.dumps(_model("hostile", "vllm", params))
        text = text.replace('"deep": {}', '"deep": ' + "[" * 1_000 + "]" * 1_000)
        hostile = cluster.kubectl("create", "-n", namespace, "-f", "-", input=text, check=False)
        assert hostile.returncode != 0 and said in hostile.stderr, hostile.stderr[-500:]
