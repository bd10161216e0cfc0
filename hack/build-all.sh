#!/usr/bin/env bash
# Everything `make test` runs besides Python, built at once: the control plane and the three
# tools are independent builds (each skipped when cached), so they run side by side — module
# downloads overlap with compiles, and a cold machine waits for the longest, not the sum.
# Each build's steps are stamped (+Ns); the total is printed at the end.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
names=(control-plane helm kstatus kustomize-controller)
pids=()
"$here/build-control-plane.sh" >/dev/null &
pids+=($!)
for tool in helm kstatus kustomize-controller; do
  "$here/build-tools.sh" "$tool" >/dev/null &
  pids+=($!)
done
failed=()
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || failed+=("${names[$i]}")
done
if (( ${#failed[@]} )); then
  echo "[build-all +${SECONDS}s] failed: ${failed[*]}" >&2
  exit 1
fi
echo "[build-all +${SECONDS}s] control plane and tools ready" >&2
