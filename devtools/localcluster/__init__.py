"""A real Kubernetes control plane on loopback, for development, tests and the demo.

etcd, kube-apiserver (RBAC, ServiceAccount admission), kube-controller-manager,
kube-scheduler and kwok run as plain processes from binaries that
``hack/build-control-plane.sh`` builds and caches; kwok keeps a fake GPU fleet
(``fake-gpu-nodes.yaml``) Ready and runs scheduled pods. No containers are started.
"""

from .cluster import ClusterError, ExistingCluster, LocalCluster, find_bin_dir, run_kubectl
from .nodes import load_node_manifests

__all__ = [
    "ClusterError",
    "ExistingCluster",
    "LocalCluster",
    "find_bin_dir",
    "load_node_manifests",
    "run_kubectl",
]
