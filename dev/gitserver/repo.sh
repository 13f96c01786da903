#!/usr/bin/env bash
# Create a bare repository served by dev/gitserver/git-http.py, with pushes enabled and one of the hooks.
#
# Usage: dev/gitserver/repo.sh <root> <name> [release|webhook] [key=value ...]
#   <root>/<name>.git is created (branch main); the hook hooks/post-receive-<kind> is installed as its
#   post-receive; each key=value is set in its config (mlops.releaseDir=..., mlops.webhookUrl=...).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=${1:?usage: repo.sh <root> <name> [release|webhook] [key=value ...]}
name=${2:?usage: repo.sh <root> <name> [release|webhook] [key=value ...]}
kind=${3:-}
shift $(($# < 3 ? $# : 3))
repo=$root/$name.git
git init --quiet --bare --initial-branch=main "$repo"
git -C "$repo" config http.receivepack true
if [[ -n $kind ]]; then
  [[ -x $here/hooks/post-receive-$kind ]] || { echo "repo.sh: no hook post-receive-$kind" >&2; exit 2; }
  install -m 0755 "$here/hooks/post-receive-$kind" "$repo/hooks/post-receive"
fi
for kv in "$@"; do git -C "$repo" config "${kv%%=*}" "${kv#*=}"; done
echo "$repo"
