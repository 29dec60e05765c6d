# Every PR command through `prtool --direct` (pr-manager's direct mode, which
# picks the NVMe reservation path on a namespace) on the nvmet namespace of
# setup-nvmet.sh, host A on /dev/nvme0n1 and host B on /dev/nvme1n1. After
# each step the target's own view (nvme-cli's Reservation Report, nvme_state)
# and the other host's view (prtool on the other namespace node) must agree
# with what prtool did; writes check that the reservation is enforced.
. /vm/lib.sh
. /vm/nvme-lib.sh

nvme_reset
a=$NVME_A b=$NVME_B
d() { prtool --direct "$@"; }

expect_status read-keys-empty 0 d read-keys "$a"
out_has read-keys-none 'NO registered reservation keys'
expect_eq target-empty "rtype=0 regs=" "$(nvme_view "$a")"

# REGISTER from A: the target lists host A's ID with the key; B sees it.
expect_status register-a 0 d register --sa-key 0xa1 "$a"
expect_eq target-a-registered "rtype=0 regs=a01:0xa1:-" "$(nvme_view "$b")"
expect_status read-keys-from-b 0 d read-keys "$b"
out_has b-sees-a1 '^ +0xa1$'
gen=$(nvme_state "$a" | sed 's/gen=\([0-9]*\).*/\1/')
out_has generation-matches-target "PR generation=$(printf '0x%x' "$gen")"

# RESERVE Write Exclusive - Registrants Only (SCSI 5 = NVMe 3) from A.
expect_status reserve-we-ro-a 0 d reserve --key 0xa1 --type we-ro "$a"
expect_eq target-a-holds-we-ro "rtype=3 regs=a01:0xa1:holder" "$(nvme_view "$b")"
expect_eq write-a-succeeds 0 "$(nvme_write "$a")"
expect_eq write-b-unregistered-conflicts conflict "$(nvme_write "$b")"

# B registers: a registrant may write under WE-RO.
expect_status register-b 0 d register --sa-key 0xb1 "$b"
expect_eq target-both-registered "rtype=3 regs=a01:0xa1:holder,a02:0xb1:-" "$(nvme_view "$a")"
expect_eq write-b-registrant-succeeds 0 "$(nvme_write "$b")"

# Every PR IN from B, against the target.
expect_status read-reservation-from-b 0 d read-reservation "$b"
out_has reservation-key 'Key=0xa1'
out_has reservation-type 'Write Exclusive.{0,3}Registrants Only'
expect_status read-full-status-from-b 0 d read-full-status "$b"
full=$(tr '\n' ' ' <"$WORK/out")
case $full in
    *"Key=0xa1"*"<< Reservation holder >>"*"$NVME_HOSTID_A"*"Key=0xb1"*"not reservation holder"*"$NVME_HOSTID_B"*)
        pass full-status-matches-target "holder A ($NVME_HOSTID_A), B registered ($NVME_HOSTID_B)" ;;
    *) fail full-status-matches-target "$(echo "$full" | cut -c1-400)" ;;
esac
expect_status report-capabilities 0 d report-capabilities "$b"
# nvmet's RESCAP (nvme id-ns) is 0xfe: every type, so every bit of the mask.
rescap=$(nvme id-ns "$a" -o json 2>/dev/null | tr -d ' ,"' | sed -n 's/^rescap:\([0-9]*\)$/\1/p')
info rescap "$rescap"
expect_eq type-mask-from-rescap "mask=111111" \
    "$(capability_facts <"$WORK/out" | sed 's/.*\(mask=[01]*\)$/\1/')"
expect_status json-read-keys 0 d --json read-keys "$b"
out_has json-is-direct '"via": "direct"'

# Conflicts: B's RESERVE while A holds it; A's REGISTER with a wrong key.
expect_conflict reserve-b-conflicts d reserve --key 0xb1 --type we "$b"
expect_conflict register-wrong-key-conflicts d register --key 0xdead --sa-key 0xa9 "$a"
expect_eq target-unchanged-by-conflicts "rtype=3 regs=a01:0xa1:holder,a02:0xb1:-" "$(nvme_view "$a")"

# PREEMPT: B takes the reservation (Write Exclusive) and removes A.
expect_status preempt-a-by-b 0 d preempt --key 0xb1 --sa-key 0xa1 --type we "$b"
expect_eq target-b-holds-we "rtype=1 regs=a02:0xb1:holder" "$(nvme_view "$a")"
expect_status read-keys-from-a 0 d read-keys "$a"
out_lacks a-sees-itself-gone '0xa1'
expect_eq write-a-preempted-conflicts conflict "$(nvme_write "$a")"
expect_eq write-b-holder-succeeds 0 "$(nvme_write "$b")"
expect_conflict release-by-unregistered-a-conflicts d release --key 0xa1 --type we "$a"

# PREEMPT AND ABORT: A comes back, B preempts it with abort.
expect_status register-ignore-a 0 d register-ignore --sa-key 0xa2 "$a"
expect_status preempt-abort-a-by-b 0 d preempt-abort --key 0xb1 --sa-key 0xa2 --type we "$b"
expect_eq target-after-preempt-abort "rtype=1 regs=a02:0xb1:holder" "$(nvme_view "$a")"

# RELEASE by the holder: the reservation goes, the key stays.
expect_status release-b 0 d release --key 0xb1 --type we "$b"
expect_eq target-released "rtype=0 regs=a02:0xb1:-" "$(nvme_view "$a")"
expect_eq write-a-after-release 0 "$(nvme_write "$a")"

# CLEAR from B removes A's registration too.
expect_status register-a-again 0 d register --sa-key 0xa3 "$a"
expect_status reserve-ea-a 0 d reserve --key 0xa3 --type ea "$a"
expect_eq target-a-holds-ea "rtype=2 regs=a02:0xb1:-,a01:0xa3:holder" "$(nvme_view "$b")"
expect_status clear-by-b 0 d clear --key 0xb1 "$b"
expect_eq target-cleared "rtype=0 regs=" "$(nvme_view "$a")"

# Unregistering (REGISTER with service action key 0).
expect_status register-a-to-unregister 0 d register --sa-key 0xa4 "$a"
expect_status unregister-a 0 d register --key 0xa4 --sa-key 0 "$a"
expect_eq target-a-unregistered "rtype=0 regs=" "$(nvme_view "$b")"
nvme_reset
