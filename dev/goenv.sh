# shellcheck shell=bash disable=SC2034,SC2154  # sets variables for, and reads log_tag from, the sourcing script
# Sourced by the scripts that build Go binaries from the module proxy (dev/cluster/build-binaries.sh,
# dev/argocd/build.sh): one cache layout, one Go environment, one log format, one lock.
#
# Before sourcing, set log_tag (the log prefix). Sets cache, bin_dir, stamp_dir, go_version;
# exports GOMODCACHE, GOCACHE, CGO_ENABLED, GOFLAGS. Env: MLOPS_CACHE (default /var/cache/mlops-predictor).

cache=${MLOPS_CACHE:-/var/cache/mlops-predictor}
bin_dir="$cache/bin"
stamp_dir="$bin_dir/.stamps"

log() { printf '[%s %s] %s\n' "$log_tag" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

mkdir -p "$bin_dir" "$stamp_dir" "$cache/go/mod" "$cache/go/build"

export GOMODCACHE="$cache/go/mod"
export GOCACHE="$cache/go/build"
export CGO_ENABLED=0
# readonly: builds must use the committed go.sum files, never rewrite them.
export GOFLAGS="-mod=readonly -buildvcs=false"
# GOPROXY / GOSUMDB / GOTOOLCHAIN are left as configured on the machine.

command -v go >/dev/null || die "go not found in PATH"
go_version=$(go env GOVERSION)

# Long builds share the machine.
gobuild() { nice -n 10 go "$@"; }

# gomod_require <go.mod> <module path>: the version <go.mod> requires.
gomod_require() {
  awk -v m="$2" '$1 == "require" { $1 = ""; $0 = $0 } $1 == m && $2 ~ /^v/ { print $2; exit }' "$1"
}

# One build at a time per cache dir (concurrent test runs share it); held until the script exits.
lock_bin_dir() {
  if command -v flock >/dev/null; then
    exec 9>"$bin_dir/.lock"
    flock 9
  fi
}
