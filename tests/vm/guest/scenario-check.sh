# `prtool check` on LIO through host A's map (sda + sdc) and our helper with
# multipath support: a healthy map, a path missing the key (and the fix it
# names, run), a failed path, a foreign host's reservation, stale and old keys
# of this host, and the --write-test round trip, which must leave READ FULL
# STATUS on every path byte for byte as it was but for the generation.
. /vm/lib.sh
. /vm/mpath-lib.sh

drain_unit_attentions
make_host_maps || exit 0
start_our_helper_for_prtool || { remove_maps mpatha mpathb; exit 0; }
# What this host's initiator ports are found from: each path's SCSI host and
# its tcm_loop TPG (address H:C:T) with the nexus's initiator WWN.
for dev in sda sdc; do
    info scsi-device "$dev $(readlink -f /sys/block/$dev/device)"
done
for host in /sys/class/scsi_host/host*; do
    info scsi-host "$host proc_name=$(cat "$host/proc_name" 2>&1)"
done
for tpg in /sys/kernel/config/target/loopback/*/tpgt_1; do
    info tcm-loop-tpg "$tpg address=$(cat "$tpg/address" 2>&1) nexus=$(cat "$tpg/nexus" 2>&1)"
done

# check_map CHECK EXIT [OPTIONS...]: prtool check on host A's map; the output
# stays in $WORK/out for out_has/out_lacks.
check_map() {
    local name=$1 want=$2
    shift 2
    expect_status "$name" "$want" prt check "$@" "$MAP_A"
}

# A guest of host A: a process holding the map open.
sleep 600 <"$MAP_A" &
GUEST_PID=$!

# 1. Healthy: registered and reserved through the map, every path carries the key.
expect_status register-a 0 prt register --sa-key 0xa1 "$MAP_A"
expect_status reserve-a 0 prt reserve --key 0xa1 --type we-ro "$MAP_A"
check_map healthy-is-ready 0
show healthy-output
out_has healthy-verdict "^$MAP_A: READY for cluster reservations"
out_has healthy-paths-consistent "paths-consistent: every usable path of $MAP_A \(2\) carries key 0xa1"
out_has healthy-this-host-initiators "host-registered: this host's key\(s\) 0xa1 on 2 nexus"
out_has healthy-helper-process "helper-process: the helper is pr-helper \(pid $OUR_HELPER_PID, the socket's listener, version \"pr-helper [^\"]*\", multipath on"
out_has healthy-helper-keys "helper-read-keys: READ KEYS through the helper matches the device \(2 key"
out_has healthy-guest-seen "open-by: $MAP_A is open in sleep \(pid $GUEST_PID\)"
out_lacks healthy-no-problem "^(degraded|not-ready) "
prt --json check "$MAP_A" >"$WORK/json" 2>&1
expect_eq healthy-json-verdict '"verdict": "ready",' "$(grep -o '"verdict": "[a-z-]*",' "$WORK/json")"

# The map's path through its sg node alone: a path of the map, said so.
expect_status sg-node-path-of-map 2 prt check /dev/sg0
out_has sg-node-kind "scsi-generic: /dev/sg0 is the SCSI generic node of /dev/sda"
out_has sg-node-path-of-map-finding "^degraded +path-of-a-map: /dev/sg0 is a path of multipath map mpatha"
out_has sg-node-own-key "host-registered: this host's key\(s\) 0xa1 on 1 nexus"

# 2. One path missing the key: sdc's nexus unregistered behind the helper's back.
sg_persist -n --out --register --param-rk=0xa1 --param-sark=0 /dev/sdc >/dev/null 2>&1
expect_path_regs sdc-unregistered "sda=key=0xa1 sdc=none"
check_map missing-key-is-degraded 2
show missing-key-output
out_has missing-key-verdict "^$MAP_A: DEGRADED"
out_has missing-key-names-the-path "^degraded +path-missing-key: path /dev/sdc \(SAS address: 0x5001405000000a03\) carries no key; the other paths carry 0xa1"
fix=$(sed -n 's/^degraded *path-missing-key: .*; fix: \(prtool [^(]*\) (pr-helper registers.*/\1/p' "$WORK/out" | sed 's/ *$//')
expect_eq missing-key-fix-named "prtool --socket $PR_SOCKET register --key 0xa1 --sa-key 0xa1 $MAP_A" "$fix"
# The fix it names works.
expect_status missing-key-fix-runs 0 $fix
expect_path_regs missing-key-fixed "sda=key=0xa1 sdc=key=0xa1"
check_map missing-key-fixed-is-ready 0

# 3. A failed path: degraded, and what the helper does on its return.
dmsetup message mpatha 0 "fail_path $SDC"
check_map failed-path-is-degraded 2
out_has failed-path-finding "^degraded +path-failed: path /dev/sdc \($SDC\) is failed"
out_has failed-path-return "on its return pr-helper registers it with the key it registered through the map"
dmsetup message mpatha 0 "reinstate_path $SDC"
wait_for_path_reg /dev/sdc key=0xa1 5 >/dev/null
check_map reinstated-is-ready 0

