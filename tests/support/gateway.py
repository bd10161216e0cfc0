"""The SGP gateway as a real process, and the seed examples as create bodies."""

from __future__ import annotations

import copy
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from devtools.ports import free_port
from support.operator import OperatorProcess

REPO = Path(__file__).resolve().parents[2]
#: The example model templates of the SGP Model Templates API documentation (its list answer).
EXAMPLES = REPO / "tests" / "data" / "sgp" / "model-templates-examples.json"
#: Fields of an SGP template the server sets (not accepted by the client's create call).
READ_ONLY = ("id", "created_at", "account_id", "created_by_user_id", "created_by_identity_type")


class GatewayProcess(OperatorProcess):
    """``python -m modeltemplate_operator.gateway`` on a free loopback port."""

    module = "modeltemplate_operator.gateway"

    def __init__(self, kubeconfig: Path, log_path: Path, *args: str):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            kubeconfig,
            log_path,
            "--host=127.0.0.1",
            f"--port={self.port}",
            f"--kubeconfig={kubeconfig}",
            *args,
        )

    def wait_ready(self, timeout: float = 30) -> GatewayProcess:
        """Until /healthz says the watch cache has synced."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise AssertionError(f"gateway exited ({self.proc.returncode}):\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"gateway not ready in {timeout}s:\n{self.log()[-3000:]}")


def seed_examples() -> list[dict[str, Any]]:
    """Every model template of the SGP API documentation's examples (kept as test data)."""
    return json.loads(EXAMPLES.read_text())["items"]


def create_body(item: dict[str, Any], name: str) -> dict[str, Any]:
    """A seed example as a body the cluster accepts: read-only fields dropped, placeholders the
    rules refuse ("<string>" names, registries, images, tags, parameter names and types)
    given real values, and the two contradictions of the example made consistent (a gpu_type
    with gpus 0; endpoint_config.endpoint_type ASYNC beside endpoint_type SYNC). Everything
    else is sent as the seed has it."""
    body = {k: copy.deepcopy(v) for k, v in item.items() if k not in READ_ONLY}
    body["name"] = name
    vendor = body["vendor_configuration"]
    for bundle in (vendor.get("bundle_config"), vendor.get("fine_tuning_job_bundle_config")):
        if bundle:
            bundle.update(registry="docker.io", image="modelops/seed-example", tag="1")
    for resources in (
        vendor.get("endpoint_config"),
        (vendor.get("fine_tuning_job_bundle_config") or {}).get("resources"),
    ):
        if resources and resources.get("gpu_type") and not resources.get("gpus"):
            resources["gpus"] = 1
    endpoint = vendor.get("endpoint_config") or {}
    if "endpoint_type" in endpoint:
        endpoint["endpoint_type"] = body["endpoint_type"]
    for key in ("model_creation_parameters_schema", "model_request_parameters_schema"):
        for n, parameter in enumerate((body.get(key) or {}).get("parameters") or []):
            parameter.update(name=f"param_{n}", type="str")
    return body
