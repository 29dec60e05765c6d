#!/bin/sh
# Finds the syscalls the seccomp allowlist misses: runs tests with every
# pr-helper they start in --seccomp=trap mode (blocked syscalls fail with
# ENOSYS and are reported once per process), then prints each syscall
# number hit, its name and, for ioctl, the request numbers.
#
#   scripts/seccomp-derive.sh                      # pr-helper's tests
#   scripts/seccomp-derive.sh -p pr-helper -p vm-tests --no-capture
#   REPORT=/tmp/hits scripts/seccomp-derive.sh ...  # keep the raw report
#
# Arguments go to `cargo nextest run` (default: -p pr-helper). Add what the
# output names to crates/pr-helper/src/sandbox/seccomp-policy.json, with a
# comment saying who needs it, and run again until nothing is printed.
# Tests that assert a default-kill behaviour still pass in trap mode; a
# test failing here points at a missing syscall too.
set -u
cd "$(dirname "$0")/.."
report=${REPORT:-$(mktemp)}
: > "$report"
[ $# -eq 0 ] && set -- -p pr-helper
PR_HELPER_SECCOMP_REPORT=$report cargo nextest run --no-fail-fast "$@"
status=$?
header=$(echo '#include <asm/unistd.h>' | cpp -dM 2>/dev/null | grep '#define __NR_')
echo
echo "== syscalls outside the allowlist ($(sort -u "$report" | wc -l) report lines, tests exit $status)"
sed -n 's/.*blocked syscall \([0-9-]*\) .* arg0 0x\([0-9a-f]*\) arg1 0x\([0-9a-f]*\).*/\1 \2 \3/p' "$report" |
    sort -u | sort -n | while read -r nr arg0 arg1; do
        name=$(printf '%s\n' "$header" | awk -v nr="$nr" '$3 == nr { sub("__NR_", "", $2); print $2; exit }')
        case $name in
        ioctl) echo "$nr ${name:-?} (request 0x$arg1 on fd $((0x$arg0)))" ;;
        *) echo "$nr ${name:-?}" ;;
        esac
    done
[ -n "${REPORT:-}" ] || rm -f "$report"
exit 0
