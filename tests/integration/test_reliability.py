"""Failure modes found by probing the operator as a user and an attacker would; each test
reproduced its finding before the fix."""

from __future__ import annotations

import threading

from kubernetes import watch
from kubernetes.client import CustomObjectsApi
from support.k8s import get_json, wait_for
from support.manifests import tiny_template
from test_operator import apply_template, condition, wait_ready
from urllib3.exceptions import ProtocolError

from modeltemplate_operator import GROUP, PLURAL, VERSION


def test_characters_outside_the_bmp_reach_the_children(cluster, operator, namespace):
    manifest = tiny_template("emoji")
    bundle = manifest["spec"]["vendorConfiguration"]["bundleConfig"]
    bundle["env"] = {"GREETING": "ready 🚀 — ok"}
    bundle["command"] = ["python", "-c", "print('🤖')"]
    apply_template(cluster, namespace, manifest)
    wait_ready(cluster, namespace, "emoji")
    main = get_json(cluster, "deployment", "emoji", "-n", namespace)["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert {"name": "GREETING", "value": "ready 🚀 — ok"} in main["env"]
    assert main["command"] == ["python", "-c", "print('🤖')"]


class StatusRecorder:
    """Every version of a template the API server stores while it runs, from a watch."""

    def __init__(self, api_client, namespace: str, name: str):
        self.versions: list[dict] = []
        self._watch = watch.Watch()
        self._api = CustomObjectsApi(api_client)
        self._args = (GROUP, VERSION, namespace, PLURAL)
        self._selector = f"metadata.name={name}"
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for event in self._watch.stream(
                self._api.list_namespaced_custom_object,
                *self._args,
                field_selector=self._selector,
                timeout_seconds=120,
            ):
                self.versions.append(event["object"])
        except ProtocolError:
            pass  # the connection closes under a stopped watch

    def stop(self) -> None:
        self._watch.stop()
        self._reader.join(timeout=10)


def test_a_spec_change_is_never_ready_before_its_children_are(
    cluster, operator, namespace, api_client
):
    apply_template(cluster, namespace, tiny_template("stale"))
    wait_ready(cluster, namespace, "stale")
    recorder = StatusRecorder(api_client, namespace, "stale")
    try:
        # A change that can never become ready: more GPUs than any node has.
        change = tiny_template("stale", gpus=9, gpuType="nvidia-hopper-h100")
        apply_template(cluster, namespace, change)
        wait_for(
            lambda: (
                (c := condition(cluster, namespace, "stale")) and c["reason"] == "Unschedulable"
            ),
            what="Ready=False/Unschedulable",
        )
    finally:
        recorder.stop()
    generation = get_json(cluster, "modeltemplate", "stale", "-n", namespace)["metadata"][
        "generation"
    ]
    claims = [
        c
        for version in recorder.versions
        for c in (version.get("status") or {}).get("conditions") or []
        if c["type"] == "Ready" and c.get("observedGeneration") == generation
    ]
    assert claims, "no status was written for the new generation"
    assert all(c["status"] == "False" for c in claims), claims
