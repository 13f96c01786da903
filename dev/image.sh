# shellcheck shell=bash
# The images' one recipe, for the scripts that build and push them (dev/release, dev/push-images): a
# Dockerfile's `runtime` stage (FROM scratch) over a static binary built on this machine, its `build` stage
# replaced (`--build-context build=…`) by a directory holding the binary and the CA bundle; and the push.
# Source it; callers set `buildah`, an array: the command with its global options (e.g. (buildah)).
# shellcheck disable=SC2154 # `buildah` is the caller's.

# image_build <Dockerfile> <static binary> <image:tag> <version> <revision> <work dir>
image_build() {
  local dockerfile=$1 bin=$2 ref=$3 version=$4 revision=$5 work=$6
  local ctx=$work/build-stage
  rm -rf "$ctx"
  mkdir -p "$ctx/etc/ssl/certs"
  install -m 0755 "$bin" "$ctx/$(basename "$bin")"
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$ctx/etc/ssl/certs/ca-certificates.crt"
  "${buildah[@]}" bud --quiet --pull=false --layers=false --target runtime --build-context "build=$ctx" \
    --build-arg "VERSION=$version" --build-arg "REVISION=$revision" -f "$dockerfile" -t "$ref" "$work" >/dev/null
}

# image_size <image:tag> <work dir>: its size as the node tier measures images, the docker-archive tarball's
# bytes (layers uncompressed).
image_size() {
  local ref=$1 work=$2
  "${buildah[@]}" push --quiet "$ref" "docker-archive:$work/image.tar:$ref" >/dev/null
  stat -c %s "$work/image.tar"
  rm -f "$work/image.tar"
}

# image_push <image:tag> <digest file> [<docker config> [<CA dir>]]: pushes to the registry the reference
# names (credentials from the docker config, the registry's CA certificates *.crt from the directory), writes
# the pushed manifest's digest to <digest file>, and drops the local copy.
image_push() {
  local ref=$1 digest_file=$2 authfile=${3:-} cert_dir=${4:-}
  local args=(--quiet --digestfile "$digest_file")
  [[ -z $authfile ]] || args+=(--authfile "$authfile")
  [[ -z $cert_dir ]] || args+=(--cert-dir "$cert_dir")
  "${buildah[@]}" push "${args[@]}" "$ref" "docker://$ref" >/dev/null
  "${buildah[@]}" rmi "$ref" >/dev/null 2>&1 || true
}
