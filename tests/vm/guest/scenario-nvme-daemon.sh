# Our daemon on NVMe namespace descriptors: SCSI PR commands from a client
# (prtool --socket, and pr-replay's raw protocol stream) answered through the
# NVMe backend, which translates them onto NVMe reservations. Every step is
# checked against the target (nvme-cli's Reservation Report) and the other
# host's view; PR IN answers must be the same text as prtool --direct's.
. /vm/lib.sh
. /vm/nvme-lib.sh

nvme_reset
a=$NVME_A b=$NVME_B
start_our_helper_for_prtool || exit 0

# same_as_direct CHECK COMMAND DEV: prtool through the daemon and prtool
# --direct print the same thing.
same_as_direct() {
    prt "$2" "$3" >"$WORK/socket.out" 2>&1
    prtool --direct "$2" "$3" >"$WORK/direct.out" 2>&1
    if cmp -s "$WORK/socket.out" "$WORK/direct.out" && [ -s "$WORK/socket.out" ]; then
        pass "$1" "$(tr '\n' ' ' <"$WORK/socket.out" | cut -c1-200)"
    else
        fail "$1" "socket: $(tr '\n' ' ' <"$WORK/socket.out" | cut -c1-200) direct: $(tr '\n' ' ' <"$WORK/direct.out" | cut -c1-200)"
    fi
}

expect_status register-a 0 prt register --sa-key 0xa1 "$a"
expect_status register-b 0 prt register --sa-key 0xb1 "$b"
expect_eq target-both-registered "rtype=0 regs=a01:0xa1:-,a02:0xb1:-" "$(nvme_view "$a")"
expect_status reserve-we-ro-a 0 prt reserve --key 0xa1 --type we-ro "$a"
expect_eq target-a-holds-we-ro "rtype=3 regs=a01:0xa1:holder,a02:0xb1:-" "$(nvme_view "$b")"
for command in read-keys read-reservation report-capabilities read-full-status; do
    same_as_direct "$command-same-as-direct" "$command" "$b"
done
expect_conflict reserve-b-conflicts prt reserve --key 0xb1 --type we "$b"
expect_status preempt-abort-a-by-b 0 prt preempt-abort --key 0xb1 --sa-key 0xa1 --type ea "$b"
expect_eq target-b-holds-ea "rtype=2 regs=a02:0xb1:holder" "$(nvme_view "$a")"
expect_eq write-a-preempted-conflicts conflict "$(nvme_write "$a")"
expect_status release-b 0 prt release --key 0xb1 --type ea "$b"
expect_eq target-released "rtype=0 regs=a02:0xb1:-" "$(nvme_view "$a")"
expect_status register-ignore-a 0 prt register-ignore --sa-key 0xa7 "$a"
expect_status clear-a 0 prt clear --key 0xa7 "$a"
expect_eq target-cleared "rtype=0 regs=" "$(nvme_view "$b")"
if grep -q 'nvme\|NVMe' "$PR_SOCKET.log" && grep -qi 'panic' "$PR_SOCKET.log"; then
    fail helper-log "$(tail -n 3 "$PR_SOCKET.log" | tr '\n' ' ')"
else
    pass helper-log "no panic"
fi
stop_helper "$OUR_HELPER_PID"

# The raw protocol, as QEMU speaks it: pr-replay's stream with NVMe
# descriptors, read-only ones included.
nvme_reset
start_helper ours "$WORK/replay.sock" || { fail start-pr-helper "$(cat "$WORK/replay.sock.log")"; exit 0; }
pr-replay "$WORK/replay.sock" /vm/nvme-daemon.stream >"$WORK/replay.out" 2>"$WORK/replay.err"
expect_eq replay-ran 0 "$?"
stop_helper "$HELPER_PID"
# field NAME N: the Nth word of NAME's reply line (3 status, 4 size, 5 sense).
field() { awk -v name="$1" -v n="$2" '$1 == name { print $n }' "$WORK/replay.out"; }
# sense_of NAME: key/ASC/ASCQ of the fixed-format sense.
sense_of() { field "$1" 5 | sed 's/^\(....\)\(..\)\(.\{18\}\)\(..\)\(..\).*/\2\/\4\/\5/'; }
expect_eq replay-register-good 00000000 "$(field register-a 3)"
expect_eq replay-pr-out-ro-descriptor-refused "00000002 05/20/00" "$(field reserve-ro-descriptor 3) $(sense_of reserve-ro-descriptor)"
expect_eq replay-pr-in-ro-descriptor-good 00000000 "$(field keys-ro-descriptor 3)"
expect_eq replay-reservation-ro-good 00000000 "$(field reservation-ro-a 3)"
expect_eq replay-conflict 00000018 "$(field reserve-b-conflict 3)"
expect_eq replay-alloc-12-size 0000000c "$(field keys-alloc-12 4)"
expect_eq replay-full-status-good 00000000 "$(field full-status 3)"
expect_eq replay-capabilities-good 00000000 "$(field capabilities 3)"
expect_eq replay-clear-good 00000000 "$(field clear-b 3)"
expect_eq target-after-replay "rtype=0 regs=" "$(nvme_view "$a")"
info replay "$(tr '\n' ';' <"$WORK/replay.out" | cut -c1-600)"

# For contrast: Debian's qemu-pr-helper has only SG_IO, which an NVMe
# namespace does not have.
nvme_reset
if start_helper qemu "$WORK/qemu.sock"; then
    pr-replay "$WORK/qemu.sock" /vm/nvme-daemon.stream >"$WORK/qemu.out" 2>&1
    stop_helper "$HELPER_PID"
    info qemu-pr-helper "register-a: $(awk '$1 == "register-a" { print $3, substr($5, 1, 40) }' "$WORK/qemu.out")"
fi
nvme_reset
