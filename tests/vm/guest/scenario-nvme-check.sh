# `prtool check` on the nvmet namespace of setup-nvmet.sh (host A on
# /dev/nvme0n1, host B on /dev/nvme1n1), read through blk-pr's NVMe
# reservation commands and through our helper's NVMe backend: a healthy
# namespace, a foreign host's reservation, a stale key of this host, and the
# --write-test round trip (through the helper and with --direct), each checked
# against the target's own view, nvme-cli's Reservation Report, before and after.
. /vm/lib.sh
. /vm/nvme-lib.sh

nvme_reset
a=$NVME_A b=$NVME_B
start_our_helper_for_prtool || exit 0

# check_ns CHECK EXIT [OPTIONS...]: prtool check through the helper on host
# A's namespace; the output stays in $WORK/out.
check_ns() {
    local name=$1 want=$2
    shift 2
    expect_status "$name" "$want" prt check "$@" "$a"
}

# report_json DEV: the Reservation Report as nvme-cli prints it in JSON, but
# its generation line.
report_json() {
    nvme resv-report --eds -o json "$1" 2>&1 | grep -v '"gen"'
}

# A guest of host A: a process holding the namespace open.
sleep 600 <"$a" &
GUEST_PID=$!

# 1. Healthy: host A registered and holding Write Exclusive - Registrants Only.
expect_status register-a 0 prt register --sa-key 0xa1 "$a"
expect_status reserve-a 0 prt reserve --key 0xa1 --type we-ro "$a"
expect_eq target-a-holds "rtype=3 regs=a01:0xa1:holder" "$(nvme_view "$a")"
check_ns healthy-is-ready 0
show healthy-output
out_has healthy-verdict "^$a: READY for cluster reservations"
out_has healthy-namespace "nvme-namespace: $a is an NVMe namespace \(nsid 1 of $NVME_SUBNQN, transport loop, 1 controller\(s\)\), this host's ID $NVME_HOSTID_A"
gen=$(nvme_state "$a" | sed 's/gen=\([0-9]*\).*/\1/')
out_has healthy-generation "registrations: generation $(printf '0x%x' "$gen"), 1 registration\(s\), reservation Write Exclusive - Registrants Only \(we-ro\) held by key 0xa1 \(iSCSI name: $NVME_HOSTNQN_A\)"
out_has healthy-capabilities "capabilities: REPORT CAPABILITIES: types "
out_has healthy-host-registered "host-registered: this host's key\(s\) 0xa1 on 1 nexus"
out_has healthy-helper-keys "helper-read-keys: READ KEYS through the helper matches the device \(1 key"
out_has healthy-guest-seen "open-by: $a is open in sleep \(pid $GUEST_PID\)"
out_lacks healthy-no-problem "^(degraded|not-ready) "
out_lacks healthy-not-unverified "nvme-unverified"
prt --json check "$a" >"$WORK/json" 2>&1
expect_eq healthy-json-verdict '"verdict": "ready",' "$(grep -o '"verdict": "[a-z-]*",' "$WORK/json")"
expect_eq healthy-json-route '"route": "nvme",' "$(grep -o '"route": "[a-z-]*",' "$WORK/json")"
# From host B's node, host A's registration and reservation are another host's.
expect_status healthy-from-b 0 prt check "$b"
out_has from-b-foreign-reservation "^note +foreign-reservation: another host holds the reservation: Write Exclusive - Registrants Only \(we-ro\) with key 0xa1 \(iSCSI name: $NVME_HOSTNQN_A\)"
out_has from-b-unregistered "host-unregistered: no key of this host is registered on $b"
# Host A's own key, but refused: this host is registered.
check_ns healthy-write-test-refused 2 --write-test
out_has healthy-write-test-why "write-test-refused: the write test did not run: this host has a registration on the device already \(key 0xa1\)"

# 2. A stale key of this host: no process holds the namespace open.
kill "$GUEST_PID" 2>/dev/null
wait "$GUEST_PID" 2>/dev/null
check_ns stale-is-degraded 2
out_has stale-key "^degraded +stale-registration: key 0xa1 is registered by this host, but no process here has $a open"
out_has stale-key-fix "fix: if no guest of this host should hold it: prtool --socket $PR_SOCKET register --key 0xa1 --sa-key 0 $a"

