# The multipath backend when hosts fence each other: B preempts A (a path of
# A that fails and returns stays unregistered, A sees the real state, A comes
# back with REGISTER AND IGNORE), QEMU's migrate-pr sequence from A to B, and
# a map with every path failed.
. /vm/lib.sh
. /vm/mpath-lib.sh

drain_unit_attentions
make_host_maps || exit 0
start_our_helper_for_prtool || { remove_maps mpatha mpathb; exit 0; }

expect_status a-registers 0 prt register --sa-key 0xa1 "$MAP_A"
expect_status a-reserves-we-ro 0 prt reserve --key 0xa1 --type we-ro "$MAP_A"
expect_status b-registers 0 prt register --sa-key 0xb1 "$MAP_B"
expect_path_regs b-on-both-paths "sdb=key=0xb1 sdd=key=0xb1"

# B preempts A.
expect_status b-preempts-a 0 prt preempt --key 0xb1 --sa-key 0xa1 --type we-ro "$MAP_B"
expect_path_regs a-fenced "sda=none sdc=none"
expect_eq b-holds "key=0xb1 type=Write_Exclusive,_registrants_only" "$(sg_reservation /dev/sdb)"
expect_eq write-from-fenced-a-conflicts 24 "$(sg_write /dev/sdc)"

# A path of A fails and returns: it must stay unregistered.
dmsetup message mpatha 0 "fail_path $SDA"
dmsetup message mpatha 0 "reinstate_path $SDA"
sleep 2
expect_path_regs returned-path-stays-fenced "sda=none sdc=none"
grep -q 'no longer holds the map' "$PR_SOCKET.log" &&
    pass helper-saw-the-key-gone "$(grep 'no longer holds' "$PR_SOCKET.log" | head -n 1 | cut -c1-200)" ||
    fail helper-saw-the-key-gone "$(tail -n 5 "$PR_SOCKET.log" | tr '\n' ' ' | cut -c1-300)"
expect_eq write-on-returned-path-conflicts 24 "$(sg_write /dev/sda)"

# A's commands through the map see the real state (the unit attentions of the
# preemption are consumed by the helper).
expect_status a-reads-keys 0 prt read-keys "$MAP_A"
out_has a-sees-only-b '0xb1'
out_lacks a-sees-no-own-key '0xa1'
expect_conflict a-register-with-old-key-conflicts prt register --key 0xa1 --sa-key 0xa2 "$MAP_A"
expect_path_regs still-fenced-after-register "sda=none sdc=none"
expect_status a-register-ignore 0 prt register-ignore --sa-key 0xa3 "$MAP_A"
expect_path_regs a-back-on-every-path "sda=key=0xa3 sdc=key=0xa3"

# QEMU 11's migrate-pr from A (source) to B (destination), key K = 0x4b:
# on the destination, REGISTER (0, K), then PREEMPT (K, K) with the type.
expect_status reset-via-b 0 prt clear --key 0xb1 "$MAP_B"
drain_unit_attentions
expect_status source-registers 0 prt register --sa-key 0x4b "$MAP_A"
expect_status source-reserves 0 prt reserve --key 0x4b --type we-ro "$MAP_A"
expect_status destination-registers 0 prt register --key 0 --sa-key 0x4b "$MAP_B"
expect_status destination-preempts-own-key 0 prt preempt --key 0x4b --sa-key 0x4b --type we-ro "$MAP_B"
expect_path_regs every-path-of-b-registered "sdb=key=0x4b sdd=key=0x4b"
expect_path_regs source-paths-gone "sda=none sdc=none"
holder=$(sg_full_status /dev/sdd | sed -n 's/.* sas=\(5001405000000a0[24]\) holder=yes/\1/p')
case $holder in
    5001405000000a02 | 5001405000000a04) pass b-holds-the-reservation "holder $holder" ;;
    *) fail b-holds-the-reservation "holder '$holder': $(sg_full_status /dev/sdd | tr '\n' ';')" ;;
esac
expect_eq write-b-path-1 0 "$(sg_write /dev/sdb)"
expect_eq write-b-path-2 0 "$(sg_write /dev/sdd)"

# Every path of B failed: a prompt CHECK CONDITION.
dmsetup message mpathb 0 "fail_path $SDB"
dmsetup message mpathb 0 "fail_path $SDD"
start=$(now_ms)
expect_status no-path-read-keys 4 prt read-keys "$MAP_B"
out_has no-path-sense 'communication failure'
expect_status no-path-register 4 prt register --key 0x4b --sa-key 0x4c "$MAP_B"
info no-path-answers-ms "$(($(now_ms) - start)) for two commands"
expect_path_regs nothing-changed-without-paths "sdb=key=0x4b sdd=key=0x4b"
dmsetup message mpathb 0 "reinstate_path $SDB"
dmsetup message mpathb 0 "reinstate_path $SDD"

stop_helper "$OUR_HELPER_PID"
remove_maps mpatha mpathb
