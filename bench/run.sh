#!/usr/bin/env bash
# `make bench`: our agent vs ironic-python-agent 13.0.0, side by side; writes
# BENCHMARKS.md. Arguments go to bench/bench.py (e.g. --runs 7, --agent BIN,
# --baseline-agent BIN, --only stream,deploy, --note TEXT, --out FILE); see
# bench/README.md.
#
#   BENCH_IMAGE=0   skip `container/build-image.sh` (image size not measured)
#   AGENT_CMD=...   command template of the agent under test ({port}, {token}),
#                   standalone figures only; our release build and image are skipped
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
started=$EPOCHREALTIME   # the report gives the whole run's duration

# wrk: throughput; parted: IPA checks the partition table after writing an image.
missing=()
for pkg_bin in wrk:wrk parted:parted; do
    command -v "${pkg_bin#*:}" >/dev/null || missing+=("${pkg_bin%%:*}")
done
if ((${#missing[@]})); then
    echo "bench: installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
venv=$(bash bench/setup-ipa.sh)
bash tests/harness/ironic/setup.sh >&2   # the conductor of the deploy benchmark

args=(--ipa-venv "$venv" --run-started "$started")
if [[ -z ${AGENT_CMD:-} ]]; then
    bin=$(bash scripts/build-release.sh)   # the binary the image ships (static)
    args+=(--agent "$bin")
    image=localhost/ironic-agent:bench   # own tag: leaves :latest to the tests
    if [[ ${BENCH_IMAGE:-1} == 0 ]]; then
        args+=(--image-skip-reason "skipped (BENCH_IMAGE=0)")
    elif ! command -v podman >/dev/null; then
        args+=(--image-skip-reason "podman is not installed (make deps)")
    elif out=$(IMAGE=$image BINARY=$bin PROFILE=release bash container/build-image.sh 2>&1) &&
         bytes=$(grep -oP '^built .*: \K[0-9]+(?= bytes)' <<<"$out"); then
        echo "$out"
        args+=(--image-bytes "$bytes")
        podman rmi "$image" >/dev/null 2>&1 || true
    else
        echo "$out" >&2
        args+=(--image-skip-reason "container/build-image.sh failed")
    fi
else
    args+=(--image-skip-reason "AGENT_CMD given: no image of it was built")
fi
exec python3 bench/bench.py "${args[@]}" "$@"
