# Shared settings and helpers for the node test tier (sourced by up.sh, images.sh, model-store.sh, down.sh).
# Everything this tier creates is named here, so down.sh can remove exactly that and nothing else.
# shellcheck shell=bash disable=SC2034  # settings used by the scripts that source this file

NODE_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$NODE_HERE/../.." && pwd)
# The launchers of the services the tests start too: sourced here, and run as `bash <launcher> <function> …`
# (start_daemon) for the functions that exec a service.
# shellcheck source=dev/seaweedfs.sh
source "$REPO/dev/seaweedfs.sh"

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
NODE_NET=10.77.0.0/$NODE_NET_PREFIX   # node IPs: the first node's and the workers' (worker.sh)
POD_CIDR=10.88.0.0/16              # the cluster's pods: a /24 per node (the first node's 10.88.0.0/24)
CNI_BRIDGE=mlcni0
CNI_NET_NAME=mlops-node
SVC_CIDR=10.97.0.0/24
API_PORT=6443
CONTAINERD_SOCK=$N/containerd/containerd.sock
KUBECONFIG_ADMIN=$N/admin.kubeconfig

# The first node's pods: host-local hands out POD_RANGE_START..POD_RANGE_END of POD_SUBNET only; the top of
# the /24 is left for the client netns (a test client on the pod network, see up.sh).
POD_SUBNET=10.88.0.0/24
POD_GATEWAY=10.88.0.1
POD_RANGE_START=10.88.0.2
POD_RANGE_END=10.88.0.250
CLIENT_NETNS=mlops-node-client     # netns on the pod network: curl/eval by cluster DNS name from here
CLIENT_VETH=mlclient0              # host end, a port of the CNI bridge
CLIENT_IP=10.88.0.254

# The private registry (Debian docker-registry = CNCF distribution 2.8): TLS from the node PKI, htpasswd
# (bcrypt) with a user and password made per run ($N/registry/password, 0600).
REGISTRY_PORT=5443
REGISTRY=$NODE_IP:$REGISTRY_PORT
REGISTRY_USER=mlops
PULL_SECRET=registry-pull          # kubernetes.io/dockerconfigjson Secret in every namespace that pulls
PREDICTOR_REPO=$REGISTRY/mlops/american-predictor
OPERATOR_IMAGE=$REGISTRY/mlops/predictor-operator:0.1
STORE_IMAGE=$REGISTRY/mlops/model-store:node
COREDNS_VERSION=1.14.7
COREDNS_IMAGE=$REGISTRY/mlops/coredns:$COREDNS_VERSION
# Resource metrics (metrics.k8s.io): metrics-server, the version dev/cluster/go/metricsserverbin pins.
METRICS_SERVER_VERSION=0.8.0
METRICS_SERVER_IMAGE=$REGISTRY/mlops/metrics-server:$METRICS_SERVER_VERSION
# The S3 model store (s3-store.sh): SeaweedFS on the host, S3 on the node IP (pods reach it through their route
# to the node IP, like the registry); keys made on its first start ($N/s3/credentials.env, 0600).
S3_PORT=8333
S3_ENDPOINT=http://$NODE_IP:$S3_PORT
S3_BUCKET=models
# The sandbox image is the one image still imported with ctr (containerd needs it before any pull).
PAUSE_IMAGE=localhost/mlops/pause:node

# Cluster DNS: CoreDNS behind the kube-dns Service at a fixed ClusterIP (kubelet's clusterDNS).
DNS_IP=10.97.0.10
CLUSTER_DOMAIN=cluster.local

exec {LOGFD}>&2   # log() writes here, so messages survive the output redirections of wait_for
log() { printf '[node %s] %s\n' "$(date +%H:%M:%S)" "$*" >&"$LOGFD"; }
die() { log "ERROR: $*"; exit 1; }
need_root() { [[ $(id -u) == 0 ]] || die "run as root (containerd, kubelet, iptables and netns need it)"; }

