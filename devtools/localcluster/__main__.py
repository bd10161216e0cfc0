"""``python -m devtools.localcluster up|down|status|nodes|manifests``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .cluster import REPO_ROOT, ClusterError, LocalCluster
from .nodes import load_node_manifests

DEFAULT_ROOT = REPO_ROOT / ".local-cluster"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localcluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "nodes", "manifests", "demo"])
    parser.add_argument(
        "--root", type=Path, default=Path(os.environ.get("LOCAL_CLUSTER_ROOT", DEFAULT_ROOT))
    )
    args = parser.parse_args(argv)
    cluster = LocalCluster(root=args.root.resolve())

    if args.command == "manifests":
        print(
            json.dumps(
                {"apiVersion": "v1", "kind": "List", "items": load_node_manifests()}, indent=2
            )
        )
        return 0
    if args.command == "down":
        cluster.down()
        print("local control plane stopped")
        return 0
    if args.command == "status":
        up = cluster.running()
        print(f"local control plane: {'running at ' + cluster.server if up else 'not running'}")
        return 0 if up else 1
    if args.command == "demo":
        from .demo import run

        try:
            return run(cluster)
        except ClusterError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    try:
        cluster.up()
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.command == "up":
        print(f"local control plane running at {cluster.server} (logs: {cluster.logs})")
        print(f"  export KUBECONFIG={cluster.kubeconfig}")
        print("  kubectl get nodes -L k8s.amazonaws.com/accelerator")
        print("  make cluster-down   # stop it")
    else:
        columns = ",".join(
            [
                "NAME:.metadata.name",
                "GPU-TYPE:.metadata.labels.k8s\\.amazonaws\\.com/accelerator",
                "CPU:.status.allocatable.cpu",
                "MEMORY:.status.allocatable.memory",
                "GPU:.status.allocatable.nvidia\\.com/gpu",
                "MIG-1G.20GB:.status.allocatable.nvidia\\.com/mig-1g\\.20gb",
                "MIG-3G.40GB:.status.allocatable.nvidia\\.com/mig-3g\\.40gb",
                "READY:.status.conditions[?(@.type=='Ready')].status",
            ]
        )
        print(cluster.kubectl("get", "nodes", "-o", f"custom-columns={columns}").stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
