#!/usr/bin/env bash
# The regression gate of the fuzz targets: builds every target with the
# stable libFuzzer instrumentation (build-instrumented.sh, as run-stable.sh)
# and runs each for a few seconds starting from its seed corpus in
# fuzz/seeds/TARGET (committed; copied, so runs never change it).
# A crash or failed assertion stops with its input saved under
# fuzz/artifacts/TARGET/ and a non-zero exit.
# Usage: fuzz/run-seeds.sh [seconds per target]     (default 3)
set -euo pipefail

seconds=${1:-3}
. "$(dirname "${BASH_SOURCE[0]}")/build-instrumented.sh"
here=$fuzz_dir
targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$here/Cargo.toml" | grep -v '^pr-fuzz$')

build_instrumented --quiet --bins

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in $targets; do
    seeds="$here/seeds/$target"
    if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds")" ]; then
        echo "run-seeds: no seed corpus in $seeds" >&2
        exit 1
    fi
    mkdir -p "$work/$target" "$here/artifacts/$target"
    cp "$seeds"/* "$work/$target/"
    if ! "$fuzz_bin_dir/$target" "$work/$target" \
        -artifact_prefix="$here/artifacts/$target/" \
        -max_total_time="$seconds" >"$work/$target.log" 2>&1; then
        tail -40 "$work/$target.log" >&2
        echo "run-seeds: $target failed; the input is in $here/artifacts/$target/" >&2
        exit 1
    fi
    echo "$target: $(grep -Eo 'Done [0-9]+ runs' "$work/$target.log" | tail -1) in ${seconds} s from $(ls "$seeds" | wc -l) seeds"
done
