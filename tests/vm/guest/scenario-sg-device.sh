# The same lifecycle through the sg character device /dev/sg0 (initiator A's
# path, as /dev/sda): prtool -> pr-helper -> /dev/sg0, cross-checked with
# sg_persist on /dev/sg0 and on /dev/sda.
. /vm/lib.sh
. /vm/lifecycle-steps.sh

# sg0 must be the generic node of sda (the same path, initiator A).
expect_eq sg0-is-sda sda "$(ls /sys/class/scsi_generic/sg0/device/block 2>&1)"

start_our_helper_for_prtool || exit 0
lifecycle_steps /dev/sg0 /dev/sda 5001405000000a01
stop_helper "$OUR_HELPER_PID"
