# Differential: the same request stream (differential.stream, failing
# requests and protocol violations included) sent by pr-replay to Debian's
# qemu-pr-helper and to our pr-helper, each time from the same reservation
# state on the same LUN, must give identical reply bytes, line by line.
# The PR generation is compared relative to the first one in each run (it
# only ever grows, so absolute values differ between runs).
. /vm/lib.sh

stream=/vm/differential.stream
if ! have_binary pr-replay; then
    fail binaries "pr-replay is missing from the initramfs (cargo build --release -p vm-tests)"
    exit 0
fi

# replay WHICH OUTPUT: one run of the stream through one helper.
replay() {
    reset_reservations
    start_helper "$1" "$WORK/$1.sock" || return 1
    pr-replay "$WORK/$1.sock" "$stream" >"$2" 2>"$2.err"
    local status=$?
    stop_helper "$HELPER_PID"
    [ "$status" = 0 ] || echo "pr-replay against $1 failed: $(cat "$2.err")" >&2
    return "$status"
}

if replay qemu "$WORK/qemu.out"; then
    pass replay-qemu "$(wc -l <"$WORK/qemu.out") replies"
else
    fail replay-qemu "$(tr '\n' ' ' <"$WORK/qemu.out.err")"
    exit 0
fi
sg_after_qemu=$(sg_keys /dev/sda | sed 's/gen=[^ ]* //')
if ! have_binary pr-helper; then
    fail binaries "pr-helper is missing from the initramfs (cargo build --release -p pr-helper)"
    exit 0
fi
if replay ours "$WORK/ours.out"; then
    pass replay-ours "$(wc -l <"$WORK/ours.out") replies"
else
    fail replay-ours "$(tr '\n' ' ' <"$WORK/ours.out.err")"
fi
sg_after_ours=$(sg_keys /dev/sda | sed 's/gen=[^ ]* //')
expect_eq final-state-sg_persist "$sg_after_qemu" "$sg_after_ours"

# The reference itself must show what the stream is built to provoke,
# otherwise two equally wrong runs would pass.
reference_status() { # NAME -> status word of qemu's reply, or "closed"
    awk -v name="$1" '$1 == name { print ($2 == "closed" ? "closed" : $3) }' "$WORK/qemu.out"
}
expect_eq reference-register-ok 00000000 "$(reference_status register-a)"
expect_eq reference-conflict 00000018 "$(reference_status reserve-b-conflict)"
expect_eq reference-ro-refused 00000002 "$(reference_status reserve-ro-descriptor)"
expect_eq reference-no-descriptor closed "$(reference_status no-descriptor)"
expect_eq reference-bad-opcode closed "$(reference_status inquiry-opcode)"

# One check per request: identical reply lines.
while read -r name _; do
    case $name in '#'* | '') continue ;; esac
    theirs=$(awk -v name="$name" '$1 == name' "$WORK/qemu.out")
    ours=$(awk -v name="$name" '$1 == name' "$WORK/ours.out")
    if [ -n "$theirs" ] && [ "$theirs" = "$ours" ]; then
        pass "same-$name" "$(echo "$ours" | cut -d' ' -f2-4)"
    else
        fail "same-$name" "qemu: '$(echo "$theirs" | cut -c1-160)' ours: '$(echo "$ours" | cut -c1-160)'"
    fi
done <"$stream"
