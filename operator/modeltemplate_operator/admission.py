"""``modeltemplate-admission``: an optional validating webhook that checks a Model against its
template when it is applied.

CEL in the CRD cannot read another object, so a Model's creation parameters are otherwise
checked by the operator after the fact (``Valid=False InvalidParameters`` in its status). With
this webhook installed (``deploy/components/model-admission``), ``kubectl apply`` of a Model
whose parameters do not fit its template's ``modelCreationParametersSchema`` is refused at once,
with the same messages (the one checker, :func:`.instantiate.check_model`). A Model whose
template does not exist (yet: GitOps may apply it first) is admitted with a warning.

:func:`review` is the pure part (AdmissionReview in, AdmissionReview out); the server reads the
template with its own ServiceAccount (``get`` on modeltemplates, nothing else) and serves TLS.

==============  =====================================  ===============================
flag            environment variable                   default
==============  =====================================  ===============================
``--port``      MODELTEMPLATE_ADMISSION_PORT           9443
``--cert``      MODELTEMPLATE_ADMISSION_CERT           /etc/modeltemplate-admission/tls.crt
``--key``       MODELTEMPLATE_ADMISSION_KEY            /etc/modeltemplate-admission/tls.key
==============  =====================================  ===============================
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from . import decoding
from .api.kinds import MODEL_TEMPLATE
from .api.models import Model
from .api.validation import ManifestInvalid, format_errors, parse_manifest
from .controller.kube import request
from .controller.runtime import api_client
from .plan.instantiate import check_model

__all__ = ["PATH", "create_app", "review"]

PATH = "/validate-models"
ENV = "MODELTEMPLATE_ADMISSION_"
log = logging.getLogger(__name__)

#: Reads a template by (namespace, name); None when it does not exist.
TemplateReader = Callable[[str, str], Mapping[str, Any] | None]


def _response(uid: str, problems: list[str], warnings: list[str]) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "allowed": not problems}
    if problems:
        response["status"] = {
            "code": 422,
            "reason": "Invalid",
            "message": "; ".join(problems),
        }
    if warnings:
        response["warnings"] = warnings
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def review(admission: Mapping[str, Any], read_template: TemplateReader) -> dict[str, Any]:
    """The answer to one AdmissionReview of a Model (CREATE or UPDATE)."""
    req = admission.get("request") or {}
    uid = req.get("uid", "")
    obj = req.get("object") or {}
    try:
        model = Model.model_validate(obj)
    except ValidationError as exc:  # the CRD schema refuses these first; say so anyway
        return _response(uid, format_errors(exc), [])
    namespace = req.get("namespace") or (obj.get("metadata") or {}).get("namespace") or ""
    name = model.spec.template_ref.name
    body = read_template(namespace, name)
    if body is None:
        warning = (
            f"spec.templateRef.name: ModelTemplate {name!r} not found in namespace "
            f"{namespace!r}: the model is admitted and reports TemplateMissing until it exists"
        )
        return _response(uid, [], [warning])
    try:
        template = parse_manifest(dict(body))
    except ManifestInvalid as invalid:
        warning = f"ModelTemplate {name!r} is invalid: {'; '.join(invalid.errors)}"
        return _response(uid, [], [warning])
    problems = [f"{p['field']}: {p['problem']}" for p in check_model(model, template)]
    return _response(uid, problems, [])


def api_reader(api: Any) -> TemplateReader:
    """Templates read from the API server (a GET per review: admission is rare)."""

    def read(namespace: str, name: str) -> Mapping[str, Any] | None:
        try:
            return request(api, "GET", MODEL_TEMPLATE.path(namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    return read


def create_app(read_template: TemplateReader) -> FastAPI:
    app = FastAPI(title="Model admission webhook", docs_url=None, redoc_url=None)

    @app.post(PATH)
    async def validate(request_: Request) -> dict[str, Any]:
        # The Model inside is the user's: any depth the API server stores decodes (pruned),
        # and the checker names the field nested too deep.
        admission = decoding.loads(await request_.body())
        return await asyncio.to_thread(review, admission, read_template)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main(argv: Sequence[str] | None = None) -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="modeltemplate-admission", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default=env(ENV + "HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(env(ENV + "PORT", "9443")))
    parser.add_argument("--cert", default=env(ENV + "CERT", "/etc/modeltemplate-admission/tls.crt"))
    parser.add_argument("--key", default=env(ENV + "KEY", "/etc/modeltemplate-admission/tls.key"))
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(api_reader(api_client(4)))
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        ssl_certfile=args.cert,
        ssl_keyfile=args.key,
        log_level="info",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
