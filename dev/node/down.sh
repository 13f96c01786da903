#!/usr/bin/env bash
# Tear down what dev/node/up.sh started, and only that: workloads (so kubelet/CNI release pod networks),
# kube-proxy (+ `kube-proxy --cleanup`), kubelet, control plane, the registry, the S3 store (s3-store.sh),
# containerd and its shims, leftover pod processes (by our cgroup root only), mounts under $N, pod netns, the
# workers (worker.sh down), the client netns mlops-node-client (+ /etc/netns/mlops-node-client), the mlcni0
# bridge, the mlnode0 veth and the mlops-node-ext netns, KUBE-* iptables chains, cgroups under /mlops-node,
# and the sysctls kubelet/CNI changed (restored from $N/sysctl.orig). Idempotent; every wait is bounded. Exit
# code 1 if something could not be removed (it says what).
#
# Usage (root): dev/node/down.sh [--keep-state]   (--keep-state: leave $N for post-mortem reading)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
keep=${1:-}
problems=0
warn() { log "WARN: $*"; problems=1; }
B=$(known_k8s_bin)
t0=$SECONDS

# --- 1. workloads: let kubelet stop sandboxes normally (CNI DEL frees IPs and veths) ---------------------
if daemon_alive kube-apiserver && daemon_alive kubelet && [[ -x $B/kubectl ]]; then
  log "deleting workloads"
  # The operator pods and the Predictors first: a running operator would re-create the Deployments
  # deleted next (and their pods), keeping pods listed long after.
  kc -n predictor-system delete deployments --all --wait=false >/dev/null 2>&1 || true
  kc -n predictor-system delete pods --all --grace-period=1 --wait=false >/dev/null 2>&1 || true
  kc delete predictors.mlops.dev --all -A --wait=false >/dev/null 2>&1 || true
  # metrics.k8s.io goes away with metrics-server: unregister it first, so discovery stays complete.
  kc delete apiservice v1beta1.metrics.k8s.io --ignore-not-found --wait=false >/dev/null 2>&1 || true
  kc delete deployments,replicasets,statefulsets,daemonsets,jobs --all -A --wait=false >/dev/null 2>&1 || true
  kc delete pods --all -A --grace-period=2 --wait=false >/dev/null 2>&1 || true
  # shellcheck disable=SC2016  # expanded by the inner bash
  wait_for 45 "pods gone" bash -c '[[ -z $("$0" --kubeconfig "$1" get pods -A -o name 2>/dev/null) ]]' \
    "$B/kubectl" "$KUBECONFIG_ADMIN" || warn "pods still listed after 45s"
fi
# Sandboxes are removed by kubelet's GC shortly after the pods are gone.
if daemon_alive containerd; then
  # shellcheck disable=SC2016
  wait_for 30 "containerd tasks gone" bash -c '[[ -z $(ctr --address "$0" -n k8s.io tasks ls -q 2>/dev/null) ]]' \
    "$CONTAINERD_SOCK" || log "containerd still has tasks; forcing"
fi

# --- 1b. the workers (worker.sh): each with its daemons, pods, netns, routes and state -------------------------
for w in $(workers_up); do
  "$NODE_HERE/worker.sh" down "$w" || warn "worker $w: worker.sh down failed"
done

log "stopping kube-proxy ($((SECONDS - t0))s)"
# --- 2. kube-proxy and its iptables rules -----------------------------------------------------------------
stop_daemon kube-proxy
# Whole output then a match, not `| grep -q`: under pipefail a producer cut off by grep's early exit fails (141).
if [[ -x $B/kube-proxy && $(iptables -t nat -S 2>/dev/null) == *'-N KUBE-'* ]]; then
  tc=$SECONDS
  timeout 60 "$B/kube-proxy" --cleanup >"$N/log/kube-proxy-cleanup.log" 2>&1 || true
  log "kube-proxy --cleanup took $((SECONDS - tc))s"
fi

