# Two controllers of one host (host A's /dev/nvme0n1 and /dev/nvme2n1, the same
# host ID): an NVMe registration belongs to the host, so a command through
# either controller acts on the one registration, as a native multipath head's
# commands do whichever path the kernel picks. Through prtool --direct and the
# daemon, checked against nvme-cli's Reservation Report.
. /vm/lib.sh
. /vm/nvme-lib.sh

nvme_reset
a=$NVME_A a2=$NVME_A2 b=$NVME_B
d() { prtool --direct "$@"; }

expect_eq second-controller-same-host "$NVME_HOSTID_A" "$(cat /sys/class/nvme/nvme2/hostid 2>&1)"
expect_status register-via-first 0 d register --sa-key 0xa1 "$a"
expect_eq one-registrant-for-the-host "rtype=0 regs=a01:0xa1:-" "$(nvme_view "$a2")"
expect_status read-keys-via-second 0 d read-keys "$a2"
out_has second-sees-the-key '^ +0xa1$'
# REGISTER from the second controller with reservation key 0: the host is
# registered already, so SPC-4's answer is a conflict, not a second registrant.
expect_conflict register-again-via-second-conflicts d register --sa-key 0xa9 "$a2"
expect_status reserve-via-second 0 d reserve --key 0xa1 --type we "$a2"
expect_eq host-holds "rtype=1 regs=a01:0xa1:holder" "$(nvme_view "$b")"
expect_eq write-via-first-succeeds 0 "$(nvme_write "$a")"
expect_eq write-via-second-succeeds 0 "$(nvme_write "$a2")"
expect_eq write-from-b-conflicts conflict "$(nvme_write "$b")"
expect_status read-reservation-via-first 0 d read-reservation "$a"
out_has holder-key-via-first 'Key=0xa1'
expect_status release-via-first 0 d release --key 0xa1 --type we "$a"
expect_eq released "rtype=0 regs=a01:0xa1:-" "$(nvme_view "$a2")"

# The daemon on the second controller changes the host's key for both.
start_our_helper_for_prtool || exit 0
expect_status replace-key-via-daemon-second 0 prt register --key 0xa1 --sa-key 0xa2 "$a2"
expect_eq key-replaced-for-the-host "rtype=0 regs=a01:0xa2:-" "$(nvme_view "$a")"
expect_status read-keys-via-daemon-first 0 prt read-keys "$a"
out_has first-sees-new-key '^ +0xa2$'
stop_helper "$OUR_HELPER_PID"
nvme_reset
