# shellcheck shell=bash
# The one launcher of ArgoCD's components outside a pod: redis (its cache, Debian's redis-server), the repo
# server, the application controller and argocd-server, the binaries dev/argocd/build.sh builds, on 127.0.0.1.
# dev/delivery-report and the Rust test support (operator/tests/support/argocd.rs, for the gitops tiers and the
# node tier) both start theirs with it. Every path a component writes is under <dir> (home/, tmp/, static/);
# <kubeconfig> is the cluster it runs in, its in-cluster destination https://kubernetes.default.svc (ArgoCD's
# ARGOCD_FAKE_IN_CLUSTER switch); <bin> the directory dev/argocd/build.sh prints.
# Source it, or run `bash dev/argocd/components.sh <function> <args>…`; each execs its component (log on stdout
# and stderr), so whoever started it owns its lifetime:
#   argocd_redis <dir> <port>
#   argocd_repo_server <bin> <dir> <redis port> <port> <metrics port>
#   argocd_application_controller <bin> <dir> <kubeconfig> <redis port> <repo-server port> <metrics port>
#   argocd_server <bin> <dir> <kubeconfig> <redis port> <repo-server port> <port> <metrics port> [tls]
ARGOCD_NAMESPACE=argocd # as in ArgoCD's own install manifests and our argocd/ files

argocd_redis() {
  mkdir -p "$1"
  exec redis-server --bind 127.0.0.1 --port "$2" --save "" --appendonly no --dir "$1"
}

argocd_repo_server() {
  argocd_exec "$1" "$2" '' argocd-repo-server --redis "127.0.0.1:$3" --disable-tls \
    --address 127.0.0.1 --port "$4" --metrics-address 127.0.0.1 --metrics-port "$5"
}

# No periodic resync (1 h): every sync comes from a refresh (a webhook, a test's trigger). Each resource's
# health kept in the Application's status (ArgoCD 3 keeps it only in redis by default), where the tests read
# what our health check said.
argocd_application_controller() {
  argocd_exec "$1" "$2" "$3" argocd-application-controller --redis "127.0.0.1:$4" --namespace "$ARGOCD_NAMESPACE" \
    --repo-server "127.0.0.1:$5" --repo-server-plaintext --metrics-port "$6" --app-resync 3600 \
    --persist-resource-health
}

# On 127.0.0.1 (its REST gateway dials its own gRPC at localhost:<port>, so it must listen there). Plain HTTP/gRPC
# (--insecure: nothing but this machine reaches it), or with `tls` TLS as argocd-server does it by itself (a
# self-signed certificate made at start, no argocd-secret TLS key), for the web UI embedded in the binary
# (dev/argocd/build.sh). --staticassets is an empty directory (nothing beyond the embedded UI). No SSO is
# configured; a loopback Dex address keeps it from ever resolving the default in-cluster name.
argocd_server() {
  local tls=(--insecure)
  [[ ${8:-} != tls ]] || tls=()
  argocd_exec "$1" "$2" "$3" argocd-server --redis "127.0.0.1:$4" --namespace "$ARGOCD_NAMESPACE" \
    --repo-server "127.0.0.1:$5" --repo-server-plaintext --address 127.0.0.1 --port "$6" \
    --metrics-address 127.0.0.1 --metrics-port "$7" "${tls[@]}" \
    --dex-server 127.0.0.1:1 --dex-server-plaintext --staticassets "$2/static"
}

# argocd_exec <bin> <dir> <kubeconfig or ''> <component> <flags…>: text logs, every path under <dir>, the
# repo server's kustomize from <bin>.
argocd_exec() {
  local bin=$1 dir=$2 kubeconfig=$3 component=$4 vars
  shift 4
  mkdir -p "$dir/home" "$dir/tmp" "$dir/static"
  vars=(HOME="$dir/home" TMPDIR="$dir/tmp" ARGOCD_ASK_PASS_SOCK="$dir/askpass.sock" ARGOCD_GPG_ENABLED=false
    GIT_CONFIG_NOSYSTEM=1 PATH="$bin:$PATH")
  [[ -z $kubeconfig ]] || vars+=(KUBECONFIG="$kubeconfig" ARGOCD_FAKE_IN_CLUSTER=true)
  exec env "${vars[@]}" "$bin/$component" --loglevel info --logformat text "$@"
}

# Run, not sourced: the function named.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  declare -F "${1:-}" >/dev/null || { echo "usage: bash dev/argocd/components.sh <function> <args>…" >&2; exit 2; }
  "$@"
fi
