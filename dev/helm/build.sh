#!/usr/bin/env bash
# Build the helm CLI from the Go module proxy (no GitHub, no container registry):
#
#   helm   helm.sh/helm/v4/cmd/helm  (dev/helm/go/helmbin): `helm lint` of charts/predictor-operator in
#          .ci/run, and `helm template` in operator/tests/helm_chart.rs (the chart against config/).
#
# The version lives only in go/helmbin/go.mod (with its committed go.sum). To move to another release:
# change the require there, `go mod tidy` (GOFLAGS= to allow it), run this script.
#
# Usage: dev/helm/build.sh
# Env:   MLOPS_CACHE  cache root (default /var/cache/mlops-predictor); binary in $MLOPS_CACHE/bin,
#                     GOMODCACHE/GOCACHE in $MLOPS_CACHE/go/{mod,build} (shared with dev/cluster, dev/argocd)
#        FORCE=1      rebuild even if the stamp matches
# Progress goes to stderr; the bin dir is the only line printed on stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
script="$here/$(basename "${BASH_SOURCE[0]}")"
wrapper="$here/go/helmbin"
module=helm.sh/helm/v4
log_tag=helm-build
# shellcheck source=dev/goenv.sh
source "$here/../goenv.sh"
stamp="$stamp_dir/helm"

version=$(gomod_require "$wrapper/go.mod" "$module")
[[ -n $version ]] || die "cannot read the helm version from $wrapper/go.mod"

lock_bin_dir

stamp_now() {
  {
    echo "helm=$version go=$go_version platform=$(go env GOOS)/$(go env GOARCH)"
    (cd "$wrapper" && sha256sum go.mod go.sum)
    sha256sum <"$script"
  } | sha256sum | cut -d' ' -f1
}

if [[ ${FORCE:-0} != 1 && -x $bin_dir/helm && -f $stamp && $(cat "$stamp") == "$(stamp_now)" ]]; then
  log "helm $version is up to date"
else
  log "go $go_version, cache $cache, building helm $version"
  t=$SECONDS
  (cd "$wrapper" && gobuild mod download) || die "go mod download failed in $wrapper"
  log "downloaded modules in $((SECONDS - t))s"
  t=$SECONDS
  # What helm's own Makefile sets for a tagged release (`helm version` reports it).
  pkg=$module/internal/version
  ldflags="-s -w -X $pkg.version=$version -X $pkg.metadata= -X $pkg.gitTreeState=clean"
  tmp="$bin_dir/.helm.tmp.$$"
  rm -f "$tmp"
  if ! (cd "$wrapper" && gobuild build -trimpath -ldflags "$ldflags" -o "$tmp" "$module/cmd/helm"); then
    rm -f "$tmp"
    die "building helm $version failed after $((SECONDS - t))s"
  fi
  v=$("$tmp" version --short 2>&1) || { rm -f "$tmp"; die "helm version failed: $v"; }
  [[ $v == "$version"* ]] || { rm -f "$tmp"; die "built helm says $v, not $version"; }
  mv -f "$tmp" "$bin_dir/helm"
  stamp_now >"$stamp"
  log "built helm in $((SECONDS - t))s ($(du -h "$bin_dir/helm" | cut -f1)): $v"
fi

echo "$bin_dir"
