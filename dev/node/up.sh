#!/usr/bin/env bash
# Start a real single-node Kubernetes on this machine (root, no systemd, no internet), a cluster like a user's:
#   veth mlnode0 (10.77.0.1, peer in netns mlops-node-ext)  - the node IP; apiserver, kubelet, kube-proxy bind here
#   a private registry (docker-registry, https://10.77.0.1:5443, TLS from the node CA, htpasswd) holding the
#     images from images.sh, pushed by push.sh
#   etcd (127.0.0.1, free ports) + kube-apiserver (10.77.0.1:6443, Node,RBAC) + controller-manager + scheduler
#   containerd 1.6 (Debian; own root/state/socket under $N, cgroupfs, sandbox = our pause image (the one image
#     imported with ctr), pulls from the registry trusting the node CA ($N/certs.d),
#     CNI bridge mlcni0 + host-local 10.88.0.0/24)
#   kubelet 1.35 (cgroup v1: failCgroupV1=false, cgroupfs, cgroupRoot /mlops-node, clusterDNS 10.97.0.10)
#     + kube-proxy (iptables)
#   cluster DNS: CoreDNS pods + the kube-dns Service (cluster-dns.yaml)
#   resource metrics: metrics-server + the v1beta1.metrics.k8s.io APIService (metrics-server.yaml), the
#     apiserver's aggregation layer (front-proxy CA + client certificate), HPA sync every 5s
#   netns mlops-node-client on the pod network (10.88.0.254), resolving through the cluster DNS
# More nodes join with dev/node/worker.sh (each in a netns of its own).
# and wait (bounded) until the node is Ready, the cluster DNS answers and metrics.k8s.io serves the CoreDNS
# pods' CPU. Stop everything with dev/node/down.sh.
#
# Usage (root): dev/node/up.sh            state in $MLOPS_NODE_DIR (default /run/mlops-node)
# Env: MLOPS_K8S_BIN   dir with etcd/kube-*/kubectl (default: dev/cluster/build-binaries.sh, cached)
#      NODE_SKIP_INSTALL=1   do not run install.sh;  NODE_SKIP_IMAGES=1  reuse $N/images/*.tar
# Prints "export KUBECONFIG=..." on stdout at the end.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root

T0=$SECONDS
for d in docker-registry etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy weed; do
  daemon_alive "$d" && die "$d is already running (pid $(cat "$N/pid/$d")); run dev/node/down.sh first"
done
ip link show "$NODE_VETH" >/dev/null 2>&1 && die "$NODE_VETH exists: a previous node is still up; run dev/node/down.sh"

[[ ${NODE_SKIP_INSTALL:-} == 1 ]] || "$NODE_HERE/install.sh"
B=$(k8s_bin)
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  [[ -x $B/$b ]] || die "missing $B/$b (dev/cluster/build-binaries.sh builds it)"
done
mkdir -p "$N"/{log,pid,pki}
chmod 0700 "$N"

