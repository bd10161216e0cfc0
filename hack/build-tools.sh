#!/usr/bin/env bash
# Builds the pinned GitOps tools the chart and status tests run, from the Go module proxy, into
# the same cache as the control plane (hack/build-control-plane.sh). A build is skipped when the
# cache already holds the binary for the pinned version.
#
#   hack/build-tools.sh helm       # helm.sh/helm/v4/cmd/helm@$HELM_VERSION; prints the binary path
#   hack/build-tools.sh kstatus    # hack/kstatus (kstatus of sigs.k8s.io/cli-utils@$CLI_UTILS_VERSION)
#   hack/build-tools.sh kustomize-controller   # Flux's, @$KUSTOMIZE_CONTROLLER_VERSION, with the
#                                  # Kustomization and source CRDs it watches beside it (crds/)
#
# Cache root: $MODELTEMPLATE_CACHE_DIR (default: ~/.cache/modeltemplate-operator).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${MODELTEMPLATE_CACHE_DIR:-$HOME/.cache/modeltemplate-operator}"
# Each step is stamped with the seconds since the build began (cold builds: where the time goes).
tool="${1:-}"
log() { echo "[build-tools ${tool} +${SECONDS}s] $*" >&2; }

case "$tool" in
  helm)
    version="$HELM_VERSION"
    ;;
  kustomize-controller)
    version="$KUSTOMIZE_CONTROLLER_VERSION"
    ;;
  kstatus)
    # The program's own sources are part of its identity: an edit rebuilds it.
    version="${CLI_UTILS_VERSION}-$(cat "$here/kstatus/go.mod" "$here/kstatus/go.sum" "$here/kstatus/main.go" | sha256sum | cut -c1-12)"
    ;;
  *)
    echo "usage: $0 helm|kstatus|kustomize-controller" >&2
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
  kustomize-controller)
    # Its go.mod replaces its api module with ./api (and pins a few others): a wrapper module
    # repeats those replaces, pointing ./api at the published api module of the same version.
    module=github.com/fluxcd/kustomize-controller
    work="$cache_root/build/kustomize-controller-${version}"
    mkdir -p "$work"
    cd "$work"
    log "resolving ${module}@${version}"
    info="$(go mod download -json "${module}@${version}")"
    dep_dir="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])' <<<"$info")"
    {
      echo "module local.build/flux"
      echo
      echo "go 1.26"
      echo
      echo "require ${module} ${version}"
      echo
      python3 - "$dep_dir/go.mod" "$module" "$version" <<'PY'
import re, sys
text, module, version = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
lines = []
for block in re.findall(r"^replace \((.*?)^\)", text, re.M | re.S) + re.findall(r"^replace ([^(].*)$", text, re.M):
    lines += [l.strip() for l in block.strip().splitlines() if l.strip() and not l.strip().startswith("//")]
for line in lines:
    old, new = (part.strip() for part in line.split("=>"))
    if new.startswith("./"):
        new = f"{module}/{new[2:]} {version}"
    print(f"replace {old} => {new}")
PY
    } > go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$module" > tools.go
    log "go mod tidy"
    GOFLAGS=-mod=mod go mod tidy >&2
    log "building kustomize-controller ${version}"
    GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$partial/kustomize-controller" "$module" >&2
    # The CRDs it serves and the source kind the tests hand it an artifact through.
    source_api="$(go list -m -f '{{.Version}}' github.com/fluxcd/source-controller/api)"
    source_dir="$(go mod download -json "github.com/fluxcd/source-controller@${source_api}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
    mkdir -p "$partial/crds"
    cp "$dep_dir/config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml" "$partial/crds/"
    cp "$source_dir"/config/crd/bases/source.toolkit.fluxcd.io_*.yaml "$partial/crds/"
    ;;
esac

rm -rf "$(dirname "$bin")"
mv "$partial" "$(dirname "$bin")"
log "done: $bin"
echo "$bin"
