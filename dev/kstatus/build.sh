#!/usr/bin/env bash
# Build kstatus, a small CLI over sigs.k8s.io/cli-utils' kstatus library (what Flux's kustomize-controller, kpt
# and cli-utils judge resources with), from the Go module proxy:
#
#   kstatus   dev/kstatus/go (main.go): JSON objects in, kstatus' verdict per object out; the kstatus tier of
#             operator/tests/argocd_health.rs runs it over every Predictor state the operator computes.
#
# The cli-utils version lives only in go/go.mod (with its committed go.sum). To move to another release:
# change the require there, `go mod tidy` (GOFLAGS= to allow it), run this script.
#
# Usage: dev/kstatus/build.sh
# Env:   MLOPS_CACHE  cache root (default /var/cache/mlops-predictor); binary in $MLOPS_CACHE/bin,
#                     GOMODCACHE/GOCACHE in $MLOPS_CACHE/go/{mod,build} (shared with dev/cluster, dev/argocd)
#        FORCE=1      rebuild even if the stamp matches
# Progress goes to stderr; the bin dir is the only line printed on stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log_tag=kstatus-build
# shellcheck source=dev/goenv.sh
source "$here/../goenv.sh"

no_ldflags() { echo "-s -w"; }

lock_bin_dir
go_tool kstatus "$here/go" sigs.k8s.io/cli-utils . no_ldflags --version
echo "$bin_dir"