# A failure after this point leaves a half-started node: show the logs, then tear it down
# (NODE_KEEP_ON_FAILURE=1 keeps it for a look).
on_exit() {
  local rc=$?
  ((rc)) || return 0
  log "up.sh failed (rc $rc); last log lines:"
  for f in "$N"/log/*.log; do [[ -f $f ]] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
  if [[ ${NODE_KEEP_ON_FAILURE:-} == 1 ]]; then log "left running for a look; dev/node/down.sh stops it"
  else "$NODE_HERE/down.sh" >&2 || true; fi
}
trap on_exit EXIT
# alive <daemon...>: fail fast (inside bounded waits) when a daemon we started has exited.
alive() { local d; for d in "$@"; do daemon_alive "$d" || die "$d exited; see $N/log/$d.log"; done; }

# --- images (before anything is started: the slowest, most failure-prone build step) -------------
if [[ ${NODE_SKIP_IMAGES:-} != 1 || ! -f $N/images/models.env ]]; then MLOPS_K8S_BIN=$B "$NODE_HERE/images.sh"; fi

# --- host settings the node changes: remember them once, down.sh restores them --------------------
# kubelet sets vm.overcommit_memory, vm.panic_on_oom, kernel.panic, kernel.panic_on_oops,
# kernel.keys.root_max{keys,bytes}; the CNI bridge plugin (isGateway) sets net.ipv4.ip_forward.
if [[ ! -f $N/sysctl.orig ]]; then
  for k in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys \
    kernel.keys.root_maxbytes net.ipv4.ip_forward net.ipv4.conf.all.route_localnet; do
    echo "$k=$(sysctl -n "$k")"
  done >"$N/sysctl.orig"
fi

# --- network: the node IP on a veth whose peer lives in a netns of ours -----------------------------
# Host paths that netns/containerd/kubelet create whatever we configure; down.sh removes the ones that did
# not exist before (only their empty dirs, sockets and CNI result files):
#   /run/netns (ip netns, mounted), /run/containerd/{s,fifo} (shim sockets), /var/lib/cni (libcni cache),
#   /var/lib/kubelet/device-plugins (kubelet.sock, fixed path), /var/log/containers (kubelet's log links).
: >"$N/created-paths"
for p in /run/netns /run/containerd /var/lib/cni /var/lib/kubelet /var/log/containers; do
  [[ -e $p ]] || echo "$p" >>"$N/created-paths"
done
ip netns add "$NODE_NETNS"
ip link add "$NODE_VETH" type veth peer name "$NODE_VETH_PEER" netns "$NODE_NETNS"
ip addr add "$NODE_IP/$NODE_NET_PREFIX" dev "$NODE_VETH"
ip link set "$NODE_VETH" up
ip -n "$NODE_NETNS" addr add "$NODE_PEER_IP/$NODE_NET_PREFIX" dev "$NODE_VETH_PEER"
ip -n "$NODE_NETNS" link set "$NODE_VETH_PEER" up
ip -n "$NODE_NETNS" link set lo up
# Service IPs never leave through the machine's real interface, even before kube-proxy wrote its rules.
ip route add "$SVC_CIDR" dev "$NODE_VETH" src "$NODE_IP"
# Nor do pod IPs: each node's /24 is routed to it (the first node's bridge, worker.sh's veths); every other
# address of the pod CIDR (a node not there, a worker whose routes went with its link) is dropped here.
ip route add blackhole "$POD_CIDR"

# --- PKI (openssl, 1 day) ------------------------------------------------------------------------------
P=$N/pki
source "$NODE_HERE/../pki.sh"
pki_ca mlops-node-ca
svc_ip1=$(python3 -c "import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1])[1])" "$SVC_CIDR")
pki_sign apiserver /CN=kube-apiserver "subjectAltName=IP:$NODE_IP,IP:127.0.0.1,IP:$svc_ip1,DNS:localhost,DNS:kubernetes,\
DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth"
pki_sign admin '/O=system:masters/CN=admin' 'extendedKeyUsage=clientAuth'
pki_sign kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" 'extendedKeyUsage=clientAuth'
pki_sign kubelet-serving "/CN=$NODE_NAME" "subjectAltName=IP:$NODE_IP,DNS:$NODE_NAME\nextendedKeyUsage=serverAuth"
pki_sign apiserver-kubelet-client '/O=system:masters/CN=kube-apiserver-kubelet-client' 'extendedKeyUsage=clientAuth'
pki_sign registry /CN=mlops-node-registry "subjectAltName=IP:$NODE_IP\nextendedKeyUsage=serverAuth"
# The aggregation layer: a CA of its own (as kubeadm makes it; never the client CA, which would let any
# client certificate of the node CA named front-proxy-client assert users) signs the client certificate the
# apiserver presents when it proxies to an aggregated API (metrics-server). metrics-server's serving
# certificate comes from the node CA, which the APIService's caBundle names.
pki_ca mlops-node-front-proxy-ca front-proxy-ca
pki_sign front-proxy-client /CN=front-proxy-client 'extendedKeyUsage=clientAuth' front-proxy-ca
pki_sign metrics-server /CN=metrics-server "subjectAltName=DNS:metrics-server.kube-system.svc,\
DNS:metrics-server.kube-system.svc.$CLUSTER_DOMAIN\nextendedKeyUsage=serverAuth"
pki_sa_keys

# --- the private registry, and the images pushed to it --------------------------------------------------
t_reg=$SECONDS
registry_start
"$NODE_HERE/push.sh"
log "registry up, images pushed in $((SECONDS - t_reg))s"

node_kubeconfig "$KUBECONFIG_ADMIN" admin
node_kubeconfig "$N/kubelet.kubeconfig" kubelet

# --- etcd + kube-apiserver ------------------------------------------------------------------------------
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
etcd_port=$(freeport) peer_port=$(freeport)
t_cp=$SECONDS
# The control plane as the cluster tier starts it (dev/cluster/control-plane.sh), plus what a node needs: the
# apiserver's client certificate for kubelets, the aggregation layer (metrics-server), HPA syncs every 5 s.
control_plane=(bash "$REPO/dev/cluster/control-plane.sh")
start_daemon etcd "${control_plane[@]}" control_plane_etcd "$B" "$N/etcd" "$etcd_port" "$peer_port"
start_daemon kube-apiserver "${control_plane[@]}" control_plane_apiserver "$B" "$P" "$etcd_port" "$NODE_IP" \
  "$API_PORT" "$SVC_CIDR" \
  --kubelet-client-certificate "$P/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$P/apiserver-kubelet-client.key" --kubelet-certificate-authority "$P/ca.crt" \
  --kubelet-preferred-address-types InternalIP \
  --requestheader-client-ca-file "$P/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
  --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --proxy-client-cert-file "$P/front-proxy-client.crt" --proxy-client-key-file "$P/front-proxy-client.key"
api_ready() { alive etcd kube-apiserver; [[ $(kc get --raw /readyz 2>/dev/null) == ok ]]; }
wait_for 90 "kube-apiserver /readyz" api_ready || false
wait_for 30 "default namespace" kc get namespace default || false
log "etcd + kube-apiserver ready in $((SECONDS - t_cp))s"

start_daemon kube-controller-manager "${control_plane[@]}" control_plane_controller_manager "$B" "$P" \
  "$KUBECONFIG_ADMIN" "$NODE_IP" 10257 --horizontal-pod-autoscaler-sync-period 5s
start_daemon kube-scheduler "${control_plane[@]}" control_plane_scheduler "$B" "$KUBECONFIG_ADMIN" "$NODE_IP" 10259

# --- containerd ------------------------------------------------------------------------------------------
# This node's containerd, CNI, kubelet and kube-proxy configs (lib.sh node_configs, the workers' too).
node_configs "$N" "$NODE_NAME" "$NODE_IP" "$POD_SUBNET" "$POD_RANGE_START" "$POD_RANGE_END" "$POD_GATEWAY" \
  kubelet-serving
mkdir -p "$N/certs.d/$REGISTRY"
cat >"$N/certs.d/$REGISTRY/hosts.toml" <<EOF
server = "https://$REGISTRY"
[host."https://$REGISTRY"]
  capabilities = ["pull", "resolve"]
  ca = "$P/ca.crt"
EOF
t_ctrd=$SECONDS
start_daemon containerd containerd --config "$N/containerd/config.toml"
ctrd_ready() { alive containerd; ctr_ version; }
wait_for 30 "containerd socket" ctrd_ready || false
# The sandbox image only (every other image is pulled from the registry). `ctr images import` also unpacks
# into the default (overlayfs) snapshotter, which the CRI plugin uses.
ctr_ images import "$N/images/$(echo "${PAUSE_IMAGE##*/}" | tr ':' '_').tar" >/dev/null
log "containerd up, pause image imported in $((SECONDS - t_ctrd))s"