# 4. A foreign host's reservation: host B holds it through its map.
reset_reservations
expect_status register-b 0 prt register --sa-key 0xb1 "$MAP_B"
expect_status reserve-b 0 prt reserve --key 0xb1 --type we-ro "$MAP_B"
check_map foreign-reservation-is-ready 0
show foreign-output
out_has foreign-reservation "^note +foreign-reservation: another host holds the reservation: Write Exclusive - Registrants Only \(we-ro\) with key 0xb1 \(SAS address: 0x5001405000000a02\)"
out_has foreign-registration-b2 "^note +foreign-registration: key 0xb1 is registered by another host: SAS address: 0x5001405000000a04"
out_has foreign-host-unregistered "host-unregistered: no key of this host is registered"
check_map foreign-write-test-refused 2 --write-test
out_has foreign-write-test-why "write-test-refused: the write test did not run: a reservation exists that this host does not hold \(key 0xb1\)"
expect_eq foreign-untouched "keys=0xb1,0xb1" "$(sg_keys_only /dev/sda)"

# 5. Stale and old keys of this host: no guest holds the map open, and the
# paths carry different keys (registered directly, as a forgotten test would).
reset_reservations
kill "$GUEST_PID" 2>/dev/null
wait "$GUEST_PID" 2>/dev/null
sg_persist -n --out --register --param-sark=0xa9 /dev/sda >/dev/null 2>&1
sg_persist -n --out --register --param-sark=0xa8 /dev/sdc >/dev/null 2>&1
check_map stale-is-degraded 2
show stale-output
out_has stale-key-a9 "^degraded +stale-registration: key 0xa9 is registered by this host, but no process here has $MAP_A open"
out_has stale-key-fix "fix: if no guest of this host should hold it: prtool --socket $PR_SOCKET register --key 0xa9 --sa-key 0 $MAP_A"
out_has old-key-on-sdc "^degraded +path-old-key: path /dev/sdc \(SAS address: 0x5001405000000a03\) carries key 0xa8, the other paths 0xa9"
out_has stale-not-open "not-open: no process on this host \(but the helper\) has $MAP_A open"

# 6. --write-test: a registration of host B stays, the LUN is left byte for
# byte as it was on every path (READ FULL STATUS but its 4 generation bytes).
reset_reservations
sg_persist -n --out --register --param-sark=0xb7 /dev/sdb >/dev/null 2>&1
sleep 600 <"$MAP_A" &
GUEST_PID=$!
# full_status_bin DEV FILE: READ FULL STATUS on DEV with sg_raw, the payload in
# FILE. A unit attention comes first once (the write test's RELEASE reports
# RESERVATIONS RELEASED to host B's registered nexus): then it is asked again.
full_status_bin() {
    local try
    for try in 1 2 3; do
        rm -f "$2"
        sg_raw -r 8192 -o "$2" "$1" 5e 03 00 00 00 00 00 20 00 00 >"$WORK/sgraw.out" 2>&1 && [ -s "$2" ] && return 0
        grep -qi 'unit attention' "$WORK/sgraw.out" && info unit-attention-before-read "$1 (try $try)"
    done
    return 1
}
for dev in sda sdb sdc sdd; do
    full_status_bin "/dev/$dev" "$WORK/before-$dev.bin"
done
gen_before=$(sg_generation /dev/sda)
check_map write-test-ready 0 --write-test
show write-test-output
out_has write-test-steps "^ok +write-test: write test through the helper, key 0x70727463[0-9a-f]{8}: register 0x70727463[0-9a-f]{8}, key read back on every path, reserve we-ro, reservation read back on every path, release we-ro, unregister"
out_has write-test-left "write-test-left-as-found"
for dev in sda sdb sdc sdd; do
    full_status_bin "/dev/$dev" "$WORK/after-$dev.bin"
    if [ -s "$WORK/before-$dev.bin" ] &&
        cmp -s "$WORK/before-$dev.bin" "$WORK/after-$dev.bin" 4 4; then
        pass "write-test-$dev-byte-for-byte" "$(wc -c <"$WORK/after-$dev.bin") bytes equal after the generation"
    else
        fail "write-test-$dev-byte-for-byte" "before $(od -An -tx1 "$WORK/before-$dev.bin" | tr -d '\n') after $(od -An -tx1 "$WORK/after-$dev.bin" | tr -d '\n')"
    fi
done
gen_after=$(sg_generation /dev/sda)
info write-test-generation "before $gen_before after $gen_after"
expect_eq write-test-generation-advanced yes "$([ "$gen_after" -gt "$gen_before" ] && echo yes || echo no)"
expect_eq write-test-b-stays "keys=0xb7" "$(sg_keys_only /dev/sda)"
expect_eq write-test-no-reservation none "$(sg_reservation /dev/sdc)"

kill "$GUEST_PID" 2>/dev/null
wait "$GUEST_PID" 2>/dev/null
stop_helper "$OUR_HELPER_PID"

# Without a helper: the socket is gone, the check says so and exits 1.
check_map helper-stopped-not-ready 1
out_has helper-stopped-socket-missing "^not-ready +socket-missing: no helper socket at $PR_SOCKET"
remove_maps mpatha mpathb
