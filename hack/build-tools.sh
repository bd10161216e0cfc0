#!/usr/bin/env bash
# Builds the pinned GitOps tools the chart and status tests run, from the Go module proxy, into
# the same cache as the control plane (hack/build-control-plane.sh). A build is skipped when the
# cache already holds the binary for the pinned version.
#
#   hack/build-tools.sh helm       # helm.sh/helm/v4/cmd/helm@$HELM_VERSION; prints the binary path
#   hack/build-tools.sh kstatus    # hack/kstatus (kstatus of sigs.k8s.io/cli-utils@$CLI_UTILS_VERSION)
#
# Cache root: $MODELTEMPLATE_CACHE_DIR (default: ~/.cache/modeltemplate-operator).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${MODELTEMPLATE_CACHE_DIR:-$HOME/.cache/modeltemplate-operator}"
log() { echo "[build-tools] $*" >&2; }

tool="${1:-}"
case "$tool" in
  helm)
    version="$HELM_VERSION"
    ;;
  kstatus)
    # The program's own sources are part of its identity: an edit rebuilds it.
    version="${CLI_UTILS_VERSION}-$(cat "$here/kstatus/go.mod" "$here/kstatus/go.sum" "$here/kstatus/main.go" | sha256sum | cut -c1-12)"
    ;;
  *)
    echo "usage: $0 helm|kstatus" >&2
    exit 2
    ;;
esac

bin="$cache_root/bin/$tool-$version/$tool"
if [[ -x "$bin" ]]; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { log "go is required (https://go.dev/dl)"; exit 1; }
partial="$(dirname "$bin").partial"
rm -rf "$partial"
mkdir -p "$partial"
export CGO_ENABLED=0

case "$tool" in
  helm)
    log "installing helm ${HELM_VERSION} (helm.sh/helm/v4/cmd/helm)"
    GOBIN="$partial" GOFLAGS= go install -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION}" \
      "helm.sh/helm/v4/cmd/helm@${HELM_VERSION}" >&2
    ;;
  kstatus)
    log "building hack/kstatus (sigs.k8s.io/cli-utils ${CLI_UTILS_VERSION})"
    (cd "$here/kstatus" && GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" -o "$partial/kstatus" .) >&2
    ;;
esac

rm -rf "$(dirname "$bin")"
mv "$partial" "$(dirname "$bin")"
log "done: $bin"
echo "$bin"
