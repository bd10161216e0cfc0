"""The worker pod, built once for every workload that runs a template's container (pure).

An endpoint's Deployment and batch Job and a fine-tuning run's Job all run a ``main`` container
of a bundle (:class:`~..api.models.spec.ContainerConfig`): its image ``registry/image:tag``, its
requests equal to its limits (cpu, memory, ephemeral-storage and the accelerator resource of the
resolved :class:`~..plan.resolution.Scheduling`), ``/dev/shm`` in memory, on the nodes the
scheduling selects and tolerates, with the bundle's image pull secrets and a priority class.
Each renderer adds only what is its own: probes, ports and the forwarder sidecar of endpoints;
the configuration and dataset mounts and the restart policy of jobs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..api.models.spec import ContainerConfig
from ..plan.resolution import Scheduling

MAIN_CONTAINER = "main"
#: Launch's grace period of a worker.
GRACE_PERIOD_SECONDS = 600
SHM_VOLUME = "dshm"


def bundle_env(bundle: ContainerConfig) -> list[dict[str, Any]]:
    """A bundle's ``env`` and ``secretEnv`` as container env entries."""
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in (bundle.env or {}).items()]
    for ref in bundle.secret_env or []:
        selector = {"name": ref.secret_key_ref.name, "key": ref.secret_key_ref.key}
        if ref.secret_key_ref.optional is not None:
            selector["optional"] = ref.secret_key_ref.optional
        env.append({"name": ref.name, "valueFrom": {"secretKeyRef": selector}})
    return env


def main_container(
    bundle: ContainerConfig,
    scheduling: Scheduling,
    *,
    resources: Mapping[str, str],
    env: Sequence[Mapping[str, Any]],
    command: Sequence[str] | None,
    mounts: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The bundle's ``main`` container. ``resources``: cpu, memory, ephemeral-storage (the
    accelerator is added from ``scheduling``), requested as much as limited; ``mounts`` come
    after ``/dev/shm``."""
    requests = dict(resources)
    if scheduling.resource:
        requests[scheduling.resource] = str(scheduling.count)
    container: dict[str, Any] = {
        "name": MAIN_CONTAINER,
        "image": f"{bundle.registry}/{bundle.image}:{bundle.tag}",
        "env": list(env),
        "resources": {"requests": requests, "limits": dict(requests)},
        "volumeMounts": [{"name": SHM_VOLUME, "mountPath": "/dev/shm"}, *mounts],
    }
    if command:
        container["command"] = list(command)
    return container


def pod_spec(
    containers: Sequence[Mapping[str, Any]],
    bundle: ContainerConfig,
    scheduling: Scheduling,
    *,
    priority_class: str,
    grace_period_seconds: int = GRACE_PERIOD_SECONDS,
    restart_policy: str | None = None,
    volumes: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The pod running ``containers``: ``/dev/shm`` (then ``volumes``), the scheduling's node
    selector and tolerations, the bundle's image pull secrets."""
    spec: dict[str, Any] = {"containers": list(containers)}
    if restart_policy is not None:
        spec["restartPolicy"] = restart_policy
    spec["priorityClassName"] = priority_class
    spec["terminationGracePeriodSeconds"] = grace_period_seconds
    spec["volumes"] = [{"name": SHM_VOLUME, "emptyDir": {"medium": "Memory"}}, *volumes]
    if scheduling.node_selector:
        spec["nodeSelector"] = dict(scheduling.node_selector)
    if scheduling.tolerations:
        spec["tolerations"] = [dict(t) for t in scheduling.tolerations]
    if bundle.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s.name} for s in bundle.image_pull_secrets]
    return spec
