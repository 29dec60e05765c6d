# Two initiators on one LUN: A through /dev/sda, B through /dev/sdb, both
# through prtool -> pr-helper. B's reserve while A holds the reservation is
# a RESERVATION CONFLICT; B preempts A; A's registration is gone (and A's
# next command reports the unit attention); B moves its reservation to A's
# I_T nexus with REGISTER AND MOVE, naming A by the SAS transport ID and
# relative target port that READ FULL STATUS shows. Every step is
# cross-checked with sg_persist on the devices.
. /vm/lib.sh

a=/dev/sda b=/dev/sdb
key_a=0xaa key_b=0xbb key_moved=0xcc

start_our_helper_for_prtool || exit 0

expect_status register-a 0 prt register --sa-key "$key_a" "$a"
expect_status register-b 0 prt register --sa-key "$key_b" "$b"
expect_eq sg-both-registered "keys=$key_a,$key_b" "$(sg_keys_only "$a")"
expect_status reserve-a 0 prt reserve --key "$key_a" --type we "$a"
expect_eq sg-a-holds "key=$key_a type=Write_Exclusive" "$(sg_reservation "$b")"

# Where A is, as the device reports it: relative target port and SAS
# address of the initiator (tcm_loop initiators are SAS-addressed NAA WWNs).
a_entry=$(sg_full_status "$a" | grep "^key=$key_a ")
a_port=$(echo "$a_entry" | sed -n 's/.* port=\([^ ]*\).*/\1/p')
a_sas=$(echo "$a_entry" | sed -n 's/.* sas=\([^ ]*\).*/\1/p')
expect_eq sg-full-status-a-initiator 5001405000000a01 "$a_sas"
expect_status read-full-status 0 prt read-full-status "$b"
out_has read-full-status-shows-a "SAS address: 0x$a_sas"
out_has read-full-status-shows-b "SAS address: 0x5001405000000a02"
expect_same_as_sg read-full-status-matches-sg_persist read-full-status --read-full-status "$b"

expect_conflict reserve-b-conflicts prt reserve --key "$key_b" --type we "$b"
sg_persist -n --out --reserve --param-rk="$key_b" --prout-type=1 "$b" >/dev/null 2>&1
expect_eq sg-reserve-b-conflicts "24" "$?"

expect_status preempt-a-by-b 0 prt preempt --key "$key_b" --sa-key "$key_a" --type we "$b"
expect_eq sg-b-holds "key=$key_b type=Write_Exclusive" "$(sg_reservation "$b")"
expect_eq sg-a-unregistered "keys=$key_b" "$(sg_keys_only "$b")"
expect_status read-keys-via-b 0 prt read-keys "$b"
out_lacks read-keys-a-gone "$key_a"

# A's first command after the preemption reports the unit attention.
expect_status a-sees-unit-attention 4 prt read-keys "$a"
out_has unit-attention-in-words "UNIT ATTENTION.*REGISTRATIONS PREEMPTED"
expect_conflict a-unregistered-release-conflicts prt release --key "$key_a" --type we "$a"

expect_status register-and-move-to-a 0 prt register-move --key "$key_b" --sa-key "$key_moved" --type we \
    --transport-id "sas:$a_sas" --relative-target-port "$((a_port))" "$b"
expect_eq sg-moved-reservation "key=$key_moved type=Write_Exclusive" "$(sg_reservation "$a")"
holder=$(sg_full_status "$a" | grep 'holder=yes')
expect_eq sg-holder-is-a "key=$key_moved port=$a_port sas=$a_sas holder=yes" "$holder"
expect_eq sg-keys-after-move "keys=$key_b,$key_moved" "$(sg_keys_only "$a")"
expect_same_as_sg read-reservation-after-move read-reservation --read-reservation "$a"

stop_helper "$OUR_HELPER_PID"
