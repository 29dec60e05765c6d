#!/usr/bin/env bash
# Builds the Debian package target/debian/pr-helper_VERSION-1_ARCH.deb
# (pr-helper and prtool, stripped; man pages, completions, systemd units,
# docs) and pr-helper-dbgsym_VERSION-1_ARCH.ddeb (the debug info split off
# the binaries). From a clean clone: installs what it needs first (the
# Debian packages of scripts/debian-packages.txt, cargo-deb).
# Prints the path of the .deb as its last line.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

"$repo/scripts/setup.sh" >&2

# cargo-deb 3 (the major version whose metadata keys Cargo.toml uses).
if ! cargo deb --version 2>/dev/null | grep -q '^cargo-deb 3\.'; then
    echo "package: installing cargo-deb" >&2
    cargo install --locked cargo-deb --version '^3' >&2
fi

# The generated man pages and completions must be what the current command
# lines give; package nothing stale.
# --release: reuses the release build of pr-helper's library below.
if ! cargo run --release --quiet --locked -p pr-dist -- check >&2; then
    echo "package: packaging/generated is stale: run \`cargo run -p pr-dist -- write\` and commit" >&2
    exit 1
fi

echo "package: release build of pr-helper and prtool" >&2
cargo build --release --locked -p pr-helper -p prtool >&2

# Outside target/: cargo-deb takes paths below target/ for build outputs.
staging="$repo/packaging/staging"
rm -rf "$staging"
mkdir -p "$staging/man"
for page in pr-helper.8 prtool.8; do
    # -n: no name or time stamp inside, so the package is reproducible.
    gzip -9n <"packaging/generated/man/$page" >"$staging/man/$page.gz"
done

out="$repo/target/debian"
mkdir -p "$out"
rm -f "$out"/pr-helper_*.deb "$out"/pr-helper-dbgsym_*.ddeb
# --dbgsym: the binaries are stripped, their line tables go to the -dbgsym
# package (zlib-compressed, which Rust's backtraces read).
cargo deb -p pr-helper --no-build --locked --dbgsym --compress-debug-symbols=zlib \
    --output "$out" >&2

deb=$(ls "$out"/pr-helper_*.deb)
echo "package: $(basename "$deb"): $(stat -c %s "$deb") bytes" >&2
for ddeb in "$out"/pr-helper-dbgsym_*.ddeb; do
    [ -e "$ddeb" ] && echo "package: $(basename "$ddeb"): $(stat -c %s "$ddeb") bytes" >&2
done
echo "$deb"
