#!/usr/bin/env bash
# The whole test suite, as CI runs it: set-up, lints, release binaries for the VM tier,
# then every test (unit, property, integration, QEMU interop, VM tier) under nextest.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

"$repo/scripts/setup.sh"

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

echo "== unused dependencies (cargo machete, main and fuzz workspaces)"
cargo machete
(cd fuzz && cargo machete)

echo "== fuzz targets build (stable check, against the committed fuzz/Cargo.lock)"
cargo check --manifest-path fuzz/Cargo.toml --quiet --locked

echo "== fuzz targets on their seed corpora (3 s each: a decoder regression fails here)"
fuzz/run-seeds.sh 3

echo "== release binaries (used by the VM tier)"
cargo build --release --locked -p pr-helper -p prtool -p pr-bench -p vm-tests

echo "== the main job's demo (scripts/run.sh --demo-only)"
demo_log=$(mktemp)
if ! "$repo/scripts/run.sh" --demo-only >"$demo_log" 2>&1; then
    cat "$demo_log"; rm -f "$demo_log"
    echo "test.sh: the demo of scripts/run.sh failed (output above)" >&2
    exit 1
fi
grep -q 'RESERVATION CONFLICT' "$demo_log" || { cat "$demo_log"; echo "test.sh: demo showed no conflict" >&2; exit 1; }
rm -f "$demo_log"
echo "demo ok"

echo "== Debian package: build, install, units, socket activation, removal (scripts/package-test.sh)"
"$repo/scripts/package-test.sh"

echo "== doctests (README examples; nextest does not run doctests)"
cargo test --workspace --all-features --locked --doc --quiet

echo "== tests"
cargo nextest run --workspace --all-features --locked --profile ci
