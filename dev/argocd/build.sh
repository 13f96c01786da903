#!/usr/bin/env bash
# Build real ArgoCD from the Go module proxy (no GitHub, no container registry):
#
#   argocd   github.com/argoproj/argo-cd/v3/cmd  (dev/argocd/go/argocdbin)
#            one multi-call binary; it picks its component from argv[0], so
#            argocd-application-controller, argocd-repo-server and argocd-server are
#            symlinks to it (the same binary run as `argocd` is the CLI).
#            Its web UI is embedded (dev/argocd/build-ui.sh builds it: npm and the vendored argo-ui).
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
wrapper="$here/go/argocdbin"
module=github.com/argoproj/argo-cd/v3
links=(argocd-application-controller argocd-repo-server argocd-server)
log_tag=argocd-build
# shellcheck source=dev/goenv.sh
source "$here/../goenv.sh"

# What ArgoCD's Makefile sets for a release; the build date is the module's publish time.
argocd_ldflags() {
  local pkg=$module/common build_date
  build_date=$(cd "$wrapper" && go list -m -f '{{with .Time}}{{.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' "$module")
  echo "-s -w -X $pkg.version=${1#v} -X $pkg.buildDate=${build_date:-1970-01-01T00:00:00Z}" \
    "-X $pkg.gitTag=$1 -X $pkg.gitTreeState=clean"
}
plain_ldflags() { echo "-s -w"; }

# The web UI goes into the binary, as in ArgoCD's own image: argocd-server serves its pages' index.html only from
# the embedded ui/dist/app (server.go getIndexData; --staticassets adds files, not the page), which the Go module
# ships empty. So the build uses a copy of the module with the assets build-ui.sh made in ui/dist/app (a replace
# in a generated copy of the wrapper module), keyed by the assets' inputs. Before the lock: build-ui.sh takes it.
ui=$("$here/build-ui.sh")
key=$(basename "$(dirname "$ui")")
lock_bin_dir
src="$cache/argocd-src/$key"
if [[ ! -f $src/.complete ]]; then
  moddir=$(cd "$wrapper" && go list -m -f '{{.Dir}}' "$module") || die "cannot locate the $module module"
  rm -rf "$cache/argocd-src"
  mkdir -p "$src"
  cp -r "$moddir/." "$src/"
  chmod -R u+w "$src"
  rm -rf "$src/ui/dist/app"
  cp -r "$ui" "$src/ui/dist/app"
  touch "$src/.complete"
  log "argo-cd source with the web UI embedded: $src"
fi
build_wrapper="$cache/argocd-src/wrapper"
mkdir -p "$build_wrapper"
cp "$wrapper/go.mod" "$wrapper/go.sum" "$build_wrapper/"
(cd "$build_wrapper" && go mod edit -replace "$module=$src") || die "go mod edit -replace failed"
go_tool argocd "$build_wrapper" "$module" "$module/cmd" argocd_ldflags version --client --short
for l in "${links[@]}"; do
  ln -sfn argocd "$bin_dir/$l"
done

crds="$bin_dir/argocd-crds.yaml"
if [[ ! -s $crds || $crds -ot $bin_dir/argocd ]]; then
  dir=$(cd "$wrapper" && go list -m -f '{{.Dir}}' "$module") ||
    die "cannot locate the argo-cd module (go mod download in $wrapper)"
  tmp="$crds.tmp.$$"
  : >"$tmp"
  for f in application-crd.yaml appproject-crd.yaml applicationset-crd.yaml; do
    [[ -f $dir/manifests/crds/$f ]] || { rm -f "$tmp"; die "CRD $f missing in $dir/manifests/crds"; }
    printf -- '---\n' >>"$tmp"
    cat "$dir/manifests/crds/$f" >>"$tmp"
  done
  mv -f "$tmp" "$crds"
  log "wrote $crds (argo-cd manifests/crds)"
fi

# kustomize: its own wrapper module.
go_tool kustomize "$here/go/kustomizebin" sigs.k8s.io/kustomize/kustomize/v5 sigs.k8s.io/kustomize/kustomize/v5 \
  plain_ldflags version

echo "$bin_dir"
