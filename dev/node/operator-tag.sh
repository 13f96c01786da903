#!/usr/bin/env bash
# Push the operator image images.sh built ($OPERATOR_IMAGE, still in buildah's storage under $N) to the node's
# registry under one more tag, the way a release re-tags an image: the same bytes, a new name for
# `helm upgrade --set image.tag=<tag>` to roll the operator to. Prints the pushed manifest's digest (the only
# line on stdout).
#
# Usage (root, node up, operator image built: OPERATOR_BIN set for images.sh): dev/node/operator-tag.sh <tag>
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
tag=${1:?usage: dev/node/operator-tag.sh <tag>}
buildah_cleanup_on_exit
ref=${OPERATOR_IMAGE%:*}:$tag
"${BA[@]}" tag "$OPERATOR_IMAGE" "$ref" || die "no $OPERATOR_IMAGE in buildah's storage: run images.sh with OPERATOR_BIN"
digest=$(registry_push "$ref")
log "pushed $ref ($digest, the bytes of $OPERATOR_IMAGE)"
echo "$digest"
