#!/usr/bin/env bash
# Installs everything the demo and the test suite need on a fresh Debian machine:
# the Debian packages listed in scripts/debian-packages.txt, cargo-nextest,
# cargo-machete, and working loop devices (the descriptor, differential and
# benchmark tests attach image files with losetup and fail without them).
# Idempotent: it only installs what is missing.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

mapfile -t wanted < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$repo/scripts/debian-packages.txt")
missing=()
for pkg in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "setup: Debian packages present"
fi

# Loop devices: the driver (module `loop`, or built in), its control node, and
# device nodes for losetup to attach to. devtmpfs makes the nodes by itself;
# on a static /dev (some containers) they are made here, with the numbers the
# kernel gives in sysfs.
if [ ! -e /sys/devices/virtual/misc/loop-control ]; then
    as_root modprobe loop 2>/dev/null || true
fi
if [ ! -e /sys/devices/virtual/misc/loop-control ]; then
    echo "setup: the kernel has no loop driver (modprobe loop failed): the tests need one" >&2
    exit 1
fi
make_node() { # make_node PATH TYPE SYSFS_DEV_FILE
    local major minor
    IFS=: read -r major minor <"$3"
    echo "setup: creating $1 ($2 $major:$minor)"
    as_root mknod -m 0600 "$1" "$2" "$major" "$minor"
}
if [ ! -c /dev/loop-control ]; then
    make_node /dev/loop-control c /sys/devices/virtual/misc/loop-control/dev
fi
for dev in /sys/block/loop*/dev; do
    [ -e "$dev" ] || continue
    name=$(basename "$(dirname "$dev")")
    [ -b "/dev/$name" ] || make_node "/dev/$name" b "$dev"
done
probe=$(mktemp)
truncate -s 1M "$probe"
if loop=$(as_root losetup -f --show "$probe" 2>&1); then
    as_root losetup -d "$loop"
    rm -f "$probe"
    echo "setup: loop devices work"
else
    rm -f "$probe"
    echo "setup: losetup cannot attach an image ($loop): the tests need loop devices (run as root)" >&2
    exit 1
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install a Rust toolchain (rustup) first" >&2
    exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "setup: installing cargo-nextest"
    cargo install --locked cargo-nextest
fi
# scripts/test.sh fails on a dependency no code uses.
if ! cargo machete --version >/dev/null 2>&1; then
    echo "setup: installing cargo-machete"
    cargo install --locked cargo-machete
fi
