"""render -> forwarder -> status: the forwarder takes exactly the arguments render gives it, in
every sample, and serves the routes on the ports the pod spec, Service and status name."""

from __future__ import annotations

import dataclasses
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
import yaml
from aiohttp import web
from forwarder_testkit import run
from support.templates import plan as template_plan

from modeltemplate_operator import contract as c
from modeltemplate_operator.api.validation import parse_manifest
from modeltemplate_operator.forwarder import Forwarder, parse_config
from modeltemplate_operator.forwarder.__main__ import main as forwarder_main
from modeltemplate_operator.plan.config import OperatorConfig
from modeltemplate_operator.plan.resolution import plan_for
from modeltemplate_operator.render.workloads import render
from modeltemplate_operator.status.conditions import endpoint_urls

pytestmark = pytest.mark.unit
SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
EXAMPLE_VALUES = {"str": "x", "int": 1, "float": 0.5, "bool": True, "list": [], "dict": {}}


def _served_samples():
    """(sample, plan, children) for every sample whose pods carry the forwarder."""
    out = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        manifest = yaml.safe_load(path.read_text())
        manifest["metadata"].update(namespace="ns", uid="uid-1")
        plan = plan_for(parse_manifest(manifest), OperatorConfig(), keda_installed=True)
        children = {o["kind"]: o for o in render(plan)}
        if "Deployment" in children:
            out.append(pytest.param(plan, children, id=path.stem))
    return out


def _containers(children):
    pod = children["Deployment"]["spec"]["template"]["spec"]
    return {ct["name"]: ct for ct in pod["containers"]}


class RecordingUpstream:
    """The model container: answers 200 to everything and records the paths it was asked."""

    def __init__(self):
        self.paths: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.paths.append(request.path)
        return web.json_response({"ok": True})


def test_the_forwarder_command_is_the_console_script():
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts[c.FORWARDER_COMMAND] == f"{forwarder_main.__module__}:main"


@pytest.mark.parametrize("plan, children", _served_samples())
def test_forwarder_accepts_and_serves_what_render_emits(plan, children):
    forwarder, main = _containers(children)["http-forwarder"], _containers(children)["main"]
    assert forwarder["command"] == [c.FORWARDER_COMMAND]
    config = parse_config(forwarder["args"], environ={})  # exactly render's arguments

    # Ports: the forwarder listens where the probes, the container port and the Service point,
    # and forwards to the port the model container declares.
    assert config.port == forwarder["ports"][0]["containerPort"]
    assert config.port == forwarder["readinessProbe"]["httpGet"]["port"]
    assert config.port == forwarder["livenessProbe"]["httpGet"]["port"]
    assert config.port == children["Service"]["spec"]["ports"][0]["targetPort"]
    assert config.upstream == f"http://127.0.0.1:{main['ports'][0]['containerPort']}"
    bundle = plan.spec.bundle_config
    assert (config.predict_route, config.streaming_predict_route, config.healthcheck_route) == (
        bundle.predict_route,
        bundle.streaming_predict_route,
        bundle.healthcheck_route,
    )
    assert config.per_worker == plan.workers.per_worker
    urls = endpoint_urls(plan)
    schema = plan.spec.model_request_parameters_schema
    paths = {name: urlsplit(url).path for name, url in urls.items()}

    async def scenario():
        upstream = RecordingUpstream()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", upstream.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        # Only where it listens and the upstream's address change: loopback ports of this test.
        fwd = Forwarder(
            dataclasses.replace(
                config, host="127.0.0.1", port=0, upstream=f"http://127.0.0.1:{port}"
            )
        )
        await fwd.start()
        base = f"http://127.0.0.1:{fwd.port}"
        params = {
            p.name: EXAMPLE_VALUES[p.type.value] for p in (schema.parameters if schema else [])
        }
        body = {"model_request_parameters": params, "prompt": "hi"}
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(base + forwarder["readinessProbe"]["httpGet"]["path"]) as r:
                    assert r.status == 200
                async with http.get(base + forwarder["livenessProbe"]["httpGet"]["path"]) as r:
                    assert r.status == 200
                assert upstream.paths == [bundle.healthcheck_route]
                async with http.get(base + paths["health"]) as r:
                    assert r.status == 200
                async with http.post(base + paths["predict"], json=body) as r:
                    assert r.status == 200, await r.text()
                assert upstream.paths[-1] == bundle.predict_route
                if "streaming" in paths:
                    async with http.post(base + paths["streaming"], json=body) as r:
                        assert r.status == 200, await r.text()
                    assert upstream.paths[-1] == bundle.streaming_predict_route
                async with http.get(base + c.METRICS_PATH) as r:
                    assert c.IN_FLIGHT_METRIC in await r.text()
        finally:
            await fwd.shutdown()
            await runner.cleanup()

    run(scenario())


def test_the_autoscalers_scale_on_the_forwarders_metric():
    hpa_plan = _plan_with(minWorkers=1, maxWorkers=3)
    hpa = {o["kind"]: o for o in render(hpa_plan)}["HorizontalPodAutoscaler"]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == c.HPA_METRIC
    adapter = (Path(__file__).resolve().parents[2] / "deploy" / "prometheus-adapter").rglob(
        "*.yaml"
    )
    rules = "".join(p.read_text() for p in adapter)
    assert c.IN_FLIGHT_METRIC in rules and c.HPA_METRIC in rules
    keda = {o["kind"]: o for o in render(_plan_with(minWorkers=0, maxWorkers=3))}["ScaledObject"]
    assert c.IN_FLIGHT_METRIC in keda["spec"]["triggers"][0]["metadata"]["query"]


def _plan_with(**endpoint):
    return template_plan(endpoint=endpoint, keda=True)
