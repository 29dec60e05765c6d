# The two paths as one device-mapper multipath device (failover: path group
# 1 is /dev/sda, group 2 is /dev/sdb). SG_IO on a multipath device goes to
# the active path. Neither Debian's qemu-pr-helper nor our pr-helper has a
# multipath backend (libmpathpersist in QEMU's case), so both must give the
# same replies through /dev/dm-0, and a PR command reaches one path only:
# after failing path sda, a registration through dm-0 lands on initiator B.
# Ours runs with --no-multipath here.
. /vm/lib.sh
# Today's behaviour of a helper without a multipath backend: ours with
# --no-multipath (scenario-mpath-*.sh show the multipath backend).
OUR_HELPER_ARGS=--no-multipath

sda=$(cat /sys/block/sda/dev) sdb=$(cat /sys/block/sdb/dev)
table="0 32768 multipath 0 0 2 1 round-robin 0 1 1 $sda 1 round-robin 0 1 1 $sdb 1"
if dmsetup create mpath0 --table "$table" >"$WORK/dm.out" 2>&1 && [ -b /dev/dm-0 ]; then
    pass create-multipath "$(dmsetup table mpath0)"
else
    fail create-multipath "$(tr '\n' ' ' <"$WORK/dm.out")"
    exit 0
fi
remove_multipath() {
    dmsetup remove mpath0 >/dev/null 2>&1
}

# Differential through dm-0: same stream, same starting state.
if have_binary pr-replay && have_binary pr-helper; then
    for which in qemu ours; do
        reset_reservations
        start_helper "$which" "$WORK/mp-$which.sock"
        pr-replay "$WORK/mp-$which.sock" /vm/multipath.stream >"$WORK/mp-$which.out" 2>&1
        stop_helper "$HELPER_PID"
    done
    expect_eq reference-register-ok 00000000 \
        "$(awk '$1 == "register" { print $3 }' "$WORK/mp-qemu.out")"
    while read -r name _; do
        case $name in '#'* | '') continue ;; esac
        theirs=$(awk -v name="$name" '$1 == name' "$WORK/mp-qemu.out")
        ours=$(awk -v name="$name" '$1 == name' "$WORK/mp-ours.out")
        if [ -n "$theirs" ] && [ "$theirs" = "$ours" ]; then
            pass "same-$name" "$(echo "$ours" | cut -d' ' -f2-4)"
        else
            fail "same-$name" "qemu: '$(echo "$theirs" | cut -c1-160)' ours: '$(echo "$ours" | cut -c1-160)'"
        fi
    done </vm/multipath.stream
else
    fail binaries "pr-replay or pr-helper is missing from the initramfs"
fi
reset_reservations

# prtool through dm-0, cross-checked on the paths with sg_persist.
start_our_helper_for_prtool || { remove_multipath; exit 0; }
expect_same_as_sg read-keys-via-multipath read-keys --read-keys /dev/dm-0
expect_status register-via-multipath 0 prt register --sa-key 0xd1 /dev/dm-0
expect_eq sg-registered-on-active-path-a "key=0xd1 sas=5001405000000a01" \
    "$(sg_full_status /dev/sda | sed -n 's/^\(key=[^ ]*\) port=[^ ]* \(sas=[^ ]*\).*/\1 \2/p')"

dmsetup message mpath0 0 "fail_path $sda"
expect_status register-after-failover 0 prt register --sa-key 0xd2 /dev/dm-0
expect_eq sg-registered-on-path-b-after-failover "key=0xd1 sas=5001405000000a01;key=0xd2 sas=5001405000000a02;" \
    "$(sg_full_status /dev/sdb | sed -n 's/^\(key=[^ ]*\) port=[^ ]* \(sas=[^ ]*\).*/\1 \2/p' | tr '\n' ';')"
info note "PR through dm-multipath reaches the active path only; registering every path needs a multipath backend"

stop_helper "$OUR_HELPER_PID"
remove_multipath
