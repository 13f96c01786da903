#!/usr/bin/env bash
# Build the real Kubernetes pieces used by the cluster integration tests, from the Go
# module proxy only (no GitHub, no dl.k8s.io, no container registry):
#
#   etcd                     go.etcd.io/etcd/server/v3/etcdmain   (dev/cluster/go/etcdbin)
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl
#                            k8s.io/kubernetes/cmd/...             (dev/cluster/go/k8sbin)
#   kwok                     sigs.k8s.io/kwok/cmd/kwok             (dev/cluster/go/kwokbin)
#   kwok-stages.yaml         kwok's own node/pod Stage definitions (from the same module)
#   coredns                  github.com/coredns/coredns           (dev/cluster/go/corednsbin)
#   metrics-server           sigs.k8s.io/metrics-server/cmd/metrics-server (dev/cluster/go/metricsserverbin)
#   weed                     github.com/seaweedfs/seaweedfs/weed   (dev/cluster/go/seaweedfsbin)
#                            these three only on request: not in the default set (big builds, and
#                            only the node tier's cluster DNS and resource metrics and the model
#                            store's S3 tests use them)
#
# Versions live only in the wrapper go.mod files (with committed go.sum). To bump
# Kubernetes, edit k8s.io/kubernetes *and every staging replace* in k8sbin/go.mod, then
# `go mod tidy` there.
#
# Usage: dev/cluster/build-binaries.sh [binary...]     (default: all of the above but coredns, metrics-server, weed)
# Env:   MLOPS_CACHE  cache root (default /var/cache/mlops-predictor); binaries go to
#                     $MLOPS_CACHE/bin, GOMODCACHE/GOCACHE to $MLOPS_CACHE/go/{mod,build}
#        FORCE=1      rebuild even if the stamp matches
# Progress goes to stderr; the bin dir is the only line printed on stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
script="$here/$(basename "${BASH_SOURCE[0]}")"
gomods="$here/go"
all_bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl kwok)
# Built only when named: CoreDNS pulls in every cloud DNS backend's SDK, metrics-server a whole
# k8s.io/apiserver, SeaweedFS every filer store and cloud SDK (minutes each on a cold cache); only
# the node tier and the S3 model-store tests run them.
known_bins=("${all_bins[@]}" coredns metrics-server weed)
log_tag=build-binaries
# shellcheck source=dev/goenv.sh
source "$here/../goenv.sh"
case "$go_version" in
  go1.2[6-9]* | go1.[3-9][0-9]* | go[2-9]*) ;;
  *) die "need Go >= 1.26 (kwok v0.8.0 and etcd v3.6.16 say 'go 1.26.0'), have $go_version" ;;
esac
platform="$(go env GOOS)/$(go env GOARCH)"

lock_bin_dir

# --- versions, read from the wrapper go.mod files ------------------------------------
modver() { gomod_require "$gomods/$1/go.mod" "$2"; } # modver <wrapper> <module path>
k8s_version=$(modver k8sbin k8s.io/kubernetes)
etcd_version=$(modver etcdbin go.etcd.io/etcd/server/v3)
kwok_version=$(modver kwokbin sigs.k8s.io/kwok)
coredns_version=$(modver corednsbin github.com/coredns/coredns)
metrics_server_version=$(modver metricsserverbin sigs.k8s.io/metrics-server)
seaweedfs_version=$(modver seaweedfsbin github.com/seaweedfs/seaweedfs)
[[ -n $k8s_version && -n $etcd_version && -n $kwok_version && -n $coredns_version && -n $metrics_server_version &&
  -n $seaweedfs_version ]] ||
  die "cannot read versions from $gomods/*/go.mod"

# All k8s staging modules must sit at v0.<minor>.<patch> of k8s.io/kubernetes v1.<minor>.<patch>.
staging_version="v0.${k8s_version#v1.}"
skew=$(awk -v want="$staging_version" \
  '$1 ~ /^k8s\.io\// && $2 == "=>" && $4 != want { print $1 " => " $4 }' "$gomods/k8sbin/go.mod")
[[ -z $skew ]] || die "k8sbin/go.mod staging replaces not at $staging_version: $skew"

