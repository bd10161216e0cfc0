"""Limits and reserved names of the ModelTemplate API, shared by the models and the renderer."""

from __future__ import annotations

__all__ = [
    "RESERVED_ENV_NAMES",
    "RESERVED_ENV_PREFIXES",
    "MAX_WORKERS_LIMIT",
    "MAX_GPUS",
    "MAX_ENV_VARS",
    "MAX_PARAMETERS",
]

#: Environment variable names a template may not set, because the rendered Launch-style pod
#: sets them itself (or the node's GPU runtime does):
#:
#: - ``PORT``: the port the ``main`` container must listen on (5005);
#: - ``HEALTHCHECK_ROUTE``, ``PREDICT_ROUTE``, ``STREAMING_PREDICT_ROUTE``: the routes of the
#:   bundle, passed to the containers from ``bundleConfig``;
#: - ``NVIDIA_VISIBLE_DEVICES``, ``CUDA_VISIBLE_DEVICES``: set by the GPU device plugin; a
#:   template setting them would use GPUs it was not allocated.
RESERVED_ENV_NAMES: tuple[str, ...] = (
    "PORT",
    "HEALTHCHECK_ROUTE",
    "PREDICT_ROUTE",
    "STREAMING_PREDICT_ROUTE",
    "NVIDIA_VISIBLE_DEVICES",
    "CUDA_VISIBLE_DEVICES",
)
#: Reserved prefixes: ``MODELTEMPLATE_`` is the settings namespace of the operator;
#: ``KUBERNETES_`` is injected by the kubelet. The http-forwarder's ``FORWARDER_`` settings need
#: no reservation: a template's env reaches only the ``main`` container, never the sidecar.
RESERVED_ENV_PREFIXES: tuple[str, ...] = ("MODELTEMPLATE_", "KUBERNETES_")


MAX_WORKERS_LIMIT = 250
#: Upper bound of ``gpus`` per worker (8 GPUs x 7 MIG slices fits).
MAX_GPUS = 64
MAX_ENV_VARS = 128
MAX_PARAMETERS = 64
