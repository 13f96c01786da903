#!/usr/bin/env bash
# The node's S3 model store: SeaweedFS (`weed server`: master, volume server, filer and S3 gateway in one
# process; dev/cluster/build-binaries.sh weed) as a host daemon. S3 listens on $S3_ENDPOINT (the node IP: pods
# reach it through their route to the node IP, like the registry) and checks SigV4 signatures against one
# identity whose keys are made on the first start; the master, volume server and filer listen on 127.0.0.1
# only (their HTTP APIs take unauthenticated writes: the filer's is how this script makes the bucket
# $S3_BUCKET). State under $N/s3: data, ports, keys and $N/s3/credentials.env (0600: S3_ENDPOINT, S3_BUCKET,
# AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION). Prints the endpoint.
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
  local weed fresh=0 key secret master master_grpc volume volume_grpc filer filer_grpc s3_grpc filer_url code
  daemon_alive weed && die "the S3 store (weed) is already running"
  if [[ -x ${MLOPS_K8S_BIN:-/nonexistent}/weed ]]; then weed=$MLOPS_K8S_BIN/weed
  else weed=$("$REPO/dev/cluster/build-binaries.sh" weed)/weed; fi
  mkdir -p "$S/data"
  chmod 0700 "$S"
  if [[ ! -s $S/secret-key ]]; then
    fresh=1
    (umask 077 && printf 'AK%s\n' "$(openssl rand -hex 9 | tr a-f A-F)" >"$S/access-key")
    (umask 077 && openssl rand -hex 20 >"$S/secret-key")
    # Loopback ports for everything but S3, gRPC ones explicit (weed's default, port + 10000, may be taken).
    freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
    echo "$(freeport) $(freeport) $(freeport) $(freeport) $(freeport) $(freeport) $(freeport)" >"$S/ports"
  fi
  key=$(cat "$S/access-key") secret=$(cat "$S/secret-key")
  read -r master master_grpc volume volume_grpc filer filer_grpc s3_grpc <"$S/ports"
  (umask 077 && cat >"$S/identities.json" <<EOF
{"identities": [{"name": "mlops", "credentials": [{"accessKey": "$key", "secretKey": "$secret"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF
  )
  (umask 077 && cat >"$S/credentials.env" <<EOF
S3_ENDPOINT=$S3_ENDPOINT
S3_BUCKET=$S3_BUCKET
AWS_ACCESS_KEY_ID=$key
AWS_SECRET_ACCESS_KEY=$secret
AWS_REGION=us-east-1
EOF
  )
  # weed also reads master/filer/security.toml from its working directory: $S has none.
  cd "$S"
  # -logtostderr: glog's default is files in /tmp. No telemetry (it would post to telemetry.seaweedfs.com).
  # A 1 s election timeout: the lone master leads ~2 s after a restart instead of 20 s. One volume per new
  # bucket instead of 7, and no hold on a fresh cluster's first volume (nothing else to wait for). The Iceberg
  # and Lance catalogs (fixed ports 8181, 9101) off. No bucket made by an upload: a missing one is NoSuchBucket.
  start_daemon weed env WEED_MASTER_VOLUME_GROWTH_COPY_1=1 WEED_MASTER_VOLUME_GROWTH_ALLOCATION_DEFERRAL=0s \
    "$weed" -logtostderr -config_dir "$S" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$S/data" \
    -master.port="$master" -master.port.grpc="$master_grpc" -master.telemetry=false \
    -master.volumeSizeLimitMB=64 -master.electionTimeout=1s \
    -volume.port="$volume" -volume.port.grpc="$volume_grpc" -volume.max=32 -volume.preStopSeconds=0 \
    -filer -filer.port="$filer" -filer.port.grpc="$filer_grpc" -filer.localSocket="$S/filer.sock" \
    -s3 -s3.ip.bind="$S3_IP" -s3.port="$S3_PORT" -s3.port.grpc="$s3_grpc" -s3.localSocket="$S/s3.sock" \
    -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$S/identities.json" -s3.autoCreateBucket=false
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
