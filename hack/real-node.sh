#!/usr/bin/env bash
# One real node beside the fake ones: kubelet and kube-proxy built from the pinned Kubernetes
# modules, containerd and the CNI plugins from Debian's packages, joined to a control plane.
#
#   hack/real-node.sh up   KUBECONFIG DIR IMAGE...   # start it; import IMAGEs (podman) into it
#   hack/real-node.sh down DIR                        # stop it and clean up
#
# The node is named real-node-0; its pods get addresses on a bridge (10.88.7.0/24), and
# kube-proxy (iptables) routes Services to them. What this machine needed, each a setting here:
# - no registry: the sandbox ("pause") image is a 20-line static C program built here;
# - containerd may not give a pod a negative oom_score_adj (the sandbox refuses to lower
#   it: "can't get final child's PID from pipe"): restrict_oom_score_adj;
# - containers' rlimits no higher than the host's (a base runtime spec with the host's);
# - cgroup v1 (hybrid): kubelet's failCgroupV1=false, the cgroupfs driver.
# Needs root. Each step is stamped with the seconds since it began.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache_root=${MODELTEMPLATE_CACHE:-$HOME/.cache/modeltemplate-operator}
bin="$cache_root/bin/real-node-${KUBE_VERSION}"
NODE=real-node-0
SUBNET=10.88.7.0/24
BRIDGE=mt0

log() { echo "[real-node +${SECONDS}s] $*" >&2; }

stop_pid() {
  local file=$1
  [ -f "$file" ] || return 0
  local pid
  pid=$(cat "$file")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$file"
}

down() {
  local dir=$1
  stop_pid "$dir/kube-proxy.pid"
  stop_pid "$dir/kubelet.pid"
  # the pods' containers first (their shims outlive containerd otherwise)
  if [ -S "$dir/containerd.sock" ]; then
    for id in $(ctr --address "$dir/containerd.sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$dir/containerd.sock" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
  fi
  stop_pid "$dir/containerd.pid"
  # whatever of this node still runs without its pid file (a set-up that failed half-way)
  for pid in $(pgrep -f -- "--config $dir/" || true); do kill -9 "$pid" 2>/dev/null || true; done
  pkill -f "containerd-shim-runc-v2 -namespace k8s.io -address $dir/containerd.sock" 2>/dev/null || true
  [ -x "$bin/kube-proxy" ] && "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true
  ip link delete "$BRIDGE" 2>/dev/null || true
  for m in $(grep -o "$dir/[^ ]*" /proc/mounts | sort -r); do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$dir"
}

build() {
  need=()
  command -v containerd >/dev/null || need+=(containerd)
  [ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
  command -v iptables >/dev/null || need+=(iptables)
  command -v gcc >/dev/null || need+=(gcc libc6-dev)
  if ((${#need[@]})); then
    log "installing ${need[*]} from Debian's packages"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2
  fi
  if [ ! -x "$bin/kubelet" ] || [ ! -x "$bin/kube-proxy" ]; then
    "$here/build-control-plane.sh" >/dev/null  # the module build kubelet shares
    log "building kubelet and kube-proxy ${KUBE_VERSION}"
    mkdir -p "$bin.partial"
    (cd "$cache_root/build/kube-${KUBE_VERSION}" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build \
      -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION}" \
      -o "$bin.partial/" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy) >&2
    cat >"$bin.partial/pause.c" <<'C'
/* A pod sandbox's first process: sleeps, reaps orphans, exits on SIGINT or SIGTERM. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
  signal(SIGINT, stop);
  signal(SIGTERM, stop);
  signal(SIGCHLD, reap);
  for (;;) pause();
}
C
    gcc -static -O2 -o "$bin.partial/pause" "$bin.partial/pause.c"
    rm -rf "$bin"
    mv "$bin.partial" "$bin"
  fi
}

up() {
  local kubeconfig=$1 dir=$2
  shift 2
  build
  down "$dir"
  mkdir -p "$dir"/{cni,pause,kubelet,pki}
  log "containerd (state in $dir)"
  containerd config default >"$dir/containerd.toml"
  ctr oci spec | python3 -c '
import json, resource, sys
spec = json.load(sys.stdin)
nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[0], 4096)
spec["process"]["rlimits"] = [
    {"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile},
    {"type": "RLIMIT_NPROC", "hard": nproc, "soft": nproc},
]
json.dump(spec, sys.stdout)' >"$dir/base-spec.json"
  sed -i \
    -e "s|^root = .*|root = \"$dir/root\"|" \
    -e "s|^state = .*|state = \"$dir/state\"|" \
    -e "s|address = \"/run/containerd/containerd.sock\"|address = \"$dir/containerd.sock\"|" \
    -e "s|sandbox_image = .*|sandbox_image = \"localhost/pause:real-node\"|" \
    -e "s|restrict_oom_score_adj = false|restrict_oom_score_adj = true|" \
    -e "s|bin_dir = \"/opt/cni/bin\"|bin_dir = \"/usr/lib/cni\"|" \
    -e "s|conf_dir = \"/etc/cni/net.d\"|conf_dir = \"$dir/cni\"|" \
    -e "/runtimes.runc\]/,/runtime_type/ s|base_runtime_spec = \"\"|base_runtime_spec = \"$dir/base-spec.json\"|" \
    "$dir/containerd.toml"
  cat >"$dir/cni/10-real-node.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "real-node", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$SUBNET"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$dir/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
  setsid containerd --config "$dir/containerd.toml" >"$dir/containerd.log" 2>&1 &
  echo $! >"$dir/containerd.pid"
  for _ in $(seq 100); do [ -S "$dir/containerd.sock" ] && break; sleep 0.1; done
  ctr_=(ctr --address "$dir/containerd.sock" -n k8s.io)

  log "images: the sandbox, and $*"
  cp "$bin/pause" "$dir/pause/pause"
  tar -C "$dir/pause" -c . | podman import --change 'ENTRYPOINT ["/pause"]' - localhost/pause:real-node >/dev/null
  for image in localhost/pause:real-node "$@"; do
    podman save "$image" 2>/dev/null | "${ctr_[@]}" images import - >/dev/null
  done

  log "kubelet and kube-proxy as $NODE"
  cat >"$dir/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$dir/containerd.sock
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
failSwapOn: false
readOnlyPort: 0
address: 127.0.0.1
port: 10251
healthzPort: 10258
resolvConf: /etc/resolv.conf
YAML
  setsid "$bin/kubelet" --config "$dir/kubelet.yaml" --kubeconfig "$kubeconfig" \
    --hostname-override "$NODE" --root-dir "$dir/kubelet" --cert-dir "$dir/pki" \
    >"$dir/kubelet.log" 2>&1 &
  echo $! >"$dir/kubelet.pid"
  cat >"$dir/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $kubeconfig}
hostnameOverride: $NODE
clusterCIDR: $SUBNET
conntrack: {maxPerCore: 0}
metricsBindAddress: 127.0.0.1:10259
healthzBindAddress: 127.0.0.1:10257
YAML
  setsid "$bin/kube-proxy" --config "$dir/kube-proxy.yaml" >"$dir/kube-proxy.log" 2>&1 &
  echo $! >"$dir/kube-proxy.pid"
  log "up: $NODE (logs in $dir)"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) shift; down "$1" ;;
  *) echo "usage: $0 up KUBECONFIG DIR IMAGE... | down DIR" >&2; exit 2 ;;
esac
