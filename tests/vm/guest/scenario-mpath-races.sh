# The multipath backend's fencing against the other host and helper restarts
# (issue 18): the other host's PREEMPT racing a returning path (looped), a
# helper restart followed by a path flap (both outcomes), and QEMU's migrate-pr
# on the same host through the SG_IO backend and through a map.
. /vm/lib.sh
. /vm/mpath-lib.sh

start_fault_scenario || exit 0

# 1. The other host's PREEMPT between a path's return and its re-registration
# (as close as the VM allows: the reinstate and the preemption at once, looped;
# which one wins varies, the outcome must not).
expect_status race-b-registers 0 prt register --sa-key 0xb1 "$MAP_B"
race_failures=0
for round in 1 2 3 4; do
    prt register-ignore --sa-key 0xa1 "$MAP_A" >/dev/null 2>&1
    dmsetup message mpatha 0 "fail_path $SDA"
    prt read-keys "$MAP_A" >/dev/null 2>&1
    # While away, sda lost its registration (as if it missed a change): on its
    # return the helper registers it, unless the preemption got there first.
    sg_persist -n --out --register --param-rk=0xa1 --param-sark=0 /dev/sda >/dev/null 2>&1
    dmsetup message mpatha 0 "reinstate_path $SDA" &
    reinstating=$!
    prt preempt --key 0xb1 --sa-key 0xa1 --type we-ro "$MAP_B" >/dev/null 2>&1
    wait "$reinstating"
    sleep 1
    got="sda=$(path_reg /dev/sda) sdc=$(path_reg /dev/sdc)"
    if [ "$got" != "sda=none sdc=none" ]; then
        race_failures=$((race_failures + 1))
        info race-round-$round "$got"
    fi
done
expect_eq race-preempted-host-stays-out-4-rounds 0 "$race_failures"
expect_status race-reset 0 prt clear --key 0xb1 "$MAP_B"
drain_unit_attentions

# 2. Helper restart, then a path flap. The new helper learns the key from READ
# FULL STATUS (our nexuses only) at its first command.
expect_status restart-registers 0 prt register --sa-key 0xa1 "$MAP_A"
dmsetup message mpatha 0 "fail_path $SDA"
expect_status restart-key-changes-while-sda-failed 0 prt register --key 0xa1 --sa-key 0xa2 "$MAP_A"
restart_helper || { remove_maps mpatha mpathb; exit 0; }
expect_status restart-first-command 0 prt read-keys "$MAP_A"
dmsetup message mpatha 0 "reinstate_path $SDA"
took=$(wait_for_path_reg /dev/sda key=0xa2 5)
if [ "$took" != timeout ]; then
    pass restart-flap-path-back-registered "after ${took} ms: sda=$(path_reg /dev/sda) sdc=$(path_reg /dev/sdc)"
else
    fail restart-flap-path-back-registered "sda=$(path_reg /dev/sda) sdc=$(path_reg /dev/sdc) after 5 s"
fi
grep -q 'learned the map.s key from the device' "$PR_SOCKET.log" &&
    pass restart-learned-the-key "$(grep 'learned the map' "$PR_SOCKET.log" | head -n 1 | cut -c1-200)" ||
    fail restart-learned-the-key "$(tail -n 5 "$PR_SOCKET.log" | tr '\n' ' ' | cut -c1-300)"
# The same, but the other host preempts the key while the path is away.
expect_status restart2-b-registers 0 prt register-ignore --sa-key 0xb1 "$MAP_B"
dmsetup message mpatha 0 "fail_path $SDA"
expect_status restart2-key-changes 0 prt register --key 0xa2 --sa-key 0xa3 "$MAP_A"
restart_helper || { remove_maps mpatha mpathb; exit 0; }
expect_status restart2-first-command 0 prt read-keys "$MAP_A"
expect_status restart2-b-preempts 0 prt preempt --key 0xb1 --sa-key 0xa3 --type we-ro "$MAP_B"
dmsetup message mpatha 0 "reinstate_path $SDA"
sleep 1
expect_path_regs restart2-flap-path-stays-out "sda=none sdc=none"
expect_status restart2-reset 0 prt clear --key 0xb1 "$MAP_B"
drain_unit_attentions

# 3. QEMU's migrate-pr on the same host (cpr-transfer live update): REGISTER
# (0, K) where this nexus holds K already, then PREEMPT (K, K). LIO answers
# the REGISTER with RESERVATION CONFLICT; the helper answers GOOD (a deliberate
# difference from qemu-pr-helper). First through the SG_IO backend (/dev/sda).
expect_status same-host-sgio-registers 0 prt register --sa-key 0xc1 /dev/sda
expect_status same-host-sgio-reserves 0 prt reserve --key 0xc1 --type we-ro /dev/sda
sg_persist -n --out --register --param-sark=0xc1 /dev/sda >/dev/null 2>&1
expect_eq same-host-lio-itself-conflicts 24 "$?"
expect_status same-host-sgio-register-0-k 0 prt register --key 0 --sa-key 0xc1 /dev/sda
expect_status same-host-sgio-preempt-k-k 0 prt preempt --key 0xc1 --sa-key 0xc1 --type we-ro /dev/sda
expect_eq same-host-sgio-still-holds "key=0xc1 type=Write_Exclusive,_registrants_only" "$(sg_reservation /dev/sda)"
expect_conflict same-host-sgio-other-key-conflicts prt register --key 0 --sa-key 0xc2 /dev/sda
expect_path_regs same-host-sgio-only-sda "sda=key=0xc1 sdb=none sdc=none sdd=none"
expect_status same-host-sgio-reset 0 prt clear --key 0xc1 /dev/sda
drain_unit_attentions
# Then through host A's map.
expect_status same-host-map-registers 0 prt register --sa-key 0xc3 "$MAP_A"
expect_status same-host-map-reserves 0 prt reserve --key 0xc3 --type we-ro "$MAP_A"
expect_status same-host-map-register-0-k 0 prt register --key 0 --sa-key 0xc3 "$MAP_A"
expect_status same-host-map-preempt-k-k 0 prt preempt --key 0xc3 --sa-key 0xc3 --type we-ro "$MAP_A"
expect_path_regs same-host-map-every-path "sda=key=0xc3 sdc=key=0xc3 sdb=none sdd=none"
expect_eq same-host-map-holds "key=0xc3 type=Write_Exclusive,_registrants_only" "$(sg_reservation /dev/sdb)"
expect_eq same-host-map-write-sda 0 "$(sg_write /dev/sda)"
expect_eq same-host-map-write-sdc 0 "$(sg_write /dev/sdc)"
expect_status same-host-map-reset 0 prt clear --key 0xc3 "$MAP_A"

stop_helper "$OUR_HELPER_PID"
remove_maps mpatha mpathb
info scenario-ms "$(($(now_ms) - scenario_start))"
