# shellcheck shell=bash
# The one launcher of a control plane: etcd, kube-apiserver, kube-controller-manager and kube-scheduler, the
# binaries dev/cluster/build-binaries.sh builds, with the PKI dev/pki.sh makes (<pki>: ca.{crt,key},
# apiserver.{crt,key}, sa.{key,pub}). dev/node/up.sh and the Rust test support
# (operator/tests/support/control_plane.rs) both start theirs with it: the flags here are the ones they share,
# each adds its own after them (the node its kubelet and aggregation-layer flags, the tests their controller
# tuning for kwok's fake nodes).
# Source it, or run `bash dev/cluster/control-plane.sh <function> <args>…`; each execs its component (log on
# stdout and stderr), so whoever started it owns its lifetime. <bin> is the binaries' directory.
#   control_plane_etcd <bin> <data dir> <client port> <peer port>      on 127.0.0.1, one member
#   control_plane_apiserver <bin> <pki> <etcd client port> <address> <port> <service CIDR> [<flag>…]
#   control_plane_controller_manager <bin> <pki> <kubeconfig> <address> <port> [<flag>…]
#   control_plane_scheduler <bin> <kubeconfig> <address> <port> [<flag>…]
control_plane_etcd() {
  local client=http://127.0.0.1:$3 peer=http://127.0.0.1:$4
  exec "$1/etcd" --name mlops --data-dir "$2" --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "mlops=$peer" \
    --unsafe-no-fsync --log-level warn
}

# The service-account tokens' issuer is the in-cluster name; events live 30 min (the default is 1 h).
control_plane_apiserver() {
  local bin=$1 pki=$2 etcd=$3 address=$4 port=$5 services=$6
  shift 6
  exec "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd" \
    --bind-address "$address" --secure-port "$port" --advertise-address "$address" --cert-dir "$pki/apiserver-certs" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" --client-ca-file "$pki/ca.crt" \
    --service-cluster-ip-range "$services" --allow-privileged=false --authorization-mode Node,RBAC \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" --event-ttl 30m "$@"
}

# No leader election (one of each); the cluster CA signs CSRs; the controllers share the kubeconfig's identity
# instead of a ServiceAccount each. Both controllers may send 300 requests/s, bursts of 600.
control_plane_controller_manager() {
  local bin=$1 pki=$2 kubeconfig=$3 address=$4 port=$5
  shift 5
  exec "$bin/kube-controller-manager" --kubeconfig "$kubeconfig" --leader-elect=false \
    --bind-address "$address" --secure-port "$port" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --use-service-account-credentials=false --kube-api-qps 300 --kube-api-burst 600 "$@"
}

control_plane_scheduler() {
  local bin=$1 kubeconfig=$2 address=$3 port=$4
  shift 4
  exec "$bin/kube-scheduler" --kubeconfig "$kubeconfig" --leader-elect=false \
    --bind-address "$address" --secure-port "$port" --kube-api-qps 300 --kube-api-burst 600 "$@"
}

# Run, not sourced: the function named.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  declare -F "${1:-}" >/dev/null || { echo "usage: bash dev/cluster/control-plane.sh <function> <args>…" >&2; exit 2; }
  "$@"
fi
