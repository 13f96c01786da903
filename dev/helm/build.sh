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
log_tag=helm-build
# shellcheck source=dev/goenv.sh
source "$here/../goenv.sh"

# What helm's own Makefile sets for a tagged release (`helm version` reports it).
helm_ldflags() {
  local pkg=helm.sh/helm/v4/internal/version
  echo "-s -w -X $pkg.version=$1 -X $pkg.metadata= -X $pkg.gitTreeState=clean"
}

lock_bin_dir
go_tool helm "$here/go/helmbin" helm.sh/helm/v4 helm.sh/helm/v4/cmd/helm helm_ldflags version --short
echo "$bin_dir"
