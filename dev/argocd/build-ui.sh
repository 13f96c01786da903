#!/usr/bin/env bash
# Build ArgoCD's web UI (what argocd-server serves with --staticassets) from the `ui/` of the same argo-cd
# module the binaries come from (dev/argocd/go/argocdbin/go.mod), with no GitHub:
#
#   argo-ui   the component library ui/ imports; yarn.lock pins it to a GitHub commit, which these machines
#             cannot reach. The same commit is vendored beside the repository (../shared/vendor, unmodified,
#             sha256 checked below): unpacked next to a copy of ui/, and package.json + yarn.lock point at it
#             as a `file:` dependency. Nothing else of the lockfile changes.
#   the rest  every other package from the npm registry, as yarn.lock pins it (`yarn install --frozen-lockfile`,
#             yarn 1.22.22 from npm), then `yarn build` (webpack) as ArgoCD's own Dockerfile runs it.
#
# The built assets are cached in $MLOPS_CACHE/argocd-ui/<key>/app, the key being the hash of every input
# (ui/'s source, the argo-ui tarball, yarn and node versions, this script): a second run prints the same
# directory at once. Neither the UI's source nor argo-ui is ever copied into the repository.
#
# Usage: dev/argocd/build-ui.sh
# Env:   MLOPS_CACHE   cache root (default /var/cache/mlops-predictor)
#        MLOPS_VENDOR  the vendored inputs (default: ../shared/vendor beside the repository)
#        FORCE=1       rebuild even if the assets for this key exist
# Progress goes to stderr; the assets directory (index.html, …) is the only line printed on stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
wrapper="$here/go/argocdbin"
module=github.com/argoproj/argo-cd/v3
log_tag=argocd-ui
# shellcheck source=dev/goenv.sh
source "$here/../goenv.sh"

# The argo-ui commit ui/yarn.lock pins, and the tarball's sha256 (../shared/vendor/README.md).
argo_ui_commit=5cf36101733ce43eed57242a12389f2a7e40bd2b
argo_ui_sha256=5c7fbe122a1589dbb7a4a726cd4dda8a496387e97af5217b62764f2c6726490e
yarn_version=1.22.22
vendor=${MLOPS_VENDOR:-$repo/../shared/vendor}
tarball="$vendor/argo-ui-$argo_ui_commit.tar.gz"

command -v node >/dev/null || die "node not found (Debian: apt-get install nodejs npm)"
command -v npx >/dev/null || die "npx not found (Debian: apt-get install npm)"
[[ -f $tarball ]] || die "missing $tarball (the vendored argo-ui; see ../shared/vendor/README.md)"
sum=$(sha256sum "$tarball" | cut -d' ' -f1)
[[ $sum == "$argo_ui_sha256" ]] || die "$tarball has sha256 $sum, not $argo_ui_sha256"

(cd "$wrapper" && gobuild mod download "$module") || die "go mod download $module failed in $wrapper"
src=$(cd "$wrapper" && go list -m -f '{{.Dir}}' "$module")/ui
[[ -f $src/yarn.lock ]] || die "no ui/yarn.lock in $src"
pin="git+https://github.com/argoproj/argo-ui.git"
grep -q "^\"argo-ui@$pin\":" "$src/yarn.lock" || die "ui/yarn.lock has no entry for argo-ui@$pin"
grep -q "resolved \"$pin#$argo_ui_commit\"" "$src/yarn.lock" ||
  die "ui/yarn.lock pins another argo-ui commit than $argo_ui_commit (the vendored one)"

key=$({
  echo "node=$(node --version) yarn=$yarn_version argo-ui=$argo_ui_sha256"
  (cd "$src" && find . -type f -not -path './dist/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  sha256sum <"${BASH_SOURCE[0]}"
} | sha256sum | cut -c1-16)
out="$cache/argocd-ui/$key"
if [[ ${FORCE:-0} != 1 && -f $out/app/index.html ]]; then
  log "UI assets for $key are built"
  echo "$out/app"
  exit 0
fi

lock_bin_dir
work="$cache/argocd-ui/work"
rm -rf "$work"
mkdir -p "$work"
cp -r "$src" "$work/ui"
chmod -R u+w "$work/ui"
tar -xzf "$tarball" -C "$work/ui"
[[ -f $work/ui/argo-ui/package.json ]] || die "the tarball has no argo-ui/package.json"
# argo-ui as a local directory: the package.json range and the lockfile key change together (frozen install).
sed -i "s|\"argo-ui\": \"$pin\"|\"argo-ui\": \"file:./argo-ui\"|" "$work/ui/package.json"
sed -i -e "s|^\"argo-ui@$pin\":|\"argo-ui@file:./argo-ui\":|" \
  -e "\|^  resolved \"$pin#$argo_ui_commit\"|d" "$work/ui/yarn.lock"
grep -q '"argo-ui": "file:./argo-ui"' "$work/ui/package.json" || die "could not point package.json at argo-ui"

export YARN_CACHE_FOLDER="$cache/yarn" npm_config_cache="$cache/npm"
yarn=(nice -n 10 npx --yes "yarn@$yarn_version")
t=$SECONDS
log "yarn install (argo-cd $(basename "$(dirname "$src")"), argo-ui $argo_ui_commit vendored)"
(cd "$work/ui" && "${yarn[@]}" install --frozen-lockfile --non-interactive --network-timeout 600000 >&2) ||
  die "yarn install failed after $((SECONDS - t))s"
log "installed in $((SECONDS - t))s"
t=$SECONDS
# As ArgoCD's Dockerfile builds it (production, no analytics upload).
(cd "$work/ui" && NODE_ENV=production NODE_ONLINE_ENV=online NODE_OPTIONS=--max_old_space_size=8192 \
  "${yarn[@]}" build >&2) || die "yarn build failed after $((SECONDS - t))s"
[[ -f $work/ui/dist/app/index.html ]] || die "the build wrote no dist/app/index.html"
rm -rf "$out"
mkdir -p "$out"
mv "$work/ui/dist/app" "$out/app"
rm -rf "$work"
log "built in $((SECONDS - t))s: $out/app ($(du -sh "$out/app" | cut -f1))"
echo "$out/app"
