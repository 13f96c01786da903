#!/usr/bin/env bash
# Publish one more predictor image to the node's registry, the way a team's CI releases: build the runtime
# image again from the static binary images.sh staged ($N/build/predictor), with VERSION=<version> and
# REVISION=<revision> (a new revision makes new image bytes), and push it as $PREDICTOR_REPO:<tag>. Pushing
# an existing tag moves it to the new bytes. Prints the pushed manifest's digest (the only line on stdout).
#
# Usage (root, node up): dev/node/publish.sh <tag> [version (default: the tag)] [revision (default: now)]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
tag=${1:?usage: dev/node/publish.sh <tag> [version] [revision]}
version=${2:-$tag}
revision=${3:-$(date -u +%Y%m%dT%H%M%S%N)}
[[ -x $N/build/predictor/predictor ]] || die "no staged predictor in $N/build/predictor: run dev/node/images.sh"
buildah_cleanup_on_exit
ref=$PREDICTOR_REPO:$tag
"${BA[@]}" bud --quiet --layers=false --pull=false -f "$NODE_HERE/images/Containerfile.predictor" -t "$ref" \
  --build-arg "VERSION=$version" --build-arg "REVISION=$revision" "$N/build/predictor" >/dev/null
digest=$(registry_push "$ref")
log "published $ref ($digest, version $version, revision $revision)"
echo "$digest"
