#!/usr/bin/env bash
# More nodes for the cluster dev/node/up.sh started: worker I (2..9) is a real node of its own, joined to the
# one control plane: containerd (own root, state and socket), kubelet and kube-proxy, all in network namespace
# mlops-node-I, where the node IP 10.77.0.1I sits on a veth pair to the host (host end mlnodeI) and its pods
# get 10.88.I.0/24 on a bridge of their own. The host routes between the nodes (the veth, a /32 per node IP
# and a /24 per node's pods); every node's pods route the whole pod CIDR, the service range and the node IPs
# to their node, so any pod reaches any other by its IP, as on a cluster of machines.
#
# Why a netns per node, not more addresses on the host: a node's kube-proxy writes iptables rules for its
# own node IP and its own pods, and each kubelet's pods must land on its own bridge; in one netns the
# nodes' rules and bridges would mix. The daemons enter only the netns (nsenter --net): they share the
# host's mounts, as kubelet's volume mounts must be seen by its containerd and runc.
#
# Usage (root, up.sh's node running):
#   dev/node/worker.sh up I      join worker I (network, certificates, daemons) and wait until it is Ready
#   dev/node/worker.sh lose I    the node lost at once: its side of the link down (packets to it vanish)
#                                and SIGKILL to its kubelet, kube-proxy, containerd, shims and pod processes
#   dev/node/worker.sh start I   a lost node back: link up, containerd, kubelet and kube-proxy started again
#   dev/node/worker.sh down I    remove it: the Node object, its daemons, pods, netns, routes and state
# down.sh removes every worker left (workers_up).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
action=${1:-}
[[ $# == 2 ]] || die "usage: worker.sh up|lose|start|down <2..9>"
worker_vars "$2"
if [[ $action == down ]]; then B=$(known_k8s_bin); else use_running_node; fi
# The worker's daemons keep their pids and logs in its own dir (lib.sh start_daemon / stop_daemon use $N).
in_worker() { N=$W_DIR "$@"; }
# Its daemons enter the netns only (not `ip netns exec`, which would give each its own mount namespace).
netns_run=(nsenter "--net=/run/netns/$W_NETNS")

join_network() {
  ip netns add "$W_NETNS"
  ip link add "$W_VETH" type veth peer name eth0 netns "$W_NETNS"
  ip link set "$W_VETH" up
  ip -n "$W_NETNS" link set lo up
  ip -n "$W_NETNS" addr add "$W_IP/32" dev eth0
  worker_link_up
  # The host's end carries the first node's IP too: traffic the host masquerades towards this node (kube-proxy
  # does, for a Service reached from the host) leaves with it. Without an address of its own the kernel picked
  # another interface's (the machine's real one), which the pods cannot answer: a connection per request from
  # the host to a Service failed 2 times in 3 (the pods on the workers).
  ip addr add "$NODE_IP/32" dev "$W_VETH"
  ip route add "$W_IP/32" dev "$W_VETH" src "$NODE_IP"
  ip route add "$W_POD_SUBNET" via "$W_IP" dev "$W_VETH"
}

# worker_link_up: the worker's side of the pair up, with its routes (a link set down loses the routes through it).
worker_link_up() {
  ip -n "$W_NETNS" link set eth0 up
  # The host answers for the first node's IP on this link (ARP for any local address): the way to everything.
  ip -n "$W_NETNS" route replace "$NODE_IP/32" dev eth0
  for dst in "$NODE_NET" "$POD_CIDR" "$SVC_CIDR"; do
    ip -n "$W_NETNS" route replace "$dst" via "$NODE_IP" dev eth0
  done
}

certificates() {
  local P=$N/pki
  source "$NODE_HERE/../pki.sh"
  pki_sign "kubelet-$W_NAME" "/O=system:nodes/CN=system:node:$W_NAME" 'extendedKeyUsage=clientAuth'
  pki_sign "kubelet-serving-$W_NAME" "/CN=$W_NAME" \
    "subjectAltName=IP:$W_IP,DNS:$W_NAME\nextendedKeyUsage=serverAuth"
  node_kubeconfig "$W_DIR/kubelet.kubeconfig" "kubelet-$W_NAME"
}

start_daemons() {
  local sock=$W_SOCK
  in_worker start_daemon containerd "${netns_run[@]}" containerd --config "$W_DIR/containerd/config.toml"
  # shellcheck disable=SC2317  # called through wait_for
  ctrd_ready() { ctr --address "$sock" -n k8s.io version; }
  wait_for 30 "containerd of $W_NAME" ctrd_ready || die "containerd of $W_NAME: see $W_DIR/log/containerd.log"
  if [[ -z $(ctr --address "$sock" -n k8s.io images ls -q "name==$PAUSE_IMAGE") ]]; then
    ctr --address "$sock" -n k8s.io images import \
      "$N/images/$(echo "${PAUSE_IMAGE##*/}" | tr ':' '_').tar" >/dev/null
  fi
  node_cgroups "$W_NAME"
  in_worker start_daemon kubelet "${netns_run[@]}" "$B/kubelet" --config "$W_DIR/kubelet.yaml" \
    --kubeconfig "$W_DIR/kubelet.kubeconfig" --root-dir "$W_DIR/kubelet" --hostname-override "$W_NAME" \
    --node-ip "$W_IP" --v 1
  in_worker start_daemon kube-proxy "${netns_run[@]}" "$B/kube-proxy" --config "$W_DIR/kube-proxy.yaml" --v 1
}

wait_ready() {
  local t0=$SECONDS
  # shellcheck disable=SC2317  # called through wait_for
  ready() {
    [[ $(kc get node "$W_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') == True ]]
  }
  wait_for 120 "node $W_NAME Ready" ready || { tail -n 20 "$W_DIR/log/kubelet.log" >&2; die "$W_NAME not Ready"; }
  wait_for 30 "kube-proxy of $W_NAME" curl -sf "http://$W_IP:10256/healthz" ||
    { tail -n 20 "$W_DIR/log/kube-proxy.log" >&2; die "kube-proxy of $W_NAME not healthy"; }
  log "node $W_NAME ($W_IP, pods $W_POD_SUBNET) Ready $((SECONDS - t0))s after its kubelet started"
}

# kill_everything: SIGKILL the worker's daemons, its containerd's shims and every process in its cgroups.
kill_everything() {
  local d
  for d in kubelet kube-proxy containerd; do in_worker kill_daemon "$d"; done
  kill_node_processes "$W_SOCK" "$W_NAME"
}

case $action in
up)
  ip link show "$W_VETH" >/dev/null 2>&1 && die "$W_VETH exists: worker $W_NAME is up (worker.sh down $2 first)"
  mkdir -p "$W_DIR"/{log,pid}
  node_configs "$W_DIR" "$W_NAME" "$W_IP" "$W_POD_SUBNET" "$W_POD_START" "$W_POD_END" "$W_POD_GATEWAY" \
    "kubelet-serving-$W_NAME"
  certificates
  join_network
  start_daemons
  wait_ready
  ;;
lose)
  # The machine's side of the link goes dark: the host keeps its routes to the node and its pods (marked
  # linkdown), so what is sent there vanishes and times out, as with a machine that lost power.
  ip -n "$W_NETNS" link set eth0 down
  kill_everything
  log "node $W_NAME lost: its link dark, kubelet, kube-proxy, containerd, shims and pod processes killed"
  ;;
start)
  worker_link_up
  start_daemons
  wait_ready
  ;;
down)
  if daemon_alive kube-apiserver; then
    kc delete node "$W_NAME" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  fi
  kill_everything
  sleep 0.5
  # Its pods' netns (containerd's cni-*, addresses in this node's pod subnet), the mounts under its dir
  # (containerd's snapshots and shm, kubelet's volumes).
  for ns in $(idle_pod_netns "${W_POD_SUBNET%.*}."); do ip netns delete "$ns" 2>/dev/null || true; done
  umount_under "$W_DIR" || true
  # The netns takes its end of the veth pair, its bridge and its iptables rules with it.
  ip netns list 2>/dev/null | grep -qw "$W_NETNS" && ip netns delete "$W_NETNS"
  ip link show "$W_VETH" >/dev/null 2>&1 && { ip link delete "$W_VETH" 2>/dev/null || true; }
  remove_cgroups "$W_NAME" || true
  remove_log_links "$W_DIR"
  rm -rf "$W_DIR"
  log "node $W_NAME removed"
  ;;
*) die "usage: worker.sh up|lose|start|down <2..9>" ;;
esac
