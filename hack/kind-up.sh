#!/usr/bin/env bash
# A kind cluster with the same fake GPU fleet as the local control plane: kwok runs
# in-cluster and manages the fake nodes from fake-gpu-nodes.yaml. Needs Docker.
#
#   hack/kind-up.sh        # then: export KUBECONFIG=.local-cluster/kind-kubeconfig
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
# shellcheck source=versions.env
source "$here/versions.env"
name="${KIND_CLUSTER_NAME:-modeltemplate}"
kubeconfig="$repo/.local-cluster/kind-kubeconfig"
mkdir -p "$repo/.local-cluster"

command -v docker >/dev/null || { echo "kind needs Docker" >&2; exit 1; }
if ! command -v kind >/dev/null; then
  GOBIN="$repo/.cache/bin" go install "sigs.k8s.io/kind@${KIND_VERSION}"
  export PATH="$repo/.cache/bin:$PATH"
fi

if ! kind get clusters | grep -qx "$name"; then
  kind create cluster --name "$name" --image "$KIND_NODE_IMAGE" --kubeconfig "$kubeconfig" --wait 120s
fi
export KUBECONFIG="$kubeconfig"

kwok_release="https://github.com/kubernetes-sigs/kwok/releases/download/${KWOK_VERSION}"
kubectl apply -f "$kwok_release/kwok.yaml"
kubectl apply -f "$kwok_release/stage-fast.yaml"
kubectl -n kube-system rollout status deployment/kwok-controller --timeout=120s

(cd "$repo" && .venv/bin/python -m devtools.localcluster manifests) \
  | kubectl apply --server-side --field-manager=localcluster -f -
kubectl wait --for=condition=Ready node -l type=kwok --timeout=120s
kubectl get nodes -L k8s.amazonaws.com/accelerator
echo "export KUBECONFIG=$kubeconfig"
