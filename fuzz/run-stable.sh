#!/usr/bin/env bash
# Coverage-guided fuzzing on a stable toolchain, without cargo-fuzz.
#
# Builds one target with the libFuzzer coverage instrumentation a stable
# toolchain has (build-instrumented.sh) and runs it for a while.
# Usage: fuzz/run-stable.sh <target> [seconds]     (default 60 s)
set -euo pipefail

target=${1:?usage: $0 <target> [seconds]}
seconds=${2:-60}
. "$(dirname "${BASH_SOURCE[0]}")/build-instrumented.sh"
here=$fuzz_dir

build_instrumented --bin "$target"

mkdir -p "$here/corpus/$target" "$here/artifacts/$target"
exec "$fuzz_bin_dir/$target" \
    "$here/corpus/$target" \
    -artifact_prefix="$here/artifacts/$target/" \
    -max_total_time="$seconds" -print_final_stats=1
