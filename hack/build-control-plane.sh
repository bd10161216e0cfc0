#!/usr/bin/env bash
# Builds the pinned local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) from the Go module proxy into a cache directory that
# lives outside the repository. A build is skipped when the cache already holds the
# binaries for the pinned versions.
#
#   hack/build-control-plane.sh          # build if needed, print the bin directory
#
# Cache root: $MODELTEMPLATE_CACHE_DIR (default: ~/.cache/modeltemplate-operator).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${MODELTEMPLATE_CACHE_DIR:-$HOME/.cache/modeltemplate-operator}"
bin_dir="$cache_root/bin/kube-${KUBE_VERSION}_kwok-${KWOK_VERSION}"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

complete() {
  for b in "${binaries[@]}"; do [[ -x "$bin_dir/$b" ]] || return 1; done
}

if complete; then
  echo "$bin_dir"
  exit 0
fi

# Each step is stamped with the seconds since the build began (cold builds: where the time goes).
log() { echo "[build-control-plane +${SECONDS}s] $*" >&2; }
command -v go >/dev/null || { log "go is required (https://go.dev/dl)"; exit 1; }

staging_version="v0.${KUBE_VERSION#v1.}"
work="$cache_root/build/kube-${KUBE_VERSION}"
mkdir -p "$work" "$bin_dir.partial"
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export CGO_ENABLED=0

# The kubernetes module replaces its staging modules with local paths; a wrapper
# module must pin each of them to the matching published v0.x.y instead.
log "resolving k8s.io/kubernetes@${KUBE_VERSION} (staging modules at ${staging_version})"
gomod_path="$(cd "$work" && go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
mapfile -t staging < <(grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod_path" | awk '{print $1}' | sort -u)
if [[ ${#staging[@]} -eq 0 ]]; then
  log "could not read staging modules from $gomod_path"; exit 1
fi

{
  echo "module local.build/controlplane"
  echo
  echo "go 1.24"
  echo
  echo "require k8s.io/kubernetes ${KUBE_VERSION}"
  echo
  echo "replace ("
  for m in "${staging[@]}"; do echo "	$m => $m ${staging_version}"; done
  echo ")"
} > "$work/go.mod"
cat > "$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO

cd "$work"
log "go mod tidy"
go mod tidy >&2

ver_pkg=k8s.io/component-base/version
ldflags="-s -w -X ${ver_pkg}.gitVersion=${KUBE_VERSION} -X ${ver_pkg}.gitMajor=1 -X ${ver_pkg}.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2) -X ${ver_pkg}.gitTreeState=clean -X ${ver_pkg}.buildDate=1970-01-01T00:00:00Z"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=${KUBE_VERSION}"
# kwok (its own module) and etcd build beside the four Kubernetes commands, which share one
# go build: one action graph, so their common packages compile once and the links overlap.
log "installing kwok ${KWOK_VERSION} and building etcd (the version kubernetes ${KUBE_VERSION} pins), in the background"
GOBIN="$bin_dir.partial" GOFLAGS= go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION}" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}" >&2 &
kwok_pid=$!
go build -trimpath -ldflags "-s -w" -o "$bin_dir.partial/etcd" go.etcd.io/etcd/server/v3 >&2 &
etcd_pid=$!
log "building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl ${KUBE_VERSION}"
go build -trimpath -ldflags "$ldflags" -o "$bin_dir.partial/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl >&2
log "the Kubernetes commands are built"
wait "$etcd_pid" || { log "etcd failed to build"; exit 1; }
log "etcd is built"
wait "$kwok_pid" || { log "kwok failed to install"; exit 1; }
log "kwok is installed"

rm -rf "$bin_dir"
mv "$bin_dir.partial" "$bin_dir"
log "done: $bin_dir"
echo "$bin_dir"
