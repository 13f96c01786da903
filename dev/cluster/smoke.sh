#!/usr/bin/env bash
# Smoke check: etcd + kube-apiserver from build-binaries.sh start on loopback (temp dir,
# throwaway openssl PKI, free 127.0.0.1 ports) and `kubectl get --raw /readyz` says ok.
# Everything started here is stopped again and the temp dir removed.
#
# Usage: dev/cluster/smoke.sh [bin-dir]   (default: run build-binaries.sh, which reuses its cache)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
B=${1:-$("$here/build-binaries.sh" etcd kube-apiserver kubectl)}
log() { printf '[smoke %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

D=$(mktemp -d "${TMPDIR:-/tmp}/mlops-smoke.XXXXXX")
pids=()
cleanup() {
  local rc=$? i
  # Stop in reverse start order (apiserver before etcd), each by its own pid.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  if [[ $rc -ne 0 ]]; then
    for f in "$D"/*.log; do [[ -f $f ]] && { log "--- tail $f"; tail -n 20 "$f" >&2; }; done
  fi
  rm -rf "$D"
}
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
etcd_port=$(freeport) peer_port=$(freeport) api_port=$(freeport)

# --- PKI (openssl): CA, apiserver serving cert, admin client cert, SA key pair --------
P=$D/pki
mkdir -p "$P"
source "$(dirname "${BASH_SOURCE[0]}")/../pki.sh"
pki_ca mlops-smoke-ca
pki_sign apiserver /CN=kube-apiserver \
  'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth'
pki_sign admin '/O=system:masters/CN=admin' 'extendedKeyUsage=clientAuth'
pki_sa_keys

# --- etcd + kube-apiserver ----------------------------------------------------------
start=$SECONDS
"$B/etcd" --name smoke --data-dir "$D/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "smoke=http://127.0.0.1:$peer_port" --unsafe-no-fsync >"$D/etcd.log" 2>&1 &
pids+=($!)

"$B/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address 127.0.0.1 --secure-port "$api_port" --advertise-address 127.0.0.1 --cert-dir "$D/certs" \
  --tls-cert-file "$P/apiserver.crt" --tls-private-key-file "$P/apiserver.key" --client-ca-file "$P/ca.crt" \
  --service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true --authorization-mode RBAC \
  --disable-admission-plugins ServiceAccount \
  --service-account-issuer https://kubernetes.default.svc \
  --service-account-key-file "$P/sa.pub" --service-account-signing-key-file "$P/sa.key" \
  >"$D/kube-apiserver.log" 2>&1 &
pids+=($!)

K=$D/admin.kubeconfig
kc() { "$B/kubectl" --kubeconfig "$K" "$@"; }
kc config set-cluster smoke --server "https://127.0.0.1:$api_port" --certificate-authority "$P/ca.crt" --embed-certs >/dev/null
kc config set-credentials admin --client-certificate "$P/admin.crt" --client-key "$P/admin.key" --embed-certs >/dev/null
kc config set-context smoke --cluster smoke --user admin >/dev/null
kc config use-context smoke >/dev/null

ready=
for _ in $(seq 1 120); do
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { log "process $p exited early"; exit 1; }; done
  if ready=$(kc get --raw /readyz 2>/dev/null) && [[ $ready == ok ]]; then break; fi
  sleep 0.5
done
[[ $ready == ok ]] || { log "/readyz not ok after $((SECONDS - start))s: ${ready:-no answer}"; exit 1; }
log "etcd :$etcd_port + kube-apiserver :$api_port ready in $((SECONDS - start))s"
log "server $(kc version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')"
kc get namespaces >&2
echo "readyz: $ready"
