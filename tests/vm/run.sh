#!/usr/bin/env bash
# Runs the real-device tier once: fetch (or reuse) Debian's kernel, build
# the initramfs with our release binaries, boot the guest, print its result
# lines (VMCHECK/VMINFO/...; see guest/lib.sh) on stdout.
#
# Environment:
#   PR_BIN_DIR   where the release binaries are (default: <repo>/target/release,
#                or $CARGO_TARGET_DIR/release)
#   VM_CACHE     cache folder (default: <repo>/.cache/vm)
#   VM_TIMEOUT   hard limit for the boot, in seconds (default 240)
#   VM_KERNEL    which Debian kernel the guest boots: stable (default: this
#                machine's release, Debian 12's 6.1) or current (Debian's
#                current backports kernel, 7.x; see host/fetch-kernel.sh)
# Exit status: 0 when the guest ran to the end (check the lines for FAILs),
# non-zero when the harness itself failed or timed out.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
export VM_CACHE=${VM_CACHE:-$repo/.cache/vm}
bin_dir=${PR_BIN_DIR:-${CARGO_TARGET_DIR:-$repo/target}/release}
deadline=${VM_TIMEOUT:-240}
# depmod and modprobe live in sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

tools=(qemu-system-x86_64 busybox cpio depmod modprobe sg_persist qemu-pr-helper dmsetup nvme apt-get dpkg-deb xz zstd)
missing_tools() {
    for tool in "${tools[@]}"; do
        command -v "$tool" >/dev/null 2>&1 || echo "$tool"
    done
}
# Install what is missing with the project's own set-up (idempotent; it
# installs the Debian packages listed in scripts/debian-packages.txt).
if [ -n "$(missing_tools)" ]; then
    echo "run.sh: missing $(missing_tools | tr '\n' ' '); running scripts/setup.sh" >&2
    "$repo/scripts/setup.sh" >&2 || true
fi
if [ -n "$(missing_tools)" ]; then
    echo "run.sh: still missing: $(missing_tools | tr '\n' ' '); run scripts/setup.sh as root" >&2
    exit 2
fi

export VM_KERNEL=${VM_KERNEL:-stable}
case $VM_KERNEL in
    stable | current) ;;
    *) echo "run.sh: VM_KERNEL must be stable or current, not '$VM_KERNEL'" >&2; exit 2 ;;
esac
mkdir -p "$VM_CACHE"
# Concurrent runs (two test sessions) share the kernel cache, one at a time,
# and each get their own run folder; last-run points at the newest one,
# last-run-$VM_KERNEL at the newest one of that kernel.
tree=$(flock "$VM_CACHE/fetch.lock" "$here/host/fetch-kernel.sh" "$VM_KERNEL")
find "$VM_CACHE" -maxdepth 1 -name 'run.*' -type d -mmin +60 -exec rm -rf {} + 2>/dev/null || true
run_dir=$(mktemp -d "$VM_CACHE/run.XXXXXX")
ln -sfn "$run_dir" "$VM_CACHE/last-run"
ln -sfn "$run_dir" "$VM_CACHE/last-run-$VM_KERNEL"
"$here/host/build-initramfs.sh" "$tree" "$bin_dir" "$run_dir/initramfs.cpio.gz"

status=0
timeout -s KILL "$deadline" "$here/host/boot.sh" "$tree" "$run_dir/initramfs.cpio.gz" \
    "$run_dir/console.log" "$run_dir/results.log" || status=$?
tr -d '\r' <"$run_dir/results.log"
if [ "$status" -eq 137 ]; then
    echo "run.sh: the guest did not finish within ${deadline}s; console log: $run_dir/console.log" >&2
    exit 3
elif [ "$status" -ne 0 ]; then
    echo "run.sh: qemu exited with status $status; console log: $run_dir/console.log" >&2
    exit "$status"
fi
