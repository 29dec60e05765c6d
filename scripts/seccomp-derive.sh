#!/bin/sh
# Finds the syscalls the seccomp allowlist misses: builds the daemon with
# PR_HELPER_SECCOMP_DERIVE_REPORT set at compile time (that build's default
# is --seccomp=trap, and its SIGSYS handler appends one line per blocked
# syscall, every ioctl request included, to the file named), runs tests
# with it, then prints each syscall number hit, its name and, for ioctl,
# the request numbers. The daemon changes mode at run time only by
# --seccomp; no environment variable does.
#
#   scripts/seccomp-derive.sh                      # pr-helper's tests
#   scripts/seccomp-derive.sh -p pr-helper -p prtool --all-features
#   REPORT=/tmp/hits scripts/seccomp-derive.sh ...  # keep the raw report
#   VM=1 scripts/seccomp-derive.sh                  # the VM tier too (release build)
#
# Arguments go to `cargo nextest run` (default: -p pr-helper). Add what the
# output names to crates/pr-helper/src/sandbox/seccomp-policy.json, with a
# comment naming the code that needs it, and run again until nothing is
# printed. Tests that assert a default-kill behaviour pass --seccomp=kill
# and still kill; a test failing here points at a missing syscall too. The
# next ordinary build rebuilds the daemon without the report (cargo tracks
# the variable).
set -u
cd "$(dirname "$0")/.."
report=${REPORT:-$(mktemp)}
: > "$report"
chmod 666 "$report" # daemons started with -u USER append too
[ $# -eq 0 ] && set -- -p pr-helper
PR_HELPER_SECCOMP_DERIVE_REPORT=$report cargo nextest run --no-fail-fast "$@"
status=$?
if [ -n "${VM:-}" ]; then
    # The guest writes its daemons' report lines to the console as
    # "VMSECCOMP <line>" after the last scenario (guest/init prints them).
    PR_HELPER_SECCOMP_DERIVE_REPORT=/tmp/seccomp-report \
        cargo build --release -p pr-helper -p prtool -p pr-bench -p vm-tests &&
        tests/vm/run.sh | sed -n 's/^VMSECCOMP //p' >> "$report"
fi
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
