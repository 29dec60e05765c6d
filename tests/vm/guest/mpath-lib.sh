# Shared by the scenario-mpath-*.sh files (sourced after lib.sh): the four
# nexuses, the two hosts' multipath maps, per-path views with sg_persist and
# writes with sg_raw.
#
#   host A's map mpatha: sda (initiator 5001405000000a01) + sdc (...a03)
#   host B's map mpathb: sdb (initiator 5001405000000a02) + sdd (...a04)

SDA=$(cat /sys/block/sda/dev) SDB=$(cat /sys/block/sdb/dev)
SDC=$(cat /sys/block/sdc/dev) SDD=$(cat /sys/block/sdd/dev)

# make_map NAME TABLE: creates the map, prints its /dev node.
make_map() {
    dmsetup create "$1" --table "$2" >"$WORK/dm-$1.out" 2>&1 || return 1
    local devnum
    devnum=$(dmsetup info -c --noheadings -o major,minor "$1" | tr -d ' ')
    echo "/dev/$(sed -n 's/^DEVNAME=//p' "/sys/dev/block/$devnum/uevent")"
}

remove_maps() {
    for map in "$@"; do
        dmsetup remove "$map" >/dev/null 2>&1
    done
}

# make_host_maps: mpatha (failover: sda, then sdc) and mpathb (one group:
# sdb and sdd); sets MAP_A and MAP_B or reports why not.
make_host_maps() {
    MAP_A=$(make_map mpatha "0 32768 multipath 0 0 2 1 round-robin 0 1 1 $SDA 1 round-robin 0 1 1 $SDC 1") &&
        MAP_B=$(make_map mpathb "0 32768 multipath 0 0 1 1 round-robin 0 2 1 $SDB 1 $SDD 1") &&
        [ -b "$MAP_A" ] && [ -b "$MAP_B" ]
    local ok=$?
    if [ "$ok" = 0 ]; then
        pass create-maps "$MAP_A=mpatha($SDA,$SDC) $MAP_B=mpathb($SDB,$SDD)"
    else
        fail create-maps "$(cat "$WORK"/dm-*.out 2>/dev/null | tr '\n' ' ')"
    fi
    return $ok
}

# path_reg DEV: the registration of DEV's own initiator as LIO shows it
# through DEV: "key=0x.." or "none". Each path is its own initiator here.
path_reg() {
    local sas
    case $1 in
        /dev/sda) sas=5001405000000a01 ;;
        /dev/sdb) sas=5001405000000a02 ;;
        /dev/sdc) sas=5001405000000a03 ;;
        /dev/sdd) sas=5001405000000a04 ;;
    esac
    local line
    line=$(sg_full_status "$1" | grep " sas=$sas " | head -n 1)
    if [ -n "$line" ]; then
        echo "$line" | sed 's/^\(key=[^ ]*\) .*/\1/'
    else
        echo none
    fi
}

# expect_path_regs CHECK "sda=key=0x..|none sdc=..." : every listed path's
# registration, read on that path with sg_persist READ FULL STATUS.
expect_path_regs() {
    local check=$1 want=$2 got="" item dev
    for item in $want; do
        dev=${item%%=*}
        got="$got $dev=$(path_reg "/dev/$dev")"
    done
    expect_eq "$check" "$want" "${got# }"
}

# sg_write DEV: one WRITE(10) of block 0 through DEV with sg_raw; prints
# sg_raw's exit status (0 written, 24 reservation conflict).
sg_write() {
    sg_raw -s 512 -i /dev/zero "$1" 2a 00 00 00 00 00 00 00 01 00 >"$WORK/sgraw.out" 2>&1
    echo $?
}

# dd_write DEV: the same through the block layer with dd (O_DIRECT).
dd_write() {
    dd if=/dev/zero of="$1" bs=512 count=1 oflag=direct >"$WORK/dd.out" 2>&1
    echo $?
}

# now_ms: milliseconds since boot.
now_ms() {
    awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime
}

# wait_for_path_reg DEV WANT SECONDS: polls DEV's registration until it is
# WANT; prints the milliseconds it took, or "timeout".
wait_for_path_reg() {
    local start end deadline
    start=$(now_ms)
    deadline=$((start + $3 * 1000))
    while :; do
        if [ "$(path_reg "$1")" = "$2" ]; then
            end=$(now_ms)
            echo $((end - start))
            return 0
        fi
        [ "$(now_ms)" -gt "$deadline" ] && { echo timeout; return 1; }
        sleep 0.05
    done
}

# map_facts CHECK PRTOOL_COMMAND SG_OPTION MAP PATH: a PR IN through the map
# (prtool, our helper) against sg_persist on one path, fact for fact.
map_facts() {
    expect_same_as_sg "$1" "$2" "$3" "$4" "$5"
}

# keys_with KEY: how many registrations hold KEY on the LUN.
keys_with() {
    sg_full_status /dev/sdb | grep -c "^key=$1 "
}

# restart_helper: stops our helper and starts a fresh one on the same socket.
restart_helper() {
    stop_helper "$OUR_HELPER_PID"
    start_our_helper_for_prtool
}

# start_fault_scenario: both hosts' maps and our helper, from a drained LUN;
# sets scenario_start (milliseconds). Returns 1 (after reporting) if either fails.
start_fault_scenario() {
    scenario_start=$(now_ms)
    drain_unit_attentions
    make_host_maps || return 1
    start_our_helper_for_prtool || { remove_maps mpatha mpathb; return 1; }
}