k8s_major=${k8s_version#v}; k8s_major=${k8s_major%%.*}
k8s_minor=${k8s_version#v*.}; k8s_minor=${k8s_minor%%.*}

# --- what each binary is built from ---------------------------------------------------
wrapper_of() {
  case "$1" in
    etcd) echo etcdbin ;;
    kwok) echo kwokbin ;;
    coredns) echo corednsbin ;;
    metrics-server) echo metricsserverbin ;;
    weed) echo seaweedfsbin ;;
    *) echo k8sbin ;;
  esac
}
package_of() {
  case "$1" in
    etcd) echo . ;;
    kwok) echo sigs.k8s.io/kwok/cmd/kwok ;;
    coredns) echo github.com/coredns/coredns ;; # main package at the module root
    metrics-server) echo sigs.k8s.io/metrics-server/cmd/metrics-server ;;
    weed) echo github.com/seaweedfs/seaweedfs/weed ;;
    *) echo "k8s.io/kubernetes/cmd/$1" ;;
  esac
}
version_of() {
  case "$1" in
    etcd) echo "$etcd_version" ;;
    kwok) echo "$kwok_version" ;;
    coredns) echo "$coredns_version" ;;
    metrics-server) echo "$metrics_server_version" ;;
    weed) echo "$seaweedfs_version" ;;
    *) echo "$k8s_version" ;;
  esac
}
ldflags_of() {
  local f="-s -w"
  case "$1" in
    etcd) f+=" -X go.etcd.io/etcd/api/v3/version.GitSHA=module-$etcd_version" ;;
    kwok) ;; # sigs.k8s.io/kwok/pkg/consts already carries Version=0.8.0, KubeVersion etc.
    # coremain.CoreVersion is a constant; GitCommit is what CoreDNS's Makefile sets from git.
    coredns) f+=" -X github.com/coredns/coredns/coremain.GitCommit=module-$coredns_version" ;;
    # metrics-server's Makefile sets client-go's version variables (gitVersion = the release tag);
    # its buildDate stays client-go's default, as for the Kubernetes binaries below.
    metrics-server)
      f+=" -X k8s.io/client-go/pkg/version.gitVersion=$metrics_server_version"
      f+=" -X k8s.io/client-go/pkg/version.gitCommit=module-$metrics_server_version"
      ;;
    # SeaweedFS's release workflow sets COMMIT to the git sha; the pseudo-version ends in it
    # (MAJOR/MINOR_VERSION, e.g. 4.53, are constants in the source).
    weed) f+=" -X github.com/seaweedfs/seaweedfs/weed/util/version.COMMIT=${seaweedfs_version##*-}" ;;
    *)
      # Same variables as kubernetes hack/lib/version.sh, for both version packages.
      # kwokctl and kubectl read gitVersion; buildDate = the module's publish time.
      local pkg
      for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
        f+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$k8s_major -X $pkg.gitMinor=$k8s_minor"
        f+=" -X $pkg.gitCommit= -X $pkg.gitTreeState=clean -X $pkg.buildDate=$k8s_build_date"
      done
      ;;
  esac
  echo "$f"
}

