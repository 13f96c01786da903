#!/usr/bin/env bash
# The one static release build of the binaries that go into images: the predictor without its
# developer-only features (plotting: `--no-default-features --features serve`) and the operator, glibc
# linked statically (the images are FROM scratch). Used by dev/test, dev/demo and dev/node/images.sh.
#
# Usage: dev/static-bins.sh      prints the directory holding `predictor` and `operator` (stdout's only line)
# Env:   CARGO_TARGET_DIR        cargo target dir (default: the cache's, dev/cache.sh)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=dev/cache.sh
source "$repo/dev/cache.sh"
target=$(realpath -m "$CARGO_TARGET_DIR")
triple=x86_64-unknown-linux-gnu
echo "[static-bins] cargo build --release (static, fat LTO: minutes on 2 cores) into $target" >&2
build() { (cd "$repo" && CARGO_TARGET_DIR=$target RUSTFLAGS="-C target-feature=+crt-static" \
  nice -n 10 cargo build --release --locked --target "$triple" "$@" >&2); }
# NB: two builds, not one: in one invocation the features of the predictor library unify, and the
# operator would link the predictor's server (`serve`, which the operator's dependency leaves out).
build -p predictor --bin predictor --no-default-features --features serve
build -p operator --bin operator
echo "$target/$triple/release"
