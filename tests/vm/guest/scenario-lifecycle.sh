# Lifecycle on the block device /dev/sda (initiator A): read keys (none),
# register, read keys (the key, generation advanced), reserve WE-RO, read
# reservation, report capabilities, read full status, release, clear; all
# through prtool -> pr-helper, each result cross-checked with sg_persist.
. /vm/lib.sh
. /vm/lifecycle-steps.sh

start_our_helper_for_prtool || exit 0
lifecycle_steps /dev/sda /dev/sg0 5001405000000a01
stop_helper "$OUR_HELPER_PID"
