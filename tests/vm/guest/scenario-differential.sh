# Differential: the same request stream (differential.stream, failing
# requests and protocol violations included) sent by pr-replay to Debian's
# qemu-pr-helper and to our pr-helper, each time from the same reservation
# state on the same LUN, must give identical reply bytes, line by line.
# The PR generation is compared relative to the first one in each run (it
# only ever grows, so absolute values differ between runs).
# Then differential-deliberate.stream: requests where our daemon answers
# differently on purpose; ours must give the reply in the daemon's table,
# the reference's reply is reported.
. /vm/lib.sh

stream=/vm/differential.stream
if ! have_binary pr-replay; then
    fail binaries "pr-replay is missing from the initramfs (cargo build --release -p vm-tests)"
    exit 0
fi

# replay WHICH OUTPUT [STREAM]: one run of a stream through one helper.
replay() {
    reset_reservations
    start_helper "$1" "$WORK/$1.sock" || return 1
    pr-replay "$WORK/$1.sock" "${3:-$stream}" >"$2" 2>"$2.err"
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

# --- deliberate differences -------------------------------------------------

# A partition on the LUN for the partition row: an MBR with one entry
# (type 0x83, LBA 2048, 8192 sectors), then the kernel re-reads it.
make_partition() {
    [ -e /dev/sda1 ] && return 0
    dd if=/dev/zero of=/dev/sda bs=512 count=1 2>/dev/null
    printf '\000\000\000\000\203\000\000\000\000\010\000\000\000\040\000\000' |
        dd of=/dev/sda bs=1 seek=446 conv=notrunc 2>/dev/null
    printf '\125\252' | dd of=/dev/sda bs=1 seek=510 conv=notrunc 2>/dev/null
    blockdev --rereadpt /dev/sda
    local tries=0
    while [ ! -e /dev/sda1 ] && [ "$tries" -lt 100 ]; do
        tries=$((tries + 1))
        sleep 0.1
    done
    [ -e /dev/sda1 ]
}

if ! make_partition; then
    fail partition "/dev/sda1 did not appear after writing a partition table"
    exit 0
fi
deliberate=/vm/differential-deliberate.stream
replay qemu "$WORK/qemu-deliberate.out" "$deliberate" ||
    fail replay-qemu-deliberate "$(tr '\n' ' ' <"$WORK/qemu-deliberate.out.err")"
qemu_keys=$(sg_keys_only /dev/sda)
replay ours "$WORK/ours-deliberate.out" "$deliberate" ||
    fail replay-ours-deliberate "$(tr '\n' ' ' <"$WORK/ours-deliberate.out.err")"
ours_keys=$(sg_keys_only /dev/sda)

# reply_prefix FILE NAME: status, size and the first 14 sense bytes.
reply_prefix() {
    awk -v name="$2" '$1 == name { print $3, $4, substr($5, 1, 28) }' "$1"
}
check_condition_with() { # SENSE_KEY ASC ASCQ -> expected prefix
    echo "00000002 00000000 7000${1}000000000a00000000${2}${3}"
}
while read -r name expected; do
    expect_eq "ours-$name" "$expected" "$(reply_prefix "$WORK/ours-deliberate.out" "$name")"
    info "qemu-$name" "$(reply_prefix "$WORK/qemu-deliberate.out" "$name")"
done <<TABLE
register-cdb-byte-5 $(check_condition_with 05 24 00)
register-partition $(check_condition_with 0b 00 06)
TABLE
# Neither refused request may have reached the device through ours.
expect_eq ours-device-untouched "keys=" "$ours_keys"
info qemu-device-after "$qemu_keys"
