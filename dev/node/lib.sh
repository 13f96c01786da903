# Shared settings and helpers for the node test tier (sourced by up.sh, images.sh, model-store.sh, down.sh).
# Everything this tier creates is named here, so down.sh can remove exactly that and nothing else.
# shellcheck shell=bash disable=SC2034  # settings used by the scripts that source this file

NODE_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$NODE_HERE/../.." && pwd)

# State: config, PKI, logs, pids, containerd root/state, kubelet root, buildah storage, image archives.
N=${MLOPS_NODE_DIR:-/run/mlops-node}
NODE_NAME=mlops-node
# Network objects created (and removed) by this tier. Nothing else is touched.
NODE_NETNS=mlops-node-ext          # netns holding the veth peer (keeps the host end's link up)
NODE_VETH=mlnode0                  # host end of the veth; carries the node IP
NODE_VETH_PEER=mlnode0p
NODE_IP=10.77.0.1                  # node IP = apiserver advertise/bind address
NODE_PEER_IP=10.77.0.2
NODE_NET_PREFIX=24
POD_CIDR=10.88.0.0/16
CNI_BRIDGE=mlcni0
CNI_NET_NAME=mlops-node
SVC_CIDR=10.97.0.0/24
API_PORT=6443
CONTAINERD_SOCK=$N/containerd/containerd.sock
KUBECONFIG_ADMIN=$N/admin.kubeconfig

PAUSE_IMAGE=localhost/mlops/pause:node
STORE_IMAGE=localhost/mlops/model-store:node

exec {LOGFD}>&2   # log() writes here, so messages survive the output redirections of wait_for
log() { printf '[node %s] %s\n' "$(date +%H:%M:%S)" "$*" >&"$LOGFD"; }
die() { log "ERROR: $*"; exit 1; }
need_root() { [[ $(id -u) == 0 ]] || die "run as root (containerd, kubelet, iptables and netns need it)"; }

k8s_bin() { # directory with etcd, kube-*, kubectl (built by dev/cluster/build-binaries.sh)
  if [[ -n ${MLOPS_K8S_BIN:-} ]]; then echo "$MLOPS_K8S_BIN"
  else "$REPO/dev/cluster/build-binaries.sh" etcd kube-apiserver kube-controller-manager kube-scheduler kubelet \
    kube-proxy kubectl; fi
}

ctr_() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }
kc() { "$B/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" --request-timeout=20s "$@"; }

# wait_for <seconds> <description> <command...>: poll every 0.5 s, bounded.
wait_for() {
  local limit=$1 what=$2 t0=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS - t0 < limit)) || { log "timed out after ${limit}s waiting for $what"; return 1; }
    sleep 0.5
  done
}

# A daemon started by up.sh: own session, log in $N/log/<name>.log, pid in $N/pid/<name>.
start_daemon() { # start_daemon <name> <cmd...>
  local name=$1
  shift
  mkdir -p "$N/log" "$N/pid"
  ( # close every inherited fd > 2 (callers' pipes must not stay open for the daemon's lifetime)
    for f in "/proc/$BASHPID/fd/"*; do fd=${f##*/}; ((fd > 2)) && eval "exec $fd>&-"; done
    exec setsid "$@" </dev/null >"$N/log/$name.log" 2>&1
  ) &
  echo $! >"$N/pid/$name"
}
# running <pid>: exists and is not a zombie (our daemons' parent, PID 1 here, may reap them late).
running() { local st; st=$({ cut -d' ' -f3 "/proc/$1/stat"; } 2>/dev/null) && [[ $st != Z ]]; }
daemon_alive() { local p; p=$(cat "$N/pid/$1" 2>/dev/null) && running "$p"; }
# stop_daemon <name> [grace seconds]: SIGTERM, bounded wait, then SIGKILL; only the recorded pid, and only
# if its command line still names the expected binary (no pid reuse accidents).
stop_daemon() {
  local name=$1 grace=${2:-10} p exe
  p=$(cat "$N/pid/$name" 2>/dev/null) || return 0
  exe=$({ tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null || true)
  if [[ -n $exe && $exe == *"$name"* ]]; then
    kill -TERM "$p" 2>/dev/null || true
    local t0=$SECONDS
    while running "$p" && ((SECONDS - t0 < grace)); do sleep 0.2; done
    running "$p" && { log "$name ($p) ignored SIGTERM for ${grace}s: SIGKILL"; kill -KILL "$p" 2>/dev/null || true; }
    ((SECONDS - t0 < 2)) || log "$name took $((SECONDS - t0))s to stop"
  fi
  rm -f "$N/pid/$name"
}
