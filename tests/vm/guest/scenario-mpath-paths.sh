# The multipath backend on host A's map (sda + sdc), checked on each path
# against LIO: registration on every path, a registrants-only reservation,
# writes per path, every PR IN, REGISTER AND MOVE, and a path that fails while
# the key changes and comes back carrying the current key with no PR command.
. /vm/lib.sh
. /vm/mpath-lib.sh

drain_unit_attentions
make_host_maps || exit 0
start_our_helper_for_prtool || { remove_maps mpatha mpathb; exit 0; }
info table "$(dmsetup table mpatha)"
info status "$(dmsetup status mpatha)"

# Register through the map: every path of A carries the key.
expect_status register-via-map 0 prt register --sa-key 0xa1 "$MAP_A"
expect_path_regs every-path-of-a-registered "sda=key=0xa1 sdc=key=0xa1"
expect_path_regs host-b-untouched "sdb=none sdd=none"
expect_eq keys-on-the-lun "keys=0xa1,0xa1" "$(sg_keys_only /dev/sdb)"

# Write Exclusive - Registrants Only through the map; writes per path.
expect_status reserve-we-ro-via-map 0 prt reserve --key 0xa1 --type we-ro "$MAP_A"
expect_eq reservation-on-lun "key=0xa1 type=Write_Exclusive,_registrants_only" "$(sg_reservation /dev/sdc)"
expect_eq write-sda-succeeds 0 "$(sg_write /dev/sda)"
expect_eq write-sdc-succeeds 0 "$(sg_write /dev/sdc)"
expect_eq dd-write-sdc-succeeds 0 "$(dd_write /dev/sdc)"
expect_eq write-sdb-unregistered-conflicts 24 "$(sg_write /dev/sdb)"
expect_eq write-sdd-unregistered-conflicts 24 "$(sg_write /dev/sdd)"
expect_eq write-through-map-succeeds 0 "$(dd_write "$MAP_A")"

# Every PR IN through the map, against sg_persist on each path.
map_facts read-keys-via-map read-keys --read-keys "$MAP_A" /dev/sda
map_facts read-reservation-via-map read-reservation --read-reservation "$MAP_A" /dev/sdc
map_facts report-capabilities-via-map report-capabilities --report-capabilities "$MAP_A" /dev/sda
map_facts read-full-status-via-map read-full-status --read-full-status "$MAP_A" /dev/sdc
expect_status read-full-status-lists-both-paths 0 prt read-full-status "$MAP_A"
out_has full-status-path-1 '5001405000000a01'
out_has full-status-path-2 '5001405000000a03'

# REGISTER AND MOVE through the map to host B's first nexus (sdb). Its
# relative target port comes from LIO: register and unregister it directly.
sg_persist -n --out --register --param-sark=0xb0 /dev/sdb >/dev/null 2>&1
port_b=$(sg_full_status /dev/sdb | sed -n 's/.* port=\([^ ]*\) sas=5001405000000a02 .*/\1/p')
sg_persist -n --out --register --param-rk=0xb0 --param-sark=0 /dev/sdb >/dev/null 2>&1
expect_status register-and-move-via-map 0 prt register-move --key 0xa1 --sa-key 0xb5 --type we-ro \
    --transport-id sas:5001405000000a02 --relative-target-port "$((port_b))" "$MAP_A"
expect_eq moved-holder-is-b "key=0xb5 holder=yes" \
    "$(sg_full_status /dev/sdb | sed -n 's/^\(key=[^ ]*\) .*sas=5001405000000a02 holder=\(.*\)/\1 holder=\2/p')"
expect_path_regs a-keeps-its-registrations "sda=key=0xa1 sdc=key=0xa1"
drain_unit_attentions
sg_persist -n --out --clear --param-rk=0xb5 /dev/sdb >/dev/null 2>&1
drain_unit_attentions

# A path fails while the key changes; it comes back with the current key.
expect_status register-again 0 prt register --sa-key 0xa1 "$MAP_A"
expect_status reserve-again 0 prt reserve --key 0xa1 --type we-ro "$MAP_A"
dmsetup message mpatha 0 "fail_path $SDA"
info status-sda-failed "$(dmsetup status mpatha)"
expect_status change-key-while-sda-failed 0 prt register --key 0xa1 --sa-key 0xa2 "$MAP_A"
# The failed path cannot take the new key, and its nexus must not keep the
# old one: another host fencing 0xa2 would leave 0xa1 there, and the host
# could write again once the path returns (issue 18). The helper preempts the
# stale key through the usable path (the reservation moves with it and stays
# this host's). This replaces the earlier check that sda kept 0xa1.
expect_path_regs stale-key-of-the-failed-path-preempted "sda=none sdc=key=0xa2"
expect_eq reservation-stays-this-hosts "0xa2" \
    "$(sg_persist -n -i -r /dev/sdc 2>/dev/null | sed -n 's/^ *Key=\(0x[0-9a-f]*\).*/\1/p' | head -n 1)"
map_facts read-keys-through-remaining-path read-keys --read-keys "$MAP_A" /dev/sdc
dmsetup message mpatha 0 "reinstate_path $SDA"
took=$(wait_for_path_reg /dev/sda key=0xa2 5)
if [ "$took" != timeout ]; then
    pass reinstated-path-carries-current-key "after ${took} ms, no PR command sent"
    info reinstated-path-registered-ms "$took"
else
    fail reinstated-path-carries-current-key "sda: $(path_reg /dev/sda) after 5 s"
