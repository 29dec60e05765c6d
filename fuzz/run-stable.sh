#!/usr/bin/env bash
# Coverage-guided fuzzing on a stable toolchain, without cargo-fuzz.
#
# cargo-fuzz needs nightly only for its sanitizer flags (-Zsanitizer=...);
# the libFuzzer coverage instrumentation itself (sancov) is available on
# stable, so this builds the targets with it and runs one for a while.
# Usage: fuzz/run-stable.sh <target> [seconds]     (default 60 s)
set -euo pipefail

target=${1:?usage: $0 <target> [seconds]}
seconds=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
triple=$(rustc -vV | sed -n 's/^host: //p')

# Build scripts must not be instrumented: passing --target keeps RUSTFLAGS
# away from them.
RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    cargo build --release --manifest-path "$here/Cargo.toml" \
    --target "$triple" --target-dir "$here/target/stable-fuzz" --bin "$target"

mkdir -p "$here/corpus/$target" "$here/artifacts/$target"
exec "$here/target/stable-fuzz/$triple/release/$target" \
    "$here/corpus/$target" \
    -artifact_prefix="$here/artifacts/$target/" \
    -max_total_time="$seconds" -print_final_stats=1
