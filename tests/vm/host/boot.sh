#!/usr/bin/env bash
# Boots Debian's kernel with the initramfs under QEMU (TCG: this machine's
# KVM cannot run a stock kernel). The guest's console goes to CONSOLE_LOG,
# its result lines (second serial port) to RESULTS.
#
# usage: boot.sh KERNEL_TREE INITRAMFS CONSOLE_LOG RESULTS
set -euo pipefail

tree=$1 initrd=$2 console_log=$3 results=$4
kernel=$(ls "$tree"/boot/vmlinuz-* | head -n 1)

: >"$results"
# -cpu max gives TCG the instructions Debian's modules may probe for.
exec qemu-system-x86_64 \
    -accel tcg -cpu max -m 1536 -smp 2 \
    -nographic -no-reboot -nodefaults \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 quiet loglevel=3 ${VM_KERNEL_ARGS:-}" \
    -serial "file:$console_log" \
    -serial "file:$results" \
    -monitor none