# --- 3. kubelet, control plane ----------------------------------------------------------------------------
stop_daemon kubelet 15
# Pod netns paths of our sandboxes, while containerd can still tell us.
netns_paths=()
if daemon_alive containerd; then
  for id in $(ctr_ containers ls -q 2>/dev/null); do
    while read -r p; do [[ -n $p ]] && netns_paths+=("$p"); done < <(ctr_ containers info "$id" 2>/dev/null |
      python3 -c 'import json,sys
try: spec = json.load(sys.stdin)["Spec"]
except Exception: sys.exit(0)
for ns in (spec.get("linux") or {}).get("namespaces") or []:
    if ns.get("type") == "network" and ns.get("path"): print(ns["path"])')
  done
  # Remaining tasks (kubelet did not stop them): kill, then remove tasks and containers.
  for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
  sleep 1
  for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks rm -f "$id" >/dev/null 2>&1 || true; done
  for id in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers rm "$id" >/dev/null 2>&1 || true; done
fi
for d in kube-scheduler kube-controller-manager kube-apiserver etcd docker-registry; do stop_daemon "$d"; done
s3_store_stop # the S3 model store, if s3-store.sh started one

log "stopping containerd ($((SECONDS - t0))s)"
# --- 4. containerd and its shims ---------------------------------------------------------------------------
stop_daemon containerd 15
# Shims outlive containerd, and pod processes may be left behind (lib.sh kill_node_processes).
kill_node_processes "$CONTAINERD_SOCK" "$NODE_NAME"
sleep 0.5

log "cleaning mounts, network, iptables, cgroups ($((SECONDS - t0))s)"
# --- 5. mounts under $N, pod netns ----------------------------------------------------------------------------
umount_under "$N" || warn "mounts remain under $N"
for p in "${netns_paths[@]}"; do
  [[ -e $p ]] || continue
  ip netns delete "$(basename "$p")" 2>/dev/null || { umount "$p" 2>/dev/null; rm -f "$p"; }
done
for ns in $(idle_pod_netns "${POD_CIDR%.*.*}."); do
  ip netns delete "$ns" 2>/dev/null || warn "cannot delete netns $ns"
done

# --- 6. network objects ----------------------------------------------------------------------------------------
# The client netns (its veth pair goes with it), and its resolv.conf for `ip netns exec`.
ip netns list 2>/dev/null | grep -qw "$CLIENT_NETNS" &&
  { ip netns delete "$CLIENT_NETNS" || warn "cannot delete netns $CLIENT_NETNS"; }
# (Deleting the netns removes the pair asynchronously: a link gone by the time of our delete is fine.)
ip link show "$CLIENT_VETH" >/dev/null 2>&1 && { ip link delete "$CLIENT_VETH" 2>/dev/null ||
  ! ip link show "$CLIENT_VETH" >/dev/null 2>&1 || warn "cannot delete $CLIENT_VETH"; }
rm -rf "/etc/netns/$CLIENT_NETNS"
ip link show "$CNI_BRIDGE" >/dev/null 2>&1 && { ip link delete "$CNI_BRIDGE" || warn "cannot delete $CNI_BRIDGE"; }
ip route show type blackhole "$POD_CIDR" 2>/dev/null | grep -q . &&
  { ip route del blackhole "$POD_CIDR" || warn "cannot delete the blackhole route of $POD_CIDR"; }
ip link show "$NODE_VETH" >/dev/null 2>&1 && { ip link delete "$NODE_VETH" || warn "cannot delete $NODE_VETH"; }
ip netns list 2>/dev/null | grep -qw "$NODE_NETNS" && { ip netns delete "$NODE_NETNS" || warn "cannot delete netns $NODE_NETNS"; }

# --- 7. iptables chains left by kube-proxy / kubelet (KUBE-*) -----------------------------------------------
clean_chains() { # clean_chains <iptables binary>
  local ipt=$1 t rule chain
  command -v "$ipt" >/dev/null || return 0
  for t in filter nat mangle; do
    [[ $("$ipt" -t "$t" -S 2>/dev/null) == *'-N KUBE-'* ]] || continue
    # Jumps into KUBE-* chains from the built-in chains, then the KUBE-* chains themselves.
    "$ipt" -t "$t" -S 2>/dev/null | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j KUBE-' |
      while read -r rule; do eval "$ipt -t $t ${rule/-A /-D }" 2>/dev/null || true; done
    for chain in $("$ipt" -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
      "$ipt" -t "$t" -F "$chain" 2>/dev/null || true
    done
    for chain in $("$ipt" -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
      "$ipt" -t "$t" -X "$chain" 2>/dev/null || warn "$ipt -t $t -X $chain failed"
    done
  done
}
clean_chains iptables
clean_chains ip6tables

# --- 8. cgroups, sysctls, kubelet's /var/log/containers links -----------------------------------------------
remove_cgroups "$NODE_NAME" || warn "cgroups of $NODE_NAME remain"
if [[ -f $N/sysctl.orig ]]; then
  while IFS='=' read -r k v; do
    [[ $(sysctl -n "$k" 2>/dev/null) == "$v" ]] || sysctl -q -w "$k=$v" || warn "cannot restore $k=$v"
  done <"$N/sysctl.orig"
fi
remove_log_links "$N"

# Host paths that did not exist before up.sh: remove sockets, our CNI result files and empty dirs only.
if [[ -f $N/created-paths ]]; then
  while read -r p; do
    [[ -e $p ]] || continue
    [[ $p == /run/netns ]] && { [[ -z $(ls -A "$p") ]] && umount "$p" 2>/dev/null; }
    find "$p" -depth \( -type s -o -type p \) -delete 2>/dev/null
    [[ $p == /var/lib/cni ]] && find "$p/results" -maxdepth 1 -type f \( -name "$CNI_NET_NAME-*" -o -name 'cni-loopback-*' \) -delete 2>/dev/null
    find "$p" -depth -type d -empty -delete 2>/dev/null
    [[ -e $p ]] && warn "$p not empty: $(find "$p" -mindepth 1 | head -3 | xargs)"
  done <"$N/created-paths"
fi

# --- 9. state ---------------------------------------------------------------------------------------------------
if awk -v d="$N" 'index($5, d) == 1 {f=1} END {exit !f}' /proc/self/mountinfo; then
  warn "mounts remain under $N; not removing it"
elif [[ $keep == --keep-state ]]; then
  log "state kept in $N"
elif [[ -d $N ]]; then
  rm -rf "$N" || warn "cannot remove $N"
fi
log "down in $((SECONDS - t0))s$( ((problems)) && echo ' (with warnings above)')"
exit "$problems"