# --- kubelet ---------------------------------------------------------------------------------------------
# All pod cgroups live below /$NODE_NAME (down.sh removes that tree).
node_cgroups "$NODE_NAME"
t_kubelet=$SECONDS
start_daemon kubelet "$B/kubelet" --config "$N/kubelet.yaml" --kubeconfig "$N/kubelet.kubeconfig" \
  --root-dir "$N/kubelet" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v 1

# --- kube-proxy ------------------------------------------------------------------------------------------
start_daemon kube-proxy "$B/kube-proxy" --config "$N/kube-proxy.yaml" --v 1

node_ready() { alive kubelet kube-proxy kube-apiserver containerd; [[ $(kc get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') == True ]]; }
wait_for 120 "node $NODE_NAME Ready" node_ready || false
log "node $NODE_NAME Ready $((SECONDS - t_kubelet))s after kubelet start ($((SECONDS - T0))s total)"
wait_for 30 "kube-proxy healthz" curl -sf "http://$NODE_IP:10256/healthz" || false
for d in docker-registry etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy; do
  daemon_alive "$d" || die "$d exited; see $N/log/$d.log"
done
# --- cluster DNS ---------------------------------------------------------------------------------------------
t_dns=$SECONDS
pull_secret kube-system
sed -e "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|" -e "s|@DNS_IP@|$DNS_IP|" -e "s|@PULL_SECRET@|$PULL_SECRET|" \
  -e "s|@CLUSTER_DOMAIN@|$CLUSTER_DOMAIN|" "$NODE_HERE/cluster-dns.yaml" | kc apply -f - >/dev/null
# --- resource metrics: applied now, so metrics-server collects while DNS comes up; waited for at the end ---
t_ms=$SECONDS
kc -n kube-system create secret tls metrics-server-tls --cert "$P/metrics-server.crt" --key "$P/metrics-server.key" \
  --dry-run=client -o yaml | kc apply -f - >/dev/null
kc -n kube-system create configmap metrics-server-kubelet-ca --from-file ca.crt="$P/ca.crt" \
  --dry-run=client -o yaml | kc apply -f - >/dev/null
sed -e "s|@METRICS_SERVER_IMAGE@|$METRICS_SERVER_IMAGE|" -e "s|@PULL_SECRET@|$PULL_SECRET|" \
  -e "s|@CA_BUNDLE@|$(base64 -w0 "$P/ca.crt")|" "$NODE_HERE/metrics-server.yaml" | kc apply -f - >/dev/null

wait_for 120 "CoreDNS available" kc -n kube-system wait deploy/coredns --for condition=Available --timeout=1s ||
  { kc -n kube-system get pods -o wide >&2; kc -n kube-system describe pods -l k8s-app=kube-dns | tail -25 >&2; false; }

# --- a client on the pod network: a netns on the CNI bridge (exists now: the CoreDNS pods made it) -------
# Its address is outside host-local's range; its routes are those of a pod (service range and node IP via
# the bridge); `ip netns exec` bind-mounts /etc/netns/<name>/resolv.conf: the cluster DNS, as in a pod.
[[ -e /etc/netns ]] || echo /etc/netns >>"$N/created-paths"
ip netns add "$CLIENT_NETNS"
ip link add "$CLIENT_VETH" type veth peer name eth0 netns "$CLIENT_NETNS"
ip link set "$CLIENT_VETH" master "$CNI_BRIDGE" up
ip -n "$CLIENT_NETNS" addr add "$CLIENT_IP/${POD_SUBNET#*/}" dev eth0
ip -n "$CLIENT_NETNS" link set eth0 up
ip -n "$CLIENT_NETNS" link set lo up
ip -n "$CLIENT_NETNS" route add "$SVC_CIDR" via "$POD_GATEWAY"
ip -n "$CLIENT_NETNS" route add "$NODE_NET" via "$POD_GATEWAY"
ip -n "$CLIENT_NETNS" route add "$POD_CIDR" via "$POD_GATEWAY"
mkdir -p "/etc/netns/$CLIENT_NETNS"
printf 'nameserver %s\nsearch svc.%s %s\noptions ndots:5\n' "$DNS_IP" "$CLUSTER_DOMAIN" "$CLUSTER_DOMAIN" \
  >"/etc/netns/$CLIENT_NETNS/resolv.conf"
dns_answers() { ip netns exec "$CLIENT_NETNS" getent hosts "kubernetes.default.svc.$CLUSTER_DOMAIN"; }
wait_for 30 "kubernetes.default resolving from netns $CLIENT_NETNS" dns_answers || false
log "cluster DNS ($DNS_IP) answering in the pod network $((SECONDS - t_dns))s after its apply: $(dns_answers)"

# --- resource metrics served: the APIService Available, then CPU of every CoreDNS pod -----------------------
ms_diagnostics() {
  kc get apiservice v1beta1.metrics.k8s.io -o wide >&2 || true
  kc -n kube-system get pods -l k8s-app=metrics-server -o wide >&2 || true
  kc -n kube-system logs deploy/metrics-server --tail 20 >&2 || true
}
apiservice_available() {
  [[ $(kc get apiservice v1beta1.metrics.k8s.io -o 'jsonpath={.status.conditions[?(@.type=="Available")].status}') == True ]]
}
wait_for 120 "APIService v1beta1.metrics.k8s.io Available" apiservice_available || { ms_diagnostics; false; }
log "metrics.k8s.io Available $((SECONDS - t_ms))s after its apply"
# coredns_cpu: "<pod> <cpu>, ..." once metrics.k8s.io has a CPU sample for every running CoreDNS pod.
coredns_cpu() {
  local want
  want=$(kc -n kube-system get pods -l k8s-app=kube-dns --field-selector status.phase=Running -o name | wc -l)
  kc get --raw "/apis/metrics.k8s.io/v1beta1/namespaces/kube-system/pods?labelSelector=k8s-app%3Dkube-dns" |
    python3 -c 'import json, sys
items = json.load(sys.stdin)["items"]
cpu = {i["metadata"]["name"]: [c["usage"]["cpu"] for c in i["containers"] if "cpu" in c.get("usage", {})]
       for i in items}
ok = len(cpu) >= int(sys.argv[1]) > 0 and all(cpu.values())
print(", ".join(name + " " + "+".join(v) for name, v in sorted(cpu.items())))
sys.exit(0 if ok else 1)' "$want"
}
wait_for 60 "CPU metrics of the CoreDNS pods" coredns_cpu || { ms_diagnostics; false; }
log "metrics.k8s.io serving CPU $((SECONDS - t_ms))s after its apply: $(coredns_cpu)"

cat >"$N/env" <<EOF
export KUBECONFIG=$KUBECONFIG_ADMIN
export MLOPS_NODE_DIR=$N
export MLOPS_K8S_BIN=$B
EOF
echo "node_ready_seconds=$((SECONDS - t_kubelet)) metrics_seconds=$((SECONDS - t_ms)) up_seconds=$((SECONDS - T0))" \
  >"$N/timings"
echo "export KUBECONFIG=$KUBECONFIG_ADMIN"
