#!/usr/bin/env bash
# Build the node tier's images offline with buildah (FROM scratch, no pulls) into buildah's storage under
# $N/buildah, each also exported as a docker-archive tarball into $N/images/ (its size is the image size
# the node test reports). dev/node/push.sh pushes them to the node's registry once up.sh started it; only
# the pause image is imported into containerd with ctr (the sandbox image, needed before any pull):
#   localhost/mlops/pause:node                  dev/node/images/pause.c, gcc -static
#   $REGISTRY/mlops/model-store:node            dev/node/images/fileserver.c + model files trained here
#   $REGISTRY/mlops/american-predictor:<V>      the static predictor binary (cargo, crt-static), one tag per version
#   $REGISTRY/mlops/predictor-operator:0.1      the static operator binary, when OPERATOR_BIN is set
#   $REGISTRY/mlops/coredns:<version>           the static CoreDNS binary (dev/cluster/build-binaries.sh coredns)
#   $REGISTRY/mlops/metrics-server:<version>    the static metrics-server binary (build-binaries.sh metrics-server)
# ($REGISTRY = 10.77.0.1:5443, see lib.sh.) Also writes $N/images/models.env (model file names + sha256)
# for the tests and scripts that name a model, and $N/images/refs (the references push.sh pushes).
#
# Usage (root): dev/node/images.sh
# Env: PREDICTOR_BIN      use this static predictor binary instead of building it
#      OPERATOR_BIN       a static operator binary: also build the operator image
#      COREDNS_BIN        a static CoreDNS binary (default: $MLOPS_K8S_BIN/coredns, else build-binaries.sh)
#      METRICS_SERVER_BIN a static metrics-server binary (default: $MLOPS_K8S_BIN/metrics-server, else
#                         build-binaries.sh)
#      PREDICTOR_VERSIONS image tags to build (default "0.1 0.2": same binary, VERSION env differs)
#      CARGO_TARGET_DIR   cargo target dir for the predictor build (default: the cache's, dev/cache.sh)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root

out=$N/images
ctx=$N/build
mkdir -p "$out" "$ctx"/{pause,store/models,predictor,coredns,metrics-server}
rm -f "$out"/*.tar "$out/refs"
buildah_cleanup_on_exit
t0=$SECONDS

# --- static C binaries ---------------------------------------------------------------------------
gcc -Os -static -s -Wall -Wextra -o "$ctx/pause/pause" "$NODE_HERE/images/pause.c"
gcc -Os -static -s -Wall -Wextra -o "$ctx/store/fileserver" "$NODE_HERE/images/fileserver.c"

# --- predictor binary (static glibc) ---------------------------------------------------------------
if [[ -z ${PREDICTOR_BIN:-} ]]; then
  PREDICTOR_BIN=$("$REPO/dev/static-bins.sh")/predictor
fi
[[ -x $PREDICTOR_BIN ]] || die "no predictor binary at $PREDICTOR_BIN"
file -L "$PREDICTOR_BIN" 2>/dev/null | grep -q 'static' ||
  ldd "$PREDICTOR_BIN" 2>&1 | grep -q 'not a dynamic executable' || die "$PREDICTOR_BIN is not static"
install -m 0755 "$PREDICTOR_BIN" "$ctx/predictor/predictor"
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$ctx/predictor/ca-certificates.crt"

# --- models (fixed dates => reproducible bytes) -------------------------------------------------------
# model-a: the default pipeline on the built-in sample; model-b: words only, another date (a different
# file, for model-only rollouts); model-t: the default pipeline on ../shared/data/tweets/train.csv when
# that file exists (the node tests evaluate it through the Service).
models=$ctx/store/models
rm -f "$models"/*.bin
"$PREDICTOR_BIN" train --data "$REPO/predictor/src/sample.csv" --out "$models/model-a.bin" \
  --model-date 2026-01-01T00:00:00Z >/dev/null
"$PREDICTOR_BIN" train --data "$REPO/predictor/src/sample.csv" --out "$models/model-b.bin" \
  --model-date 2026-02-01T00:00:00Z --ngram-max 1 >/dev/null
tweets=${TWEETS_DIR:-$REPO/../shared/data/tweets}
# With the tweets, also what the quality gates need (issue 15): model-s, the same rows with their labels
# shuffled (a model whose bytes are fine and whose predictions are not); model-h, the first third of the
# rows (an older, weaker model that model-t, trained on every row, improves on); and test.csv as the
# labelled validation set the store serves (VALIDATION in models.env).
rm -f "$models"/*.csv
if [[ -f $tweets/train.csv ]]; then
  "$PREDICTOR_BIN" train --data "$tweets/train.csv" --out "$models/model-t.bin" \
    --model-date 2026-03-01T00:00:00Z >/dev/null
  python3 - "$tweets/train.csv" "$ctx/shuffled.csv" "$ctx/third.csv" <<'PY'
import csv, random, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="", encoding="utf-8")))
labels = [r["country_code"] for r in rows]
random.Random(15).shuffle(labels)
def write(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
write(sys.argv[2], [{**r, "country_code": label} for r, label in zip(rows, labels)])
write(sys.argv[3], rows[: len(rows) // 3])
PY
  "$PREDICTOR_BIN" train --data "$ctx/shuffled.csv" --out "$models/model-s.bin" \
    --model-date 2026-03-01T00:00:00Z >/dev/null
  "$PREDICTOR_BIN" train --data "$ctx/third.csv" --out "$models/model-h.bin" \
    --model-date 2026-02-15T00:00:00Z >/dev/null
  install -m 0644 "$tweets/test.csv" "$models/test.csv"
fi
# model-v1: a format-1 model file (predictor 0.2.0's, no drift reference), the one the predictor's own tests
# load: a server still serves it, and the operator's Drift condition says why it is Unknown.
install -m 0644 "$REPO/predictor/tests/data/model-v1.bin" "$models/model-v1.bin"
chmod 0644 "$models"/*.bin
for f in "$models"/*.bin; do
  name=$(basename "$f" .bin) && key=MODEL_$(echo "${name#model-}" | tr '[:lower:]' '[:upper:]')
  echo "$key=$name.bin ${key}_SHA256=$(sha256sum "$f" | cut -d' ' -f1)"
done >"$out/models.env"
if [[ -f $models/test.csv ]]; then
  echo "VALIDATION=test.csv VALIDATION_SHA256=$(sha256sum "$models/test.csv" | cut -d' ' -f1)" >>"$out/models.env"
fi

# --- buildah: FROM scratch images -> docker-archive ------------------------------------------------
build() { # build <image ref> <containerfile> <context dir> [build args...]
  local ref=$1 file=$2 dir=$3 tar
  shift 3
  tar=$out/$(echo "${ref##*/}" | tr ':' '_').tar
  "${BA[@]}" bud --quiet --layers=false --pull=false -f "$file" -t "$ref" "$@" "$dir" >/dev/null
  rm -f "$tar"
  "${BA[@]}" push --quiet "$ref" "docker-archive:$tar:$ref" >/dev/null
  log "built $ref -> $tar ($(du -h "$tar" | cut -f1))"
  [[ $ref == "$PAUSE_IMAGE" ]] || echo "$ref" >>"$out/refs"
}
build "$PAUSE_IMAGE" "$NODE_HERE/images/Containerfile.pause" "$ctx/pause"
build "$STORE_IMAGE" "$NODE_HERE/images/Containerfile.model-store" "$ctx/store"
rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
for v in ${PREDICTOR_VERSIONS:-0.1 0.2}; do
  build "$PREDICTOR_REPO:$v" "$NODE_HERE/images/Containerfile.predictor" "$ctx/predictor" \
    --build-arg "VERSION=$v" --build-arg "REVISION=$rev"
