#!/usr/bin/env bash
# Stop or start the node's private registry (same storage, credentials and certificate) on a node started
# by dev/node/up.sh: the "registry down during a rollout" fault, by hand or from a test.
#
# Usage (root): dev/node/registry.sh stop|start
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
[[ -f $N/env ]] || die "no node: run dev/node/up.sh first"
case ${1:-} in
  stop) registry_stop && log "registry $REGISTRY stopped" ;;
  start)
    daemon_alive docker-registry && die "docker-registry is already running"
    registry_start && log "registry $REGISTRY started"
    ;;
  *) die "usage: dev/node/registry.sh stop|start" ;;
esac
