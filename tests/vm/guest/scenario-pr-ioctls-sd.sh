# The kernel's block-layer PR ioctls on sd (prtool --direct --direct-path
# pr-ioctls), on both kernels of the matrix, against SG_IO on the same LIO
# LUN: every PR OUT through the ioctls is checked with sg_persist; where the
# kernel has IOC_PR_READ_KEYS and IOC_PR_READ_RESERVATION (6.19 and later),
# prtool's JSON for READ KEYS and READ RESERVATION through the ioctls must be
# byte-identical to the same command through SG_IO (with no reservation held,
# but for the generation, which sd's ioctl does not return then). Before 6.19 those reads
# must fail with a clear answer, not GOOD.
. /vm/lib.sh

a=/dev/sda b=/dev/sdb
io() { prtool --direct --direct-path pr-ioctls "$@"; }
sg() { prtool --direct --direct-path sg-io "$@"; }

kver=$(cat /vm/kernel-version)
major=${kver%%.*} rest=${kver#*.} minor=${rest%%.*}
if [ "$major" -gt 6 ] || { [ "$major" = 6 ] && [ "$minor" -ge 19 ]; }; then
    read_ioctls=yes
else
    read_ioctls=no
fi
info read-ioctls "$read_ioctls (kernel $kver)"

# same_json CHECK COMMAND DEV: the JSON through both paths, byte for byte.
same_json() {
    io --json "$2" "$3" >"$WORK/io.json" 2>&1
    sg --json "$2" "$3" >"$WORK/sg.json" 2>&1
    if [ "$read_ioctls" = no ]; then
        if grep -q '"outcome": "success"' "$WORK/io.json"; then
            fail "$1" "GOOD through the PR ioctls on $kver, which has no read ioctls"
        else
            pass "$1" "refused before 6.19: $(grep -m1 -E '"(failure|name)"' "$WORK/io.json" | tr -s ' ')"
        fi
    elif cmp -s "$WORK/io.json" "$WORK/sg.json"; then
        pass "$1" "$(wc -c <"$WORK/io.json") bytes identical"
    elif grep -q '"reservation": null' "$WORK/io.json" &&
        [ "$(grep -v '"generation"' "$WORK/io.json")" = "$(grep -v '"generation"' "$WORK/sg.json")" ]; then
        # sd's IOC_PR_READ_RESERVATION leaves the generation at 0 when no
        # reservation is held (the ioctl has no field for it then): the one
        # fact SG_IO has and the ioctl does not.
        pass "$1" "identical but the generation (ioctl: none held, so 0; SG_IO: $(sed -n 's/.*"generation": \([0-9]*\).*/\1/p' "$WORK/sg.json"))"
    else
        fail "$1" "ioctls: $(tr -d '\n ' <"$WORK/io.json" | cut -c1-300) sg-io: $(tr -d '\n ' <"$WORK/sg.json" | cut -c1-300)"
    fi
}

same_json read-keys-empty read-keys "$a"
expect_status register-a 0 io register --sa-key 0xa1 "$a"
expect_status register-b 0 io register --sa-key 0xb1 "$b"
expect_eq sg-both-registered "keys=0xa1,0xb1" "$(sg_keys_only "$a")"
same_json read-keys-two read-keys "$b"
expect_status reserve-we-ro-a 0 io reserve --key 0xa1 --type we-ro "$a"
expect_eq sg-a-holds-we-ro "key=0xa1 type=Write_Exclusive,_registrants_only" "$(sg_reservation "$b")"
same_json read-reservation-we-ro read-reservation "$b"
expect_conflict reserve-b-conflicts io reserve --key 0xb1 --type we "$b"
expect_status release-a 0 io release --key 0xa1 --type we-ro "$a"
expect_eq sg-released none "$(sg_reservation "$b")"
same_json read-reservation-none read-reservation "$a"
expect_status reserve-we-a 0 io reserve --key 0xa1 --type we "$a"
expect_status preempt-a-by-b 0 io preempt --key 0xb1 --sa-key 0xa1 --type ea "$b"
expect_eq sg-b-holds-ea "key=0xb1 type=Exclusive_Access" "$(sg_reservation "$b")"
expect_eq sg-a-gone "keys=0xb1" "$(sg_keys_only "$b")"
drain_unit_attentions
same_json read-keys-after-preempt read-keys "$b"
expect_status register-a-again 0 io register --sa-key 0xa2 "$a"
expect_status clear-b 0 io clear --key 0xb1 "$b"
expect_eq sg-cleared "keys=" "$(sg_keys_only "$a")"
drain_unit_attentions
same_json read-keys-cleared read-keys "$a"
# READ FULL STATUS and REPORT CAPABILITIES have no ioctl: refused, not made up.
expect_status full-status-refused 4 io read-full-status "$a"
out_has full-status-invalid-field 'INVALID FIELD IN CDB|INVALID COMMAND OPERATION CODE'
reset_reservations