fi
expect_eq old-key-gone "keys=0xa2,0xa2" "$(sg_keys_only /dev/sda)"
expect_eq write-on-returned-path-succeeds 0 "$(sg_write /dev/sda)"
grep -q 'path re-registered' "$PR_SOCKET.log" &&
    pass log-line-for-reregistration "$(grep 'path re-registered' "$PR_SOCKET.log" | head -n 1 | cut -c1-200)" ||
    fail log-line-for-reregistration "$(tail -n 5 "$PR_SOCKET.log" | tr '\n' ' ' | cut -c1-300)"

# A path added by a table reload is registered too (sdd joins host A's map).
dmsetup load mpatha --table "0 32768 multipath 0 0 2 1 round-robin 0 1 1 $SDA 1 round-robin 0 2 1 $SDC 1 $SDD 1" &&
    dmsetup resume mpatha
took=$(wait_for_path_reg /dev/sdd key=0xa2 5)
if [ "$took" != timeout ]; then
    pass path-added-by-reload-registered "after ${took} ms"
else
    fail path-added-by-reload-registered "sdd: $(path_reg /dev/sdd) after 5 s"
fi

# All of the above ran confined: every thread of the daemon (the map's worker
# and uevent threads included) under the seccomp filter.
unfiltered=$(for task in /proc/"$OUR_HELPER_PID"/task/*; do
    sed -n 's/^Seccomp:[[:space:]]*//p' "$task/status"
done | grep -vc '^2$')
expect_eq multipath-daemon-threads-all-filtered 0 "$unfiltered"

stop_helper "$OUR_HELPER_PID"

# With -u/-g: the helper opens the path nodes (root:disk 0660) read-only with
# CAP_DAC_READ_SEARCH and reads the maps with CAP_SYS_ADMIN, both permitted
# only and raised around the one call; effective stays CAP_SYS_RAWIO.
# status_of FIELD: the first word of FIELD in the helper's /proc status.
status_of() {
    awk -v field="$1:" '$1 == field { print $2 }' "/proc/$OUR_HELPER_PID/status"
}
reset_reservations
# The initramfs root directory is the build's mktemp folder (mode 0700), which
# an unprivileged process cannot even traverse: open it as a real root is.
chmod 0755 /
# The initramfs has no user database: -u/-g look names and numbers up in it.
grep -q '^nobody:' /etc/passwd 2>/dev/null ||
    echo 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >>/etc/passwd
grep -q '^nogroup:' /etc/group 2>/dev/null || echo 'nogroup:x:65534:' >>/etc/group
OUR_HELPER_ARGS="-u nobody -g nogroup -v"
start_our_helper_for_prtool || { remove_maps mpatha mpathb; exit 0; }
OUR_HELPER_ARGS=
expect_eq unprivileged-uid "65534" "$(status_of Uid)"
expect_eq unprivileged-cap-effective 0000000000020000 "$(status_of CapEff)"
expect_eq unprivileged-cap-permitted 0000000000220004 "$(status_of CapPrm)"
expect_status unprivileged-register-via-map 0 prt register --sa-key 0xa7 "$MAP_A"
expect_path_regs unprivileged-every-path-registered "sda=key=0xa7 sdc=key=0xa7 sdd=key=0xa7"
# -v: one debug line per path command (path, command, answer, latency).
lines=$(grep -c 'path command.*command="PR OUT REGISTER" answer=GOOD latency_us=' "$PR_SOCKET.log")
expect_eq debug-line-per-path-command 3 "$lines"
grep 'path command' "$PR_SOCKET.log" | head -n 3 | while read -r line; do
    info path-command-log "$(echo "$line" | cut -c1-300)"
done
stop_helper "$OUR_HELPER_PID"

# --no-multipath: the map is served as before (the active path only).
reset_reservations
OUR_HELPER_ARGS=--no-multipath
start_our_helper_for_prtool || { remove_maps mpatha mpathb; exit 0; }
OUR_HELPER_ARGS=
expect_eq no-multipath-cap-permitted 0000000000020000 "$(status_of CapPrm)"
expect_status no-multipath-register-via-map 0 prt register --sa-key 0xa8 "$MAP_A"
expect_eq no-multipath-one-path-only "keys=0xa8" "$(sg_keys_only /dev/sda)"
stop_helper "$OUR_HELPER_PID"

# A replaced node is never used: /dev/sdd now names sda's device number. The
# helper opens the node sysfs names for 8:48, sees another device and refuses
# that path; sda, reachable under its own name, is registered.
reset_reservations
mv /dev/sdd /dev/sdd.real && mknod /dev/sdd b "${SDA%%:*}" "${SDA##*:}"
start_our_helper_for_prtool || { remove_maps mpatha mpathb; exit 0; }
expect_status replaced-node-register-fails 4 prt register --sa-key 0xa9 "$MAP_A"
grep -q "is not block device $SDD" "$PR_SOCKET.log" &&
    pass replaced-node-refused "$(grep "is not block device" "$PR_SOCKET.log" | head -n 1 | cut -c1-240)" ||
    fail replaced-node-refused "$(tail -n 5 "$PR_SOCKET.log" | tr '\n' ' ' | cut -c1-300)"
expect_path_regs replaced-node-other-paths "sda=key=0xa9 sdc=key=0xa9 sdd=none"
rm -f /dev/sdd && mv /dev/sdd.real /dev/sdd
expect_status restored-node-register 0 prt register --key 0xa9 --sa-key 0xaa "$MAP_A"
expect_path_regs restored-node-every-path "sda=key=0xaa sdc=key=0xaa sdd=key=0xaa"
stop_helper "$OUR_HELPER_PID"
remove_maps mpatha mpathb
