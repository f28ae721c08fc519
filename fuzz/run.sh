#!/bin/sh
# Bounded fuzz run of every target (see fuzz/README.md). FUZZ_ITERS / FUZZ_SECONDS bound it.
set -eu
cd "$(dirname "$0")/.."
FUZZ_ITERS="${FUZZ_ITERS:-20000}" FUZZ_SECONDS="${FUZZ_SECONDS:-10}" \
    cargo test -j2 --test fuzz_parsers -- --nocapture
