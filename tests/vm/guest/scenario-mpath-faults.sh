# The multipath backend's fencing when paths fail (issue 18), on LIO with both
# hosts' maps: a path flap after QEMU's migrate-pr moved the guest away,
# RELEASE after the holder's path failed, and a REGISTER with one path failing
# in the middle of the fan-out. (Races and restarts: scenario-mpath-races.sh.)
. /vm/lib.sh
. /vm/mpath-lib.sh

start_fault_scenario || exit 0

# 1. Migration away, then a path of the source flaps: the source must stay out.
expect_status migrate-source-registers 0 prt register --sa-key 0x4b "$MAP_A"
expect_status migrate-source-reserves 0 prt reserve --key 0x4b --type we-ro "$MAP_A"
expect_status migrate-destination-registers 0 prt register --key 0 --sa-key 0x4b "$MAP_B"
expect_status migrate-destination-preempts 0 prt preempt --key 0x4b --sa-key 0x4b --type we-ro "$MAP_B"
expect_path_regs migrate-source-gone "sda=none sdc=none sdb=key=0x4b sdd=key=0x4b"
dmsetup message mpatha 0 "fail_path $SDC"
dmsetup message mpatha 0 "reinstate_path $SDC"
sleep 1
expect_path_regs migrate-flap-source-stays-out "sda=none sdc=none"
expect_eq migrate-flap-two-registrations-with-k 2 "$(keys_with 0x4b)"
# The source's next command (its QEMU is gone; a straggler) changes nothing.
expect_status migrate-source-reads-keys 0 prt read-keys "$MAP_A"
expect_path_regs migrate-source-still-out "sda=none sdc=none"
expect_status migrate-reset 0 prt clear --key 0x4b "$MAP_B"
drain_unit_attentions

# 2. RELEASE after the holder's path failed: the reservation is really gone.
expect_status release-registers 0 prt register --sa-key 0xa1 "$MAP_A"
expect_status release-reserves 0 prt reserve --key 0xa1 --type we-ro "$MAP_A"
holder=$(sg_full_status /dev/sdc | sed -n 's/.* sas=\(5001405000000a0[13]\) holder=yes/\1/p')
info release-holder "$holder"
case $holder in
    5001405000000a01) HOLDER_PATH=$SDA OTHER=/dev/sdc ;;
    *) HOLDER_PATH=$SDC OTHER=/dev/sda ;;
esac
dmsetup message mpatha 0 "fail_path $HOLDER_PATH"
expect_status release-after-holder-path-failed 0 prt release --key 0xa1 --type we-ro "$MAP_A"
expect_eq release-reservation-gone "none" "$(sg_reservation "$OTHER")"
grep -q 'taking the reservation over' "$PR_SOCKET.log" &&
    pass release-took-over "$(grep 'taking the reservation over' "$PR_SOCKET.log" | head -n 1 | cut -c1-220)" ||
    fail release-took-over "$(tail -n 5 "$PR_SOCKET.log" | tr '\n' ' ' | cut -c1-300)"
dmsetup message mpatha 0 "reinstate_path $HOLDER_PATH"
took=$(wait_for_path_reg /dev/sda key=0xa1 5) && took=$(wait_for_path_reg /dev/sdc key=0xa1 5)
if [ "$took" != timeout ]; then
    pass release-paths-registered-again "sda=$(path_reg /dev/sda) sdc=$(path_reg /dev/sdc)"
else
    fail release-paths-registered-again "sda=$(path_reg /dev/sda) sdc=$(path_reg /dev/sdc) after 5 s"
fi

# 3. REGISTER with one path failing in the middle of the fan-out: sdc's SCSI
# device is offline (dm-multipath still counts the path usable), so the
# command never reaches LIO through it. The guest gets the failure; sda keeps
# the new key and sdc is owed it, brought in line once it works again.
echo offline >/sys/block/sdc/device/state
expect_status register-one-path-offline-fails 4 prt register --key 0xa1 --sa-key 0xa2 "$MAP_A"
# (sdc's own registration read through sda: sdc itself answers nothing now.)
expect_eq register-offline-path-untouched "sda=key=0xa2 sdc=key=0xa1" \
    "sda=$(path_reg /dev/sda) sdc=$(sg_full_status /dev/sda | grep ' sas=5001405000000a03 ' | sed 's/^\(key=[^ ]*\) .*/\1/')"
echo running >/sys/block/sdc/device/state
expect_status register-after-path-back 0 prt read-keys "$MAP_A"
expect_path_regs register-owed-path-brought-in-line "sda=key=0xa2 sdc=key=0xa2"
expect_eq register-old-key-gone "0" "$(keys_with 0xa1)"
expect_status register-reset 0 prt clear --key 0xa2 "$MAP_A"
drain_unit_attentions

stop_helper "$OUR_HELPER_PID"
remove_maps mpatha mpathb
info scenario-ms "$(($(now_ms) - scenario_start))"
