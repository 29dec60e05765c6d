#!/usr/bin/env bash
# Builds the guest's initramfs: static busybox, the kernel modules LIO and
# the SCSI disks need (with their dependencies, in load order), our release
# binaries, Debian's sg_persist, qemu-pr-helper, dmsetup and nvme (nvme-cli)
# with the shared libraries they link, and the guest scripts. Rebuilt on every run (a few seconds).
#
# usage: build-initramfs.sh KERNEL_TREE BIN_DIR OUTPUT.cpio.gz
set -euo pipefail

tree=$1 bin_dir=$2 output=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kver=$(basename "$(ls -d "$tree"/lib/modules/*/ | head -n 1)")

# The modules the guest loads; modprobe resolves each one's dependencies.
# dm-round-robin: the path selector a multipath table needs.
modules=(configfs target_core_mod target_core_file tcm_loop scsi_mod sd_mod sg dm-mod dm-multipath dm-round-robin)
# Loaded where the kernel has them: the NVMe target and its loop transport
# (the nvme-* scenarios; Debian's 6.1 builds no nvme-loop).
optional_modules=(nvmet nvme-loop)
# Our binaries (built by cargo --release) and the reference tools from Debian.
our_binaries=(pr-helper prtool pr-bench pr-replay pr-sigterm-probe pr-model-check pr-helper-probe)
debian_binaries=(/usr/bin/sg_persist /usr/bin/sg_raw /usr/bin/qemu-pr-helper /usr/sbin/dmsetup /usr/sbin/nvme)

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,proc,sys,dev,tmp,run,etc,var/target/pr,vm}

# busybox: one static binary, one link per applet.
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done

# Modules, deduplicated, in the order insmod must see them. Newer kernels
# ship them compressed (.ko.xz, .ko.zst, .ko.gz); busybox insmod reads plain
# ELF only, so they are unpacked here and listed by their .ko name.
: >"$root/vm/modules.list"
{
    for module in "${modules[@]}"; do
        modprobe -d "$tree" -S "$kver" --show-depends "$module"
    done
    for module in "${optional_modules[@]}"; do
        modprobe -d "$tree" -S "$kver" --show-depends "$module" 2>/dev/null ||
            echo "build-initramfs: kernel $kver has no module $module; not loaded" >&2
    done
} | awk '$1 == "insmod" { print $2 }' | awk '!seen[$0]++' | while read -r path; do
    inside=${path#"$tree"}
    case $inside in
        *.ko.xz) unpack=(xz -dc) inside=${inside%.xz} ;;
        *.ko.zst) unpack=(zstd -qdc) inside=${inside%.zst} ;;
        *.ko.gz) unpack=(gzip -dc) inside=${inside%.gz} ;;
        *) unpack=(cat) ;;
    esac
    mkdir -p "$root$(dirname "$inside")"
    "${unpack[@]}" "$path" >"$root$inside"
    echo "$inside" >>"$root/vm/modules.list"
done

# Copies a dynamically linked executable and every library ldd names, at
# the same absolute paths, so the guest's loader finds them unchanged.
copy_with_libraries() {
    local source=$1 dest=$2
    mkdir -p "$root$(dirname "$dest")"
    cp -L "$source" "$root$dest"
    ldd "$source" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do
        if [ ! -e "$root$lib" ]; then
            mkdir -p "$root$(dirname "$lib")"
            cp -L "$lib" "$root$lib"
        fi
    done
}

: >"$root/vm/missing-binaries"
for name in "${our_binaries[@]}"; do
    if [ -x "$bin_dir/$name" ]; then
        copy_with_libraries "$bin_dir/$name" "/usr/local/bin/$name"
    else
        echo "$name" >>"$root/vm/missing-binaries"
    fi
done
for path in "${debian_binaries[@]}"; do
    copy_with_libraries "$path" "$path"
done

cp "$here/guest/init" "$root/init"
cp "$here"/guest/*.sh "$here"/guest/*.stream "$root/vm/"
chmod +x "$root/init" "$root"/vm/*.sh
echo "$kver" >"$root/vm/kernel-version"
echo "${VM_KERNEL:-stable}" >"$root/vm/kernel-flavour"

(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$output.tmp"
mv "$output.tmp" "$output"
