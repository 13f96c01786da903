# shellcheck shell=bash
# The one launcher of the S3 store: SeaweedFS (`weed server`: master, volume server, filer and S3 gateway in one
# process; dev/cluster/build-binaries.sh weed). dev/node/s3-store.sh and the Rust test support
# (operator/tests/support/seaweedfs.rs) both start theirs with it. The master, volume server and filer listen on
# 127.0.0.1 only (their HTTP APIs take unauthenticated writes); S3 on the address given, checking SigV4
# signatures against one identity.
# Source it, or run `bash dev/seaweedfs.sh <function> <args>…`:
#   seaweedfs_init <dir> <s3 port>   on the first call for <dir>, and only then: its keys (<dir>/access-key and
#     <dir>/secret-key, 0600) and ports (<dir>/ports: "master master.grpc volume volume.grpc filer filer.grpc s3
#     s3.grpc", free loopback ports, S3's <s3 port> unless that is 0). Kept: the master's Raft state is per port.
#   seaweedfs_serve <weed binary> <dir> <s3 ip>   writes <dir>/identities.json and execs `weed server` with its
#     data in <dir>/data: the caller's process becomes the store (log on stdout and stderr), so whoever
#     started it owns its lifetime. Served again from the same <dir>, it keeps its data, ports and keys.
#   seaweedfs_remove_sockets <dir>   the gRPC unix sockets weed keeps in /tmp whatever its flags say (a clean
#     stop removes them, a killed weed leaves them; a killed weed restarts fine).
seaweedfs_init() {
  local dir=$1 s3_port=$2 ports
  mkdir -p "$dir/data"
  chmod 0700 "$dir"
  [[ -s $dir/ports ]] && return 0
  (umask 077 && printf 'AK%s\n' "$(openssl rand -hex 9 | tr a-f A-F)" >"$dir/access-key")
  (umask 077 && openssl rand -hex 20 >"$dir/secret-key")
  # Eight distinct ports (all bound at once), gRPC ones explicit: weed's default, port + 10000, may be taken.
  ports=$(python3 -c 'import socket
s = [socket.socket() for _ in range(8)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')
  if ((s3_port != 0)); then ports=$(awk -v p="$s3_port" '{$7 = p; print}' <<<"$ports"); fi
  echo "$ports" >"$dir/ports"
}

seaweedfs_serve() {
  local weed=$1 dir=$2 s3_ip=$3 key secret master master_grpc volume volume_grpc filer filer_grpc s3 s3_grpc
  key=$(cat "$dir/access-key") secret=$(cat "$dir/secret-key")
  read -r master master_grpc volume volume_grpc filer filer_grpc s3 s3_grpc <"$dir/ports"
  (umask 077 && cat >"$dir/identities.json" <<EOF
{"identities": [{"name": "mlops", "credentials": [{"accessKey": "$key", "secretKey": "$secret"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF
  )
  # weed also reads master/filer/security.toml from its working directory and -config_dir: <dir> has none.
  cd "$dir" || return
  # -logtostderr: glog's default is files in /tmp. No telemetry (it would post to telemetry.seaweedfs.com). Small
  # volumes. A 1 s Raft election timeout: the lone master leads ~2 s after a restart instead of 20 s (not
  # -master.resumeState=false: a master without its Raft state sees the volume server's topology id as foreign and
  # freezes volume growth, i.e. no new buckets). Each bucket is a collection with volumes of its own: one each
  # instead of 7 (what `weed mini` does too), and no ~5 s hold on a fresh cluster's first volume (there are no
  # other volume servers to wait for). The Iceberg and Lance catalogs (fixed ports 8181, 9101) off. No bucket made
  # by an upload: a missing one is NoSuchBucket.
  exec env WEED_MASTER_VOLUME_GROWTH_COPY_1=1 WEED_MASTER_VOLUME_GROWTH_ALLOCATION_DEFERRAL=0s \
    "$weed" -logtostderr -config_dir "$dir" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$dir/data" \
    -master.port="$master" -master.port.grpc="$master_grpc" -master.telemetry=false \
    -master.volumeSizeLimitMB=64 -master.electionTimeout=1s \
    -volume.port="$volume" -volume.port.grpc="$volume_grpc" -volume.max=32 -volume.preStopSeconds=0 \
    -filer -filer.port="$filer" -filer.port.grpc="$filer_grpc" -filer.localSocket="$dir/filer.sock" \
    -s3 -s3.ip.bind="$s3_ip" -s3.port="$s3" -s3.port.grpc="$s3_grpc" -s3.localSocket="$dir/s3.sock" \
    -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$dir/identities.json" -s3.autoCreateBucket=false
}

seaweedfs_remove_sockets() {
  local _m mg _v vg _f fg _s sg
  read -r _m mg _v vg _f fg _s sg 2>/dev/null <"$1/ports" || return 0
  rm -f "/tmp/seaweedfs-master-grpc-$mg.sock" "/tmp/seaweedfs-volume-grpc-$vg.sock" \
    "/tmp/seaweedfs-filer-grpc-$fg.sock" "/tmp/seaweedfs-s3-grpc-$sg.sock"
}

# Run, not sourced: the function named.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  declare -F "${1:-}" >/dev/null || { echo "usage: bash dev/seaweedfs.sh <function> <args>…" >&2; exit 2; }
  "$@"
fi