k8s_bin() { # directory with etcd, kube-*, kubectl (built by dev/cluster/build-binaries.sh)
  if [[ -n ${MLOPS_K8S_BIN:-} ]]; then echo "$MLOPS_K8S_BIN"
  else "$REPO/dev/cluster/build-binaries.sh" etcd kube-apiserver kube-controller-manager kube-scheduler kubelet \
    kube-proxy kubectl coredns metrics-server; fi
}

ctr_() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

# One node per machine. claim_node takes the node lock (held until the calling script exits; the node tier's
# tests take the same lock) and stops a node a finished script left running (./dev/demo keeps its cluster up):
# with the lock held no one else is using it. down.sh is idempotent (under a second when nothing is up).
NODE_LOCK=/tmp/mlops-node.lock
claim_node() {
  exec {NODE_LOCK_FD}>"$NODE_LOCK"
  if ! flock -n "$NODE_LOCK_FD"; then
    log "waiting for $NODE_LOCK (another run is using the node)"
    flock "$NODE_LOCK_FD"
  fi
  if [[ -f $N/env ]]; then log "stopping the node a previous run left up (dev/node/down.sh)"; fi
  "$REPO/dev/node/down.sh" || die "cannot stop the node left running (dev/node/down.sh failed, see above)"
}

# known_k8s_bin: the binaries dir a node was started with ($N/env), else the cache's (for teardown).
known_k8s_bin() {
  local b=${MLOPS_K8S_BIN:-$(sed -n 's/^export MLOPS_K8S_BIN=//p' "$N/env" 2>/dev/null)}
  echo "${b:-/var/cache/mlops-predictor/bin}"
}

# use_running_node: the settings up.sh wrote for a running node ($N/env), and B for kc; dies without a node.
use_running_node() {
  [[ -f $N/env ]] || die "no node: run dev/node/up.sh first"
  # shellcheck source=/dev/null
  source "$N/env"
  B=$MLOPS_K8S_BIN  # kc runs $B/kubectl
}

# --- what every node runs: up.sh's first node (in the host's netns) and worker.sh's --------------------
# Workers: node I (2..9) named $NODE_NAME-I runs in netns $NODE_NAME-I, its node IP 10.77.0.1I on a veth
# pair (host end mlnodeI), its pods in 10.88.I.0/24 on a bridge of its own; state in $N/node-I.
# worker_vars <I>: the W_* names of worker I.
worker_vars() {
  local i=$1
  [[ $i =~ ^[2-9]$ ]] || die "a worker is numbered 2..9, not '$i'"
  W_NAME=$NODE_NAME-$i W_NETNS=$NODE_NAME-$i W_VETH=mlnode$i W_IP=10.77.0.1$i W_DIR=$N/node-$i
  W_POD_SUBNET=10.88.$i.0/24 W_POD_GATEWAY=10.88.$i.1 W_POD_START=10.88.$i.2 W_POD_END=10.88.$i.250
  W_SOCK=$W_DIR/containerd/containerd.sock
}
# workers_up: the numbers of the workers with state in $N (started by worker.sh, not yet removed).
workers_up() { local d; for d in "$N"/node-[2-9]; do [[ -d $d ]] && echo "${d##*-}"; done; }

