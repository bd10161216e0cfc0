# syntax=docker/dockerfile:1
# One image, every entry point:
#   modeltemplate-operator   (the default; the operator Deployment in deploy/)
#   modeltemplate-forwarder  (the http-forwarder sidecar the operator renders into each worker pod)
#   modeltemplate-gateway    (the SGP API gateway)
#   modeltemplate-admission  (the optional Model admission webhook)
#   modeltemplate            (validate / convert, offline)
# Build: docker build -t ghcr.io/modelops-dev/modeltemplate-operator:0.1.0 .
# Pin the base by digest in your registry mirror if you need bit-for-bit rebuilds:
#   docker build --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest> .
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install . \
 && /opt/venv/bin/python -m compileall -q /opt/venv \
 && /opt/venv/bin/modeltemplate-operator --help >/dev/null \
 && /opt/venv/bin/modeltemplate-forwarder --help >/dev/null \
 && /opt/venv/bin/modeltemplate-gateway --help >/dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="modeltemplate-operator" \
      org.opencontainers.image.description="Kubernetes operator for SGP Model Templates, and its http-forwarder sidecar" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A numeric, unprivileged user, so that runAsNonRoot can be verified by the kubelet.
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["modeltemplate-operator"]
