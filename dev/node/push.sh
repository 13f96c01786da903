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
[[ -s $N/registry/auth.json ]] || die "no registry credentials in $N/registry: up.sh starts the registry"
BA=(buildah --root "$N/buildah/root" --runroot "$N/buildah/run" --storage-driver vfs)
# buildah reads CA certificates (*.crt) for the registry from --cert-dir.
certs=$N/registry/client-certs
mkdir -p "$certs"
install -m 0644 "$N/pki/ca.crt" "$certs/ca.crt"
made=()
for p in /var/lib/containers /etc/cni; do [[ -e $p ]] || made+=("$p"); done
trap 'if ((${#made[@]})); then rm -rf "${made[@]}"; fi' EXIT
t0=$SECONDS
: >"$N/images/digests.env"
while read -r ref; do
  t=$SECONDS
  "${BA[@]}" push --quiet --cert-dir "$certs" --authfile "$N/registry/auth.json" --digestfile "$N/images/.digest" \
    "$ref" "docker://$ref" >/dev/null
  digest=$(cat "$N/images/.digest")
  key=${ref##*/}
  echo "$(echo "${key%%:*}" | tr '[:lower:]-' '[:upper:]_')_$(echo "${key#*:}" | tr '.' '_')=$digest" \
    >>"$N/images/digests.env"
  log "pushed $ref ($digest) in $((SECONDS - t))s"
done <"$N/images/refs"
rm -f "$N/images/.digest"
log "images pushed to $REGISTRY in $((SECONDS - t0))s"
