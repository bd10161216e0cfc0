"""Manifests the integration tests share."""

from __future__ import annotations

from typing import Any


def tiny_template(name: str, endpoint_type: str = "SYNC", **endpoint: Any) -> dict[str, Any]:
    """A CPU-only ModelTemplate small enough that a hundred fit on the fake fleet."""
    endpoint_config = {
        "cpus": "0.1",
        "memory": "128Mi",
        "storage": "1Gi",
        "minWorkers": 1,
        "maxWorkers": 1,
    }
    return {
        "apiVersion": "launch.modelops.dev/v1alpha1",
        "kind": "ModelTemplate",
        "metadata": {"name": name},
        "spec": {
            "endpointType": endpoint_type,
            "modelType": "GENERIC",
            "vendorConfiguration": {
                "bundleConfig": {"registry": "docker.io", "image": "modelops/tiny", "tag": "1"},
                "endpointConfig": endpoint_config | endpoint,
            },
        },
    }


#: KEDA's ScaledObject CRD as far as the operator cares: the API it applies to. KEDA's own
#: controller is not needed to see the operator switch to it.
KEDA_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "scaledobjects.keda.sh"},
    "spec": {
        "group": "keda.sh",
        "scope": "Namespaced",
        "names": {"kind": "ScaledObject", "plural": "scaledobjects", "singular": "scaledobject"},
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}