done
if [[ -n ${OPERATOR_BIN:-} ]]; then
  [[ -x $OPERATOR_BIN ]] || die "no operator binary at $OPERATOR_BIN"
  mkdir -p "$ctx/operator"
  install -m 0755 "$OPERATOR_BIN" "$ctx/operator/operator"
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$ctx/operator/ca-certificates.crt"
  build "$OPERATOR_IMAGE" "$NODE_HERE/images/Containerfile.operator" "$ctx/operator" \
    --build-arg VERSION=0.1 --build-arg "REVISION=$rev"
fi
# CoreDNS: a static Go binary (CGO off), so FROM scratch like the others.
coredns=${COREDNS_BIN:-}
if [[ -z $coredns ]]; then
  if [[ -x ${MLOPS_K8S_BIN:-/nonexistent}/coredns ]]; then coredns=$MLOPS_K8S_BIN/coredns
  else coredns=$("$REPO/dev/cluster/build-binaries.sh" coredns)/coredns; fi
fi
file -L "$coredns" 2>/dev/null | grep -q 'statically linked' || die "$coredns is not a static binary"
install -m 0755 "$coredns" "$ctx/coredns/coredns"
build "$COREDNS_IMAGE" "$NODE_HERE/images/Containerfile.coredns" "$ctx/coredns" --build-arg "VERSION=$COREDNS_VERSION"
# metrics-server: the same (static Go, FROM scratch); its version must be the one lib.sh names.
ms=${METRICS_SERVER_BIN:-}
if [[ -z $ms ]]; then
  if [[ -x ${MLOPS_K8S_BIN:-/nonexistent}/metrics-server ]]; then ms=$MLOPS_K8S_BIN/metrics-server
  else ms=$("$REPO/dev/cluster/build-binaries.sh" metrics-server)/metrics-server; fi
fi
file -L "$ms" 2>/dev/null | grep -q 'statically linked' || die "$ms is not a static binary"
ms_version=$("$ms" --version 2>&1) || die "$ms --version failed: $ms_version"
[[ $ms_version == "v$METRICS_SERVER_VERSION" ]] || die "$ms is $ms_version, lib.sh wants v$METRICS_SERVER_VERSION"
install -m 0755 "$ms" "$ctx/metrics-server/metrics-server"
build "$METRICS_SERVER_IMAGE" "$NODE_HERE/images/Containerfile.metrics-server" "$ctx/metrics-server" \
  --build-arg "VERSION=$METRICS_SERVER_VERSION"
log "images built in $((SECONDS - t0))s"
