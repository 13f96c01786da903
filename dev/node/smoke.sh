#!/usr/bin/env bash
# The node tier end to end, as root: install packages (idempotent), build images, start the node
# (up.sh), deploy model store + predictor and curl the predictor Service's ClusterIP from the host
# (deploy.sh), print timings and image sizes, then tear everything down (down.sh) - also on failure.
#
# Usage (root): dev/node/smoke.sh          NODE_KEEP=1 leaves the node running (stop: dev/node/down.sh)
# Env: as up.sh / images.sh (PREDICTOR_BIN, MLOPS_K8S_BIN, CARGO_TARGET_DIR, MLOPS_NODE_DIR).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
t0=$SECONDS
finish() {
  local rc=$?
  if [[ ${NODE_KEEP:-} == 1 && $rc == 0 ]]; then log "node left running; dev/node/down.sh stops it"
  else "$NODE_HERE/down.sh" || rc=1; fi
  log "smoke $([[ $rc == 0 ]] && echo passed || echo FAILED) in $((SECONDS - t0))s"
  exit "$rc"
}
trap finish EXIT

"$NODE_HERE/up.sh" >/dev/null
answer=$("$NODE_HERE/deploy.sh")
echo "$answer"
python3 -c 'import json,sys; a=json.loads(sys.argv[1]); assert a["is_american"] in (0, 1) and a["version"], a' \
  "$answer"
log "timings: $(cat "$N/timings")"
log "images in containerd (ctr -n k8s.io images ls):"
ctr_ images ls | awk '$1 ~ /^localhost\// {printf "  %-36s %s %s\n", $1, $4, $5}' >&2