# The stamp covers everything that decides the output: wrapper module files, this
# script, the Go toolchain, the target platform and the version.
stamp_of() {
  local name=$1 wrapper
  wrapper=$(wrapper_of "$name")
  {
    echo "binary=$name version=$(version_of "$name") go=$go_version platform=$platform"
    (cd "$gomods/$wrapper" && { sha256sum go.mod go.sum ./*.go 2>/dev/null || true; })
    sha256sum <"$script"
  } | sha256sum | cut -d' ' -f1
}

# --- decide what to build ----------------------------------------------------------
want=("$@")
[[ ${#want[@]} -gt 0 ]] || want=("${all_bins[@]}")
todo=()
for name in "${want[@]}"; do
  [[ " ${known_bins[*]} " == *" $name "* ]] || die "unknown binary '$name' (known: ${known_bins[*]})"
  if [[ ${FORCE:-0} != 1 && -x $bin_dir/$name && -f $stamp_dir/$name ]] &&
    [[ $(cat "$stamp_dir/$name") == "$(stamp_of "$name")" ]]; then
    log "$name $(version_of "$name") is up to date"
  else
    todo+=("$name")
  fi
done

total_start=$SECONDS
if [[ ${#todo[@]} -gt 0 ]]; then
  log "go $go_version, cache $cache, building: ${todo[*]}"
  # Download the modules the wanted packages import first (proxy only), so download and
  # compile times show up separately. `go list -deps` fetches just those; `go mod download`
  # would also fetch every module go.mod lists for other build tags and platforms (for weed
  # 3.3 GB in 114 s instead of 2.1 GB in 53 s, cold).
  declare -A downloaded=()
  for name in "${todo[@]}"; do
    wrapper=$(wrapper_of "$name")
    [[ -z ${downloaded[$wrapper]:-} ]] || continue
    pkgs=()
    for n in "${todo[@]}"; do [[ $(wrapper_of "$n") != "$wrapper" ]] || pkgs+=("$(package_of "$n")"); done
    t=$SECONDS
    log "downloading modules for $wrapper ..."
    (cd "$gomods/$wrapper" && gobuild list -deps "${pkgs[@]}" >/dev/null) ||
      die "downloading the modules of ${pkgs[*]} failed in $gomods/$wrapper"
    downloaded[$wrapper]=1
    log "downloaded modules for $wrapper in $((SECONDS - t))s"
  done
  k8s_build_date=1970-01-01T00:00:00Z
  if [[ -n ${downloaded[k8sbin]:-} ]]; then
    d=$(cd "$gomods/k8sbin" && go list -m -f '{{with .Time}}{{.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes)
    [[ -z $d ]] || k8s_build_date=$d
  fi

  for name in "${todo[@]}"; do
    wrapper=$(wrapper_of "$name")
    t=$SECONDS
    log "building $name $(version_of "$name") ..."
    tmp="$bin_dir/.$name.tmp.$$"
    rm -f "$tmp"
    if ! (cd "$gomods/$wrapper" &&
      gobuild build -trimpath -ldflags "$(ldflags_of "$name")" -o "$tmp" "$(package_of "$name")"); then
      rm -f "$tmp"
      die "building $name failed after $((SECONDS - t))s"
    fi
    # Sanity check before publishing: the binary starts and reports a version
    # (kubectl has no --version flag, only the version subcommand; weed has only the subcommand).
    case $name in
      kubectl) vargs=(version --client) ;;
      weed) vargs=(version) ;;
      *) vargs=(--version) ;;
    esac
    v=$("$tmp" "${vargs[@]}" 2>&1) || { rm -f "$tmp"; die "$name ${vargs[*]} failed: $v"; }
    mv -f "$tmp" "$bin_dir/$name"
    stamp_of "$name" >"$stamp_dir/$name"
    log "built $name in $((SECONDS - t))s ($(du -h "$bin_dir/$name" | cut -f1)): $(head -n1 <<<"$v")"
  done
  log "done in $((SECONDS - total_start))s"
fi

# kwok itself ships no behaviour: its Stages (node initialise + heartbeat, pod ready/complete/
# delete) live as YAML in the kwok module. Publish the ones the tests use next to the binary.
if [[ " ${want[*]} " == *" kwok "* ]]; then
  stages="$bin_dir/kwok-stages.yaml"
  if [[ ! -s $stages || $stages -ot $bin_dir/kwok ]]; then
    kwok_dir=$(cd "$gomods/kwokbin" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok) ||
      die "cannot locate the sigs.k8s.io/kwok module (go mod download in $gomods/kwokbin)"
    tmp="$stages.tmp.$$"
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
      pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      [[ -f $kwok_dir/kustomize/stage/$f ]] || { rm -f "$tmp"; die "kwok stage $f missing in $kwok_dir"; }
      printf -- '---\n' >>"$tmp"
      cat "$kwok_dir/kustomize/stage/$f" >>"$tmp"
    done
    mv -f "$tmp" "$stages"
    log "wrote $stages (kwok $kwok_version stages)"
  fi
fi

echo "$bin_dir"
