#!/usr/bin/env bash
# Downloads one of Debian's stock kernels, unpacks it into the cache without
# installing it, and indexes its modules. Prints the unpacked tree's path.
# Idempotent: a finished tree is reused.
#
# usage: fetch-kernel.sh [stable|current]
#   stable   (default) the kernel of this machine's Debian release: the package
#            linux-image-amd64 points at in the machine's own apt lists
#            (Debian 12: 6.1). One package holds the image and the modules.
#   current  Debian's current backports kernel (trixie-backports, 7.x), through
#            a private apt configuration in $VM_CACHE/apt-current/ (its own
#            sources file, lists, cache and state: the machine's sources and
#            lists stay untouched). The kernel is split into linux-binary-<kver>
#            (the image), linux-modules-<kver> and linux-base-<kver> (config,
#            modules.builtin, modules.order); all three are fetched.
#
# Every tree has the same layout, whatever the package put where:
# <tree>/boot/vmlinuz-<kver> and <tree>/lib/modules/<kver>/ (indexed by depmod).
set -euo pipefail

cache=${VM_CACHE:?VM_CACHE must name the cache folder}
flavour=${1:-stable}
mkdir -p "$cache"

# The private apt configuration of the "current" kernel.
current_suite=trixie-backports
current_keyring=/usr/share/keyrings/debian-archive-keyring.gpg
# The lists are refreshed when older than this (minutes); a failed refresh
# falls back to the lists already there.
lists_max_age=${VM_KERNEL_LISTS_MAX_AGE:-1440}

private_apt() { # private_apt COMMAND ARGS...: apt-get/apt-cache with only our sources
    APT_CONFIG=$cache/apt-current/apt.conf "$@"
}

setup_private_apt() {
    local dir=$cache/apt-current
    mkdir -p "$dir"/{sources.list.d,preferences.d,lists/partial,cache/archives/partial,state}
    : >>"$dir/state/status"
    echo "deb [signed-by=$current_keyring] http://deb.debian.org/debian $current_suite main" >"$dir/sources.list"
    # apt reads /etc/apt/apt.conf.d first (proxies and the like still apply),
    # then this file, which points every source, list, cache and state path
    # into $dir and drops the machine's update hooks.
    cat >"$dir/apt.conf" <<EOF
Dir::Etc::SourceList "$dir/sources.list";
Dir::Etc::SourceParts "$dir/sources.list.d";
Dir::Etc::Preferences "$dir/preferences";
Dir::Etc::PreferencesParts "$dir/preferences.d";
Dir::State "$dir/state";
Dir::State::Lists "$dir/lists";
Dir::State::status "$dir/state/status";
Dir::Cache "$dir/cache";
Dir::Cache::Archives "$dir/cache/archives";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Acquire::Languages "none";
APT::Sandbox::User "root";
#clear APT::Update::Post-Invoke;
#clear APT::Update::Post-Invoke-Success;
#clear DPkg::Post-Invoke;
EOF
    local stamp=$dir/lists/.updated
    if [ -z "$(find "$stamp" -mmin "-$lists_max_age" 2>/dev/null)" ]; then
        if private_apt apt-get update -qq >&2; then
            touch "$stamp"
        elif ls "$dir"/lists/*_Packages* >/dev/null 2>&1; then
            echo "fetch-kernel: apt-get update of $current_suite failed; using the lists from $(date -r "$dir/lists" -u +%FT%TZ)" >&2
        else
            echo "fetch-kernel: apt-get update of $current_suite failed and there are no lists in $dir/lists" >&2
            return 1
        fi
    fi
}

# depends_on APT_CACHE_COMMAND PACKAGE PREFIX: the first dependency of PACKAGE
# whose name starts with PREFIX.
depends_on() {
    local prefix=$3
    "$1" apt-cache depends "$2" 2>/dev/null |
        awk -v prefix="$prefix" '$1 == "Depends:" && index($2, prefix) == 1 { print $2; exit }'
}
direct() { "$@"; }

case $flavour in
    stable)
        apt=direct
        # The versioned package behind the meta package, e.g. linux-image-6.1.0-56-amd64.
        image=$(depends_on direct linux-image-amd64 linux-image-)
        if [ -z "$image" ]; then
            echo "fetch-kernel: apt-cache knows no linux-image-amd64; run 'apt-get update'" >&2
            exit 1
        fi
        kver=${image#linux-image-}
        packages=("$image")
        ;;
    current)
        apt=private_apt
        setup_private_apt
        # linux-image-amd64 -> linux-image-<kver> (itself only a meta package)
        # -> linux-binary-<kver> (vmlinuz) + linux-modules-<kver> + linux-base-<kver>
        # (without its modules.builtin, modprobe knows no built-in module).
        image=$(depends_on private_apt linux-image-amd64 linux-image-)
        if [ -z "$image" ]; then
            echo "fetch-kernel: $current_suite has no linux-image-amd64 (lists in $cache/apt-current/lists)" >&2
            exit 1
        fi
        kver=${image#linux-image-}
        packages=()
        for part in linux-binary linux-modules linux-base; do
            name=$(depends_on private_apt "$image" "$part-$kver")
            if [ "$name" != "$part-$kver" ] || ! private_apt apt-cache show "$name" >/dev/null 2>&1; then
                echo "fetch-kernel: $image does not depend on a package $part-$kver that $current_suite has" >&2
                exit 1
            fi
            packages+=("$name")
        done
        ;;
    *)
        echo "fetch-kernel: unknown kernel '$flavour' (VM_KERNEL must be stable or current)" >&2
        exit 2
        ;;
esac
tree=$cache/kernel-$kver

if [ ! -e "$tree/.ready" ]; then
    rm -rf "$tree" "$cache/download"
    mkdir -p "$cache/download" "$tree"
    # apt-get download writes into the current directory.
    (cd "$cache/download" && "$apt" apt-get download -q "${packages[@]}" >&2)
    for package in "${packages[@]}"; do
        dpkg-deb -x "$cache"/download/"$package"_*.deb "$tree"
    done
    # Packages of a merged-/usr release put everything under usr/: give the
    # tree the classic layout the other scripts (and depmod -b) expect.
    if [ -d "$tree/usr/lib/modules/$kver" ] && [ ! -e "$tree/lib" ]; then
        ln -s usr/lib "$tree/lib"
    fi
    if [ ! -e "$tree/boot/vmlinuz-$kver" ] && [ -e "$tree/lib/modules/$kver/vmlinuz" ]; then
        mkdir -p "$tree/boot"
        ln -s "../lib/modules/$kver/vmlinuz" "$tree/boot/vmlinuz-$kver"
    fi
    depmod -b "$tree" "$kver"
    rm -rf "$cache/download"
    touch "$tree/.ready"
fi

if [ ! -r "$tree/boot/vmlinuz-$kver" ]; then
    echo "fetch-kernel: $tree has no boot/vmlinuz-$kver" >&2
    exit 1
fi
echo "$tree"
