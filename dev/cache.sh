# shellcheck shell=bash
# The project's cache, outside the clone: what is expensive to build (the Go and Java helpers, the cargo
# target dir with the static release binaries) is built there once per machine and reused by whichever
# script runs next (./dev/demo, ./dev/test, .ci/run, the benches), never depended on. Source it.
export MLOPS_CACHE=${MLOPS_CACHE:-/var/cache/mlops-predictor}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$MLOPS_CACHE/cargo-target}
