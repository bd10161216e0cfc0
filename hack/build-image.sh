#!/usr/bin/env bash
# Build the project's image without Docker or a registry, and check it.
#
#   hack/build-image.sh [TAG]        # default localhost/modeltemplate-operator:dev
#
# 1. podman, runc and debootstrap from Debian's packages (apt-get, once; needs root).
# 2. A base image made from Debian's packages: debootstrap's minbase of bookworm with Python
#    3.11, imported into podman (cached as a tarball in ~/.cache/modeltemplate-operator/images).
#    The Dockerfile keeps its public base for everyone else; here PYTHON_IMAGE points at this.
# 3. podman build of the Dockerfile (host network for pip; runc, as crun refuses this
#    machine's cgroups).
# 4. Checks: every entry point starts (--help) as the image's user, non-root, on a read-only
#    root filesystem with no network; the size is printed.
#
# Each step is stamped with the seconds since the build began.
set -euo pipefail

TAG=${1:-localhost/modeltemplate-operator:dev}
BASE=localhost/modeltemplate-base:bookworm
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${MODELTEMPLATE_CACHE:-$HOME/.cache/modeltemplate-operator}/images
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The container's limits may not exceed the host's (runc refuses to raise them); nproc is
# also capped at 4096 (runc refused the host's 96369 for the image's user here).
NOFILE=$(ulimit -n)
NPROC=$(ulimit -u)
[ "$NPROC" = unlimited ] || [ "$NPROC" -gt 4096 ] && NPROC=4096
RUN=(podman run --rm --runtime runc --ulimit "nofile=$NOFILE:$NOFILE" --ulimit "nproc=$NPROC:$NPROC")

log() { echo "[build-image +${SECONDS}s] $*" >&2; }

need=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || need+=("$tool"); done
if ((${#need[@]})); then
  log "installing ${need[*]} from Debian's packages"
  [ "$(id -u)" = 0 ] || { log "installing ${need[*]} needs root (apt-get)"; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2
fi

mkdir -p "$CACHE"
tarball="$CACHE/debian-$SUITE-python.tar"
if [ ! -s "$tarball" ]; then
  log "debootstrap $SUITE (minbase + python3) from $MIRROR"
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    "$SUITE" "$rootfs" "$MIRROR" >&2
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
fi
if ! podman image exists "$BASE"; then
  log "importing the base image $BASE"
  podman import "$tarball" "$BASE" >/dev/null
fi

# pip inside the build trusts what the host trusts (an intercepting proxy's CA, here): the
# host's CA bundle and a pip.conf naming it are mounted into the build's RUN steps only, never
# copied into the image.
bundle=/etc/ssl/certs/ca-certificates.crt
mounts=()
if [ -s "$bundle" ]; then
  pipconf=$(mktemp)
  printf '[global]\ncert = %s\n' "$bundle" >"$pipconf"
  chmod 644 "$pipconf"
  mounts=(-v "$bundle:$bundle:ro" -v "$pipconf:/etc/pip.conf:ro")
fi

log "building $TAG from the Dockerfile on $BASE"
podman build --runtime runc --network host --ulimit "nofile=$NOFILE:$NOFILE" "${mounts[@]}" \
  --build-arg "PYTHON_IMAGE=$BASE" -t "$TAG" -f "$ROOT/Dockerfile" "$ROOT" >&2

log "checking $TAG"
user=$("${RUN[@]}" --network none --read-only --entrypoint id "$TAG" -u)
[ "$user" != 0 ] || { log "the image runs as root"; exit 1; }
for entry in modeltemplate-operator modeltemplate-forwarder modeltemplate-gateway \
  modeltemplate-admission modeltemplate; do
  "${RUN[@]}" --network none --read-only --entrypoint "$entry" "$TAG" --help >/dev/null \
    || { log "$entry does not start"; exit 1; }
  log "  $entry starts (uid $user, read-only root, no network)"
done
size=$(podman image inspect --format '{{.Size}}' "$TAG")
log "done: $TAG, $((size / 1024 / 1024)) MiB, base $BASE"
echo "$TAG"