# node_cgroups <cgroup root>: kubelet wants its cgroupRoot in every v1 hierarchy; a new cpuset cgroup starts
# with empty cpus/mems, so copy the root's. down.sh and worker.sh remove the tree.
node_cgroups() {
  local h
  for h in /sys/fs/cgroup/*; do
    [[ -f $h/cgroup.procs && ! -f $h/cgroup.controllers ]] || continue # v1 hierarchies only
    mkdir -p "$h/$1"
    if [[ -f $h/cpuset.cpus ]]; then
      cat "$h/cpuset.cpus" >"$h/$1/cpuset.cpus"
      cat "$h/cpuset.mems" >"$h/$1/cpuset.mems"
    fi
  done
}

# node_configs <dir> <node name> <node IP> <pod subnet> <range start> <range end> <pod gateway> <serving cert>:
# in <dir>, one node's containerd config.toml (root/state/socket under <dir>/containerd), CNI conflist
# (<dir>/cni), kubelet.yaml (cgroupRoot /<node name>) and kube-proxy.yaml, all binding the node IP.
node_configs() {
  local d=$1 name=$2 ip=$3 subnet=$4 start=$5 end=$6 gateway=$7 serving=$8
  local C=$d/containerd P=$N/pki
  mkdir -p "$C" "$d/cni/net.d" "$d/cni/ipam" "$d/kubelet" "$d/pod-logs"
  cat >"$C/config.toml" <<EOF
version = 2
root = "$C/root"
state = "$C/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$C/containerd.sock"
[ttrpc]
  address = "$C/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$C/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "$ip"
  stream_server_port = "0"
  enable_selinux = false
  # root here has no CAP_SYS_RESOURCE, so runc cannot lower oom_score_adj: kubelet asks -998 for every
  # sandbox and runc then fails with "can't get final child's PID from pipe: EOF". Clamp to >= ours.
  restrict_oom_score_adj = true
  max_container_log_line_size = 16384
  # Registry hosts (CA, endpoints) from $N/certs.d/<host:port>/hosts.toml; credentials come from kubelet
  # (the pods' imagePullSecrets), never from this file.
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$N/certs.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
        Root = "$C/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni/net.d"
    max_conf_num = 1
EOF
  # Pods get routes to the other nodes' pods (through their node), the service range and the node IPs only
  # (no default route): nothing a pod sends can leave through the machine's real interface. No ipMasq, no
  # portmap.
  cat >"$d/cni/net.d/10-$CNI_NET_NAME.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NET_NAME",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CNI_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$subnet", "rangeStart": "$start", "rangeEnd": "$end", "gateway": "$gateway"}]],
        "routes": [{"dst": "$POD_CIDR"}, {"dst": "$SVC_CIDR"}, {"dst": "$NODE_NET"}],
        "dataDir": "$d/cni/ipam"
      }
    }
  ]
}
EOF
  cat >"$d/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ip
port: 10250
readOnlyPort: 0
healthzBindAddress: $ip
healthzPort: 10248
tlsCertFile: $P/$serving.crt
tlsPrivateKeyFile: $P/$serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $P/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupRoot: /$name
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$C/containerd.sock
imageServiceEndpoint: unix://$C/containerd.sock
clusterDomain: $CLUSTER_DOMAIN
clusterDNS: [$DNS_IP]
resolvConf: ""
podLogsDir: $d/pod-logs
volumePluginDir: $d/kubelet/volume-plugins
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
serializeImagePulls: false
maxPods: 50
EOF
  cat >"$d/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $KUBECONFIG_ADMIN}
hostnameOverride: $name
bindAddress: $ip
healthzBindAddress: $ip:10256
metricsBindAddress: $ip:10249
mode: iptables
clusterCIDR: $POD_CIDR
nodePortAddresses: ["$ip/32"]
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false, syncPeriod: 30s, minSyncPeriod: 0s}
EOF
}

# node_kubeconfig <file> <cert name>: a kubeconfig for the apiserver with the node PKI's <cert name>.
node_kubeconfig() {
  local k=$1 P=$N/pki
  "$B/kubectl" config set-cluster node --server "https://$NODE_IP:$API_PORT" --certificate-authority "$P/ca.crt" \
    --embed-certs --kubeconfig "$k" >/dev/null
  "$B/kubectl" config set-credentials u --client-certificate "$P/$2.crt" --client-key "$P/$2.key" --embed-certs \
    --kubeconfig "$k" >/dev/null
  "$B/kubectl" config set-context node --cluster node --user u --kubeconfig "$k" >/dev/null
  "$B/kubectl" config use-context node --kubeconfig "$k" >/dev/null
  chmod 0600 "$k"
}

# --- buildah (images.sh builds, push.sh and publish.sh push) ------------------------------------------
BA=(buildah --root "$N/buildah/root" --runroot "$N/buildah/run" --storage-driver vfs)
# buildah keeps a blob-info cache in /var/lib/containers/cache and a lock in /etc/cni/net.d/cni.lock:
# buildah_cleanup_on_exit removes them again if they did not exist before (call it once per script).
buildah_cleanup_on_exit() {
  BUILDAH_MADE=()
  local p
  for p in /var/lib/containers /etc/cni; do [[ -e $p ]] || BUILDAH_MADE+=("$p"); done
  trap 'if ((${#BUILDAH_MADE[@]})); then rm -rf "${BUILDAH_MADE[@]}"; fi' EXIT
}
# registry_push <ref>: push <ref> from buildah's storage to the registry (TLS from the node CA, the run's
# credentials); prints the manifest digest.
registry_push() {
  local certs=$N/registry/client-certs digest_file
  [[ -s $N/registry/auth.json ]] || die "no registry credentials in $N/registry: up.sh starts the registry"
  # buildah reads CA certificates (*.crt) for the registry from --cert-dir.
  mkdir -p "$certs"
  install -m 0644 "$N/pki/ca.crt" "$certs/ca.crt"
  digest_file=$(mktemp "$N/registry/digest.XXXXXX")
  "${BA[@]}" push --quiet --cert-dir "$certs" --authfile "$N/registry/auth.json" --digestfile "$digest_file" \
    "$1" "docker://$1" >/dev/null
  cat "$digest_file"
  rm -f "$digest_file"
}
kc() { "$B/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" --request-timeout=20s "$@"; }

# pull_secret <namespace>: the registry's dockerconfigjson Secret ($PULL_SECRET) in that namespace.
pull_secret() {
  kc -n "$1" create secret generic "$PULL_SECRET" --type kubernetes.io/dockerconfigjson \
    --from-file .dockerconfigjson="$N/registry/auth.json" --dry-run=client -o yaml | kc apply -f - >/dev/null
}

# in_pod_net <command...>: run a command from the client netns on the pod network (cluster DNS names resolve).
in_pod_net() { ip netns exec "$CLIENT_NETNS" "$@"; }

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
# daemon_pid <name>: the recorded pid, if its command line still names the expected binary (no pid reuse
# accidents).
daemon_pid() {
  local p exe
  p=$(cat "$N/pid/$1" 2>/dev/null) || return 1
  exe=$({ tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null || true)
  [[ -n $exe && $exe == *"$1"* ]] && echo "$p"
}
# kill_daemon <name>: SIGKILL, no warning (a machine lost); only the recorded pid, as stop_daemon.
kill_daemon() {
  local p
  if p=$(daemon_pid "$1"); then kill -KILL "$p" 2>/dev/null || true; fi
  rm -f "$N/pid/$1"
}
# kill_node_processes <containerd socket> <cgroup root>: SIGKILL the shims of that containerd (they name its
# socket on their command line; comm is cut to 15 characters, "containerd-shim", so match the full command line)
# and every process in the node's cgroups, and nothing else.
kill_node_processes() {
  local p cg
  for p in $(pgrep -f 'containerd-shim-runc-v2 .*-address ' 2>/dev/null); do
    if { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -q -- "-address $1\( \|$\)"; then
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
  for cg in /sys/fs/cgroup/*/"$2"; do
    [[ -d $cg ]] || continue
    find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | while read -r p; do
      kill -KILL "$p" 2>/dev/null || true
    done
  done
}
# --- teardown pieces (down.sh for the first node, worker.sh down for a worker) ---------------------------
# umount_under <dir>: lazily unmount every mount point at or below <dir>, deepest first; 1 if one stays.
umount_under() {
  local m rc=0
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || { log "cannot unmount $m"; rc=1; }
  done < <(awk -v d="$1" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r)
  return "$rc"
}
# idle_pod_netns <address prefix>: containerd's pod netns (cni-*) with no process left whose addresses
# start with <prefix> (e.g. "10.88." for every pod of the tier, "10.88.2." for worker 2's).
idle_pod_netns() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '/^cni-/{print $1}'); do
    [[ -z $(ip netns pids "$ns" 2>/dev/null) ]] && ip -n "$ns" -br addr 2>/dev/null | grep -qF " $1" &&
      echo "$ns"
  done
  return 0
}
# remove_cgroups <cgroup root>: the node's cgroup tree in every hierarchy, deepest first; 1 if one stays.
remove_cgroups() {
  local cg rc=0
  for cg in /sys/fs/cgroup/*/"$1"; do
    [[ -d $cg ]] || continue
    find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
    [[ -d $cg ]] && { log "cgroup $cg still exists"; rc=1; }
  done
  return "$rc"
}
# remove_log_links <state dir>: kubelet's /var/log/containers links into that node's state.
remove_log_links() {
  if [[ -d /var/log/containers ]]; then
    find /var/log/containers -maxdepth 1 -type l -lname "$1/*" -delete 2>/dev/null
  fi
  return 0
}
# stop_daemon <name> [grace seconds]: SIGTERM, bounded wait, then SIGKILL; only the recorded pid, and only
# if its command line still names the expected binary (daemon_pid).
stop_daemon() {
  local name=$1 grace=${2:-10} p
  if p=$(daemon_pid "$name"); then
    kill -TERM "$p" 2>/dev/null || true
    local t0=$SECONDS
    while running "$p" && ((SECONDS - t0 < grace)); do sleep 0.2; done
    running "$p" && { log "$name ($p) ignored SIGTERM for ${grace}s: SIGKILL"; kill -KILL "$p" 2>/dev/null || true; }
    ((SECONDS - t0 < 2)) || log "$name took $((SECONDS - t0))s to stop"
  fi
  rm -f "$N/pid/$name"
}

# --- the private registry ------------------------------------------------------------------------------
# registry_start: docker-registry on $REGISTRY (dev/registry.sh) with TLS ($N/pki/registry.{crt,key}, made by
# up.sh) and htpasswd; the user's password is made on the first start of a node and kept in $N/registry/password.
registry_start() {
  local R=$N/registry
  mkdir -p "$R"
  chmod 0700 "$R"
  if [[ ! -s $R/password ]]; then
    (umask 077 && openssl rand -hex 16 >"$R/password")
    # The same credentials as a docker config: buildah's --authfile, and the pull Secrets' content.
    (umask 077 && printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$REGISTRY" \
      "$(printf '%s:%s' "$REGISTRY_USER" "$(cat "$R/password")" | base64 -w0)" >"$R/auth.json")
  fi
  start_daemon docker-registry bash "$REPO/dev/registry.sh" registry_serve "$R" "$REGISTRY" "$REGISTRY_USER" \
    "$(cat "$R/password")" "$N/pki/registry.crt" "$N/pki/registry.key"
  wait_for 20 "docker-registry on $REGISTRY" curl -s --cacert "$N/pki/ca.crt" -o /dev/null \
    "https://$REGISTRY/v2/" || { tail -n 20 "$N/log/docker-registry.log" >&2; return 1; }
}
registry_stop() { stop_daemon docker-registry; }

# --- the S3 model store (started by s3-store.sh) -------------------------------------------------------------
# s3_store_stop: SIGKILL after 3 s (a clean stop takes ~16 s, its filer retrying a log flush; a killed weed
# restarts fine), then the gRPC unix sockets weed keeps in /tmp (dev/seaweedfs.sh).
s3_store_stop() {
  stop_daemon weed 3
  seaweedfs_remove_sockets "$N/s3"
}
