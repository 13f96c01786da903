#!/usr/bin/env bash
# Build real ArgoCD from the Go module proxy (no GitHub, no container registry):
#
#   argocd   github.com/argoproj/argo-cd/v3/cmd  (dev/argocd/go/argocdbin)
#            one multi-call binary; it picks its component from argv[0], so
#            argocd-application-controller, argocd-repo-server and argocd-server are
#            symlinks to it (the same binary run as `argocd` is the CLI).
#   argocd-crds.yaml   the Application/AppProject/ApplicationSet CRDs from the same
#            module's manifests/crds (read from the module cache, never committed).
#   kustomize  sigs.k8s.io/kustomize/kustomize/v5 (dev/argocd/go/kustomizebin): the repo-server
#            renders kustomizations with it, and dev/release runs `kustomize edit set image`.
#
# The versions live only in go/argocdbin/go.mod and go/kustomizebin/go.mod (with committed go.sum). Which versions
# build from the proxy and why: dev/argocd/README.md.
#
# Usage: dev/argocd/build.sh
# Env:   MLOPS_CACHE  cache root (default /var/cache/mlops-predictor); binary in $MLOPS_CACHE/bin,
#                     GOMODCACHE/GOCACHE in $MLOPS_CACHE/go/{mod,build} (shared with dev/cluster)
#        FORCE=1      rebuild even if the stamp matches
# Progress goes to stderr; the bin dir is the only line printed on stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
script="$here/$(basename "${BASH_SOURCE[0]}")"
wrapper="$here/go/argocdbin"
links=(argocd-application-controller argocd-repo-server argocd-server)
log_tag=argocd-build
# shellcheck source=dev/goenv.sh
source "$here/../goenv.sh"
stamp="$stamp_dir/argocd"

version=$(gomod_require "$wrapper/go.mod" github.com/argoproj/argo-cd/v3)
[[ -n $version ]] || die "cannot read the argo-cd version from $wrapper/go.mod"

lock_bin_dir

stamp_now() {
  {
    echo "argocd=$version go=$go_version platform=$(go env GOOS)/$(go env GOARCH)"
    (cd "$wrapper" && sha256sum go.mod go.sum)
    sha256sum <"$script"
  } | sha256sum | cut -d' ' -f1
}

if [[ ${FORCE:-0} != 1 && -x $bin_dir/argocd && -f $stamp && $(cat "$stamp") == "$(stamp_now)" ]]; then
  log "argocd $version is up to date"
else
  log "go $go_version, cache $cache, building argocd $version"
  t=$SECONDS
  (cd "$wrapper" && gobuild mod download) || die "go mod download failed in $wrapper"
  log "downloaded modules in $((SECONDS - t))s"
  t=$SECONDS
  build_date=$(cd "$wrapper" &&
    go list -m -f '{{with .Time}}{{.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' github.com/argoproj/argo-cd/v3)
  pkg=github.com/argoproj/argo-cd/v3/common
  ldflags="-s -w -X $pkg.version=${version#v} -X $pkg.buildDate=${build_date:-1970-01-01T00:00:00Z}"
  ldflags+=" -X $pkg.gitTag=$version -X $pkg.gitTreeState=clean"
  tmp="$bin_dir/.argocd.tmp.$$"
  rm -f "$tmp"
  if ! (cd "$wrapper" && gobuild build -trimpath -ldflags "$ldflags" -o "$tmp" github.com/argoproj/argo-cd/v3/cmd); then
    rm -f "$tmp"
    die "building argocd $version failed after $((SECONDS - t))s"
  fi
  v=$("$tmp" version --client --short 2>&1) || { rm -f "$tmp"; die "argocd version failed: $v"; }
  mv -f "$tmp" "$bin_dir/argocd"
  stamp_now >"$stamp"
  log "built argocd in $((SECONDS - t))s ($(du -h "$bin_dir/argocd" | cut -f1)): $v"
fi
for l in "${links[@]}"; do
  ln -sfn argocd "$bin_dir/$l"
done

crds="$bin_dir/argocd-crds.yaml"
if [[ ! -s $crds || $crds -ot $bin_dir/argocd ]]; then
  dir=$(cd "$wrapper" && go list -m -f '{{.Dir}}' github.com/argoproj/argo-cd/v3) ||
    die "cannot locate the argo-cd module (go mod download in $wrapper)"
  tmp="$crds.tmp.$$"
  : >"$tmp"
  for f in application-crd.yaml appproject-crd.yaml applicationset-crd.yaml; do
    [[ -f $dir/manifests/crds/$f ]] || { rm -f "$tmp"; die "CRD $f missing in $dir/manifests/crds"; }
    printf -- '---\n' >>"$tmp"
    cat "$dir/manifests/crds/$f" >>"$tmp"
  done
  mv -f "$tmp" "$crds"
  log "wrote $crds (argo-cd $version manifests/crds)"
fi

# kustomize: its own wrapper module and stamp.
kwrapper="$here/go/kustomizebin"
kversion=$(gomod_require "$kwrapper/go.mod" sigs.k8s.io/kustomize/kustomize/v5)
[[ -n $kversion ]] || die "cannot read the kustomize version from $kwrapper/go.mod"
kstamp_now() {
  {
    echo "kustomize=$kversion go=$go_version platform=$(go env GOOS)/$(go env GOARCH)"
    (cd "$kwrapper" && sha256sum go.mod go.sum)
    sha256sum <"$script"
  } | sha256sum | cut -d' ' -f1
}
if [[ ${FORCE:-0} != 1 && -x $bin_dir/kustomize && -f $stamp_dir/kustomize &&
  $(cat "$stamp_dir/kustomize") == "$(kstamp_now)" ]]; then
  log "kustomize $kversion is up to date"
else
  t=$SECONDS
  tmp="$bin_dir/.kustomize.tmp.$$"
  rm -f "$tmp"
  if ! (cd "$kwrapper" && gobuild build -trimpath -ldflags "-s -w" -o "$tmp" sigs.k8s.io/kustomize/kustomize/v5); then
    rm -f "$tmp"
    die "building kustomize $kversion failed after $((SECONDS - t))s"
  fi
  v=$("$tmp" version 2>&1) || { rm -f "$tmp"; die "kustomize version failed: $v"; }
  mv -f "$tmp" "$bin_dir/kustomize"
  kstamp_now >"$stamp_dir/kustomize"
  log "built kustomize in $((SECONDS - t))s: $v"
fi

echo "$bin_dir"
