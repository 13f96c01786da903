#!/usr/bin/env bash
# Push the images dev/node/images.sh built ($N/images/refs) from buildah's storage to the node's private
# registry ($REGISTRY, TLS from the node CA, htpasswd user from $N/registry), the way a team publishes
# images; containerd then pulls them like any registry image. Writes $N/images/digests.env
# (<name>_<tag>=sha256:… of each pushed manifest) for the tests.
#
# Usage (root, registry running: up.sh starts it): dev/node/push.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
[[ -s $N/images/refs ]] || die "no $N/images/refs: run dev/node/images.sh first"
buildah_cleanup_on_exit
t0=$SECONDS
: >"$N/images/digests.env"
while read -r ref; do
  t=$SECONDS
  digest=$(registry_push "$ref")
  key=${ref##*/}
  echo "$(echo "${key%%:*}" | tr '[:lower:]-' '[:upper:]_')_$(echo "${key#*:}" | tr '.' '_')=$digest" \
    >>"$N/images/digests.env"
  log "pushed $ref ($digest) in $((SECONDS - t))s"
done <"$N/images/refs"
log "images pushed to $REGISTRY in $((SECONDS - t0))s"
