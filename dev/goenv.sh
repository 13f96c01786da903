# shellcheck shell=bash disable=SC2034,SC2154  # sets variables for, and reads log_tag from, the sourcing script
# Sourced by the scripts that build Go binaries from the module proxy (dev/cluster/build-binaries.sh,
# dev/argocd/build.sh, dev/helm/build.sh): one cache layout, one Go environment, one log format, one lock,
# one way to build a single tool (go_tool).
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

# go_tool <name> <wrapper dir> <module> <package> <ldflags fn> <version args...>
# One Go tool from its wrapper module (dev/argocd, dev/helm): builds <package> into $bin_dir/<name> unless
# the stamp (the version <wrapper>/go.mod requires for <module>, Go, platform, the wrapper's go.mod/go.sum and
# its own Go files (dev/kstatus),
# this file and the calling script) matches. `<ldflags fn> <version>` prints the -ldflags, after the modules
# are downloaded; the new binary must answer `<version args>` with its version before it replaces the old.
go_tool() {
  local name=$1 wrapper=$2 module=$3 package=$4 ldflags_fn=$5
  shift 5
  local version stamp stamp_file="$stamp_dir/$name" t tmp ldflags v
  version=$(gomod_require "$wrapper/go.mod" "$module")
  [[ -n $version ]] || die "cannot read the $module version from $wrapper/go.mod"
  stamp=$({
    echo "$name=$version go=$go_version platform=$(go env GOOS)/$(go env GOARCH)"
    (cd "$wrapper" && { sha256sum go.mod go.sum ./*.go 2>/dev/null || true; })
    sha256sum <"${BASH_SOURCE[0]}"
    sha256sum <"${BASH_SOURCE[-1]}"
  } | sha256sum | cut -d' ' -f1)
  if [[ ${FORCE:-0} != 1 && -x $bin_dir/$name && -f $stamp_file && $(cat "$stamp_file") == "$stamp" ]]; then
    log "$name $version is up to date"
    return
  fi
  log "go $go_version, cache $cache, building $name $version"
  t=$SECONDS
  (cd "$wrapper" && gobuild mod download) || die "go mod download failed in $wrapper"
  log "downloaded modules in $((SECONDS - t))s"
  t=$SECONDS
  ldflags=$("$ldflags_fn" "$version") || die "cannot compute the ldflags of $name"
  tmp="$bin_dir/.$name.tmp.$$"
  rm -f "$tmp"
  if ! (cd "$wrapper" && gobuild build -trimpath -ldflags "$ldflags" -o "$tmp" "$package"); then
    rm -f "$tmp"
    die "building $name $version failed after $((SECONDS - t))s"
  fi
  v=$("$tmp" "$@" 2>&1) || { rm -f "$tmp"; die "$name $* failed: $v"; }
  [[ $v == *"$version"* ]] || { rm -f "$tmp"; die "built $name says '$v', not $version"; }
  mv -f "$tmp" "$bin_dir/$name"
  echo "$stamp" >"$stamp_file"
  log "built $name in $((SECONDS - t))s ($(du -h "$bin_dir/$name" | cut -f1)): $v"
}
