#!/usr/bin/env bash
# The node's S3 model store: SeaweedFS (`weed server`: master, volume server, filer and S3 gateway in one
# process; dev/cluster/build-binaries.sh weed) as a host daemon, started by dev/seaweedfs.sh (the launcher of the
# tests' stores too). S3 listens on $S3_ENDPOINT (the node IP: pods reach it through their route to the node IP,
# like the registry) and checks SigV4 signatures against one identity whose keys are made on the first start;
# the master, volume server and filer listen on 127.0.0.1 only (their HTTP APIs take unauthenticated writes: the
# filer's is how this script makes the bucket $S3_BUCKET). State under $N/s3: data, ports, keys and
# $N/s3/credentials.env (0600: S3_ENDPOINT, S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
# Prints the endpoint.
#
# stop / start is the "model store down" fault: start again keeps data, ports and keys; it serves reads at
# once, writes after the master's warm-up (~15 s: it waits for its volume servers' heartbeats).
#
# Usage (root): dev/node/s3-store.sh start|stop
# Env: MLOPS_K8S_BIN  dir with weed (default: the running node's, else dev/cluster/build-binaries.sh weed)
#      MLOPS_S3_IP    bind S3 to this address instead of the node IP, and need no node (a try on 127.0.0.1)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
if [[ -n ${MLOPS_S3_IP:-} ]]; then
  S3_IP=$MLOPS_S3_IP
  S3_ENDPOINT=http://$S3_IP:$S3_PORT
else
  [[ -f $N/env ]] || die "no node: run dev/node/up.sh first (or set MLOPS_S3_IP=127.0.0.1 to try without one)"
  S3_IP=$NODE_IP
  # shellcheck source=/dev/null
  source "$N/env" # MLOPS_K8S_BIN of the node
fi
S=$N/s3
filer_ready_file=/.ready/probe # outside /buckets: invisible to S3

s3_store_start() {
  local weed fresh=0 filer_url code _m _mg _v _vg filer _fg _s _sg
  daemon_alive weed && die "the S3 store (weed) is already running"
  if [[ -x ${MLOPS_K8S_BIN:-/nonexistent}/weed ]]; then weed=$MLOPS_K8S_BIN/weed
  else weed=$("$REPO/dev/cluster/build-binaries.sh" weed)/weed; fi
  [[ -s $S/ports ]] || fresh=1
  seaweedfs_init "$S" "$S3_PORT"
  read -r _m _mg _v _vg filer _fg _s _sg <"$S/ports"
  (umask 077 && cat >"$S/credentials.env" <<EOF
S3_ENDPOINT=$S3_ENDPOINT
S3_BUCKET=$S3_BUCKET
AWS_ACCESS_KEY_ID=$(cat "$S/access-key")
AWS_SECRET_ACCESS_KEY=$(cat "$S/secret-key")
AWS_REGION=us-east-1
EOF
  )
  start_daemon weed bash "$REPO/dev/seaweedfs.sh" seaweedfs_serve "$weed" "$S" "$S3_IP"
  filer_url=http://127.0.0.1:$filer
  # Up: S3's health probe (unauthenticated). Working: a file written (first start) and read through the filer.
  printf 'ready\n' >"$S/probe"
  if ! { wait_for 60 "S3 on $S3_ENDPOINT" curl -sf -o /dev/null "$S3_ENDPOINT/healthz" &&
    { ((fresh == 0)) || wait_for 60 "the store to take files" curl -sf -o /dev/null -T "$S/probe" \
      "$filer_url$filer_ready_file"; } &&
    wait_for 60 "the store to serve files" curl -sf -o /dev/null "$filer_url$filer_ready_file"; }; then
    tail -n 30 "$N/log/weed.log" >&2
    s3_store_stop
    return 1
  fi
  # A bucket is a directory under /buckets on the filer (201 made, 409 there already).
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$filer_url/buckets/$S3_BUCKET/")
  [[ $code == 201 || $code == 409 ]] || { s3_store_stop; die "creating bucket $S3_BUCKET: HTTP $code"; }
}

case ${1:-} in
  start)
    t0=$SECONDS
    s3_store_start
    log "S3 store $S3_ENDPOINT up in $((SECONDS - t0))s (bucket $S3_BUCKET, keys in $S/credentials.env)"
    echo "$S3_ENDPOINT"
    ;;
  stop) s3_store_stop && log "S3 store $S3_ENDPOINT stopped" ;;
  *) die "usage: dev/node/s3-store.sh start|stop" ;;
esac