# 3. A foreign host's reservation: host B registered and holding Write Exclusive.
nvme_reset
sleep 600 <"$a" &
GUEST_PID=$!
expect_status register-b 0 prtool --direct register --sa-key 0xb1 "$b"
expect_status reserve-b 0 prtool --direct reserve --key 0xb1 --type we "$b"
before=$(nvme_state "$a")
expect_eq target-b-holds "rtype=1 regs=a02:0xb1:holder" "$(nvme_view "$a")"
check_ns foreign-reservation-is-ready 0
show foreign-output
out_has foreign-reservation "^note +foreign-reservation: another host holds the reservation: Write Exclusive \(we\) with key 0xb1 \(iSCSI name: $NVME_HOSTNQN_B\)"
out_has foreign-writes "this host's writes get RESERVATION CONFLICT until the holder releases"
out_has foreign-registration "^note +foreign-registration: key 0xb1 is registered by another host: iSCSI name: $NVME_HOSTNQN_B"
out_has foreign-host-unregistered "host-unregistered: no key of this host is registered on $a"
check_ns foreign-write-test-refused 2 --write-test
out_has foreign-write-test-why "write-test-refused: the write test did not run: a reservation exists that this host does not hold \(key 0xb1\)"
expect_eq foreign-untouched "$before" "$(nvme_state "$a")"

# 4. --write-test with a registration of host B present: every step passes,
# and the Reservation Report is as it was but for the generation.
nvme_reset
expect_status register-b-again 0 prtool --direct register --sa-key 0xb7 "$b"
report_json "$a" >"$WORK/before.json"
gen_before=$(nvme_state "$a" | sed 's/gen=\([0-9]*\).*/\1/')
info write-test-before "$(nvme_state "$a")"
check_ns write-test-ready 0 --write-test
show write-test-output
out_has write-test-steps "^ok +write-test: write test through the helper, key 0x70727463[0-9a-f]{8}: register 0x70727463[0-9a-f]{8}, key read back on every path, reserve we-ro, reservation read back on every path, release we-ro, unregister"
out_has write-test-left "write-test-left-as-found"
report_json "$a" >"$WORK/after.json"
if [ -s "$WORK/before.json" ] && cmp -s "$WORK/before.json" "$WORK/after.json"; then
    pass write-test-report-unchanged "$(tr -d ' \n' <"$WORK/after.json" | cut -c1-200)"
else
    fail write-test-report-unchanged "before $(tr -d ' \n' <"$WORK/before.json" | cut -c1-200) after $(tr -d ' \n' <"$WORK/after.json" | cut -c1-200)"
fi
gen_after=$(nvme_state "$a" | sed 's/gen=\([0-9]*\).*/\1/')
info write-test-generation "before $gen_before after $gen_after"
expect_eq write-test-generation-advanced yes "$([ "$gen_after" -gt "$gen_before" ] && echo yes || echo no)"
expect_eq write-test-b-stays "rtype=0 regs=a02:0xb7:-" "$(nvme_view "$a")"

# The same round trip without the helper: blk-pr's NVMe commands from prtool.
gen_before=$gen_after
expect_status direct-write-test-ready 0 prtool --direct check --write-test "$a"
show direct-write-test-output
out_has direct-write-test-steps "^ok +write-test: write test .*register 0x70727463[0-9a-f]{8}, key read back on every path, reserve we-ro, reservation read back on every path, release we-ro, unregister"
out_has direct-write-test-left "write-test-left-as-found"
report_json "$a" >"$WORK/after-direct.json"
if cmp -s "$WORK/before.json" "$WORK/after-direct.json"; then
    pass direct-write-test-report-unchanged "equal but for the generation"
else
    fail direct-write-test-report-unchanged "before $(tr -d ' \n' <"$WORK/before.json" | cut -c1-200) after $(tr -d ' \n' <"$WORK/after-direct.json" | cut -c1-200)"
fi
gen_after=$(nvme_state "$a" | sed 's/gen=\([0-9]*\).*/\1/')
expect_eq direct-write-test-generation-advanced yes "$([ "$gen_after" -gt "$gen_before" ] && echo yes || echo no)"

kill "$GUEST_PID" 2>/dev/null
wait "$GUEST_PID" 2>/dev/null
stop_helper "$OUR_HELPER_PID"
nvme_reset
