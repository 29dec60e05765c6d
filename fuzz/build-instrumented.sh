# Sourced by run-stable.sh and run-seeds.sh: builds fuzz targets with the
# libFuzzer coverage instrumentation (sancov) that a stable toolchain has.
#
# cargo-fuzz needs nightly only for its sanitizer flags (-Zsanitizer=...).
# Build scripts must not be instrumented: passing --target keeps RUSTFLAGS
# away from them. --locked: the targets build against fuzz/Cargo.lock.

fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fuzz_triple=$(rustc -vV | sed -n 's/^host: //p')
# Where build_instrumented puts the binaries.
fuzz_bin_dir="$fuzz_dir/target/stable-fuzz/$fuzz_triple/release"

# build_instrumented CARGO_BUILD_ARGS...: e.g. --bins, or --bin TARGET.
build_instrumented() {
    RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
        cargo build --locked --release --manifest-path "$fuzz_dir/Cargo.toml" \
        --target "$fuzz_triple" --target-dir "$fuzz_dir/target/stable-fuzz" "$@"
}
