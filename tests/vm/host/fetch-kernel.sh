#!/usr/bin/env bash
# Downloads Debian's stock kernel (the package linux-image-amd64 points at),
# unpacks it into the cache without installing it, and indexes its modules.
# Prints the unpacked tree's path. Idempotent: a finished tree is reused.
set -euo pipefail

cache=${VM_CACHE:?VM_CACHE must name the cache folder}
mkdir -p "$cache"

# The versioned package behind the meta package, e.g. linux-image-6.1.0-56-amd64.
package=$(apt-cache depends linux-image-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
if [ -z "$package" ]; then
    echo "fetch-kernel: apt-cache knows no linux-image-amd64; run 'apt-get update'" >&2
    exit 1
fi
kver=${package#linux-image-}
tree=$cache/kernel-$kver

if [ ! -e "$tree/.ready" ]; then
    rm -rf "$tree" "$cache/download"
    mkdir -p "$cache/download"
    # apt-get download writes into the current directory.
    (cd "$cache/download" && apt-get download -q "$package" >&2)
    dpkg-deb -x "$cache"/download/"$package"_*.deb "$tree"
    depmod -b "$tree" "$kver"
    rm -rf "$cache/download"
    touch "$tree/.ready"
fi

if [ ! -r "$tree/boot/vmlinuz-$kver" ]; then
    echo "fetch-kernel: $tree has no boot/vmlinuz-$kver" >&2
    exit 1
fi
echo "$tree"
