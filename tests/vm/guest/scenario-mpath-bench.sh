# REGISTER latency through multipath maps of 1, 2 and 4 paths against one
# path without a map (/dev/sda through the SG_IO backend), printed as ratios
# of the per-configuration medians over interleaved rounds (reported, not
# asserted: the guest is emulated and the host shared). The only checks: every reply is GOOD and every
# path of the map ends up registered.
. /vm/lib.sh
. /vm/mpath-lib.sh

commands=${MPATH_BENCH_COMMANDS:-40}
rounds=${MPATH_BENCH_ROUNDS:-5}

drain_unit_attentions
start_our_helper_for_prtool || exit 0
MAP1=$(make_map bench1 "0 32768 multipath 0 0 1 1 round-robin 0 1 1 $SDA 1")
MAP2=$(make_map bench2 "0 32768 multipath 0 0 1 1 round-robin 0 2 1 $SDA 1 $SDC 1")
MAP4=$(make_map bench4 "0 32768 multipath 0 0 1 1 round-robin 0 4 1 $SDA 1 $SDB 1 $SDC 1 $SDD 1")
if [ -b "$MAP1" ] && [ -b "$MAP2" ] && [ -b "$MAP4" ]; then
    pass create-bench-maps "$MAP1 $MAP2 $MAP4"
else
    fail create-bench-maps "$(cat "$WORK"/dm-bench*.out | tr '\n' ' ')"
    stop_helper "$OUR_HELPER_PID"
    remove_maps bench1 bench2 bench4
    exit 0
fi

# stream DEVICE: $commands REGISTER AND IGNORE EXISTING KEY, alternating keys.
stream() {
    local i=0
    while [ "$i" -lt "$commands" ]; do
        printf 'reg%d rw %s 5f060000000000001800 000000000000000000000000000000%02x0000000000000000\n' \
            "$i" "$1" $((0xc0 + i % 2))
        i=$((i + 1))
    done
}

bad=0
rm -f "$WORK"/bench-us-*
for round in $(seq 1 "$rounds"); do
    for which in direct 1 2 4; do
        case $which in
            direct) dev=/dev/sda ;;
            1) dev=$MAP1 ;;
            2) dev=$MAP2 ;;
            4) dev=$MAP4 ;;
        esac
        stream "$dev" >"$WORK/bench.stream"
        start=$(now_ms)
        pr-replay "$PR_SOCKET" "$WORK/bench.stream" >"$WORK/bench-$which.out" 2>&1
        end=$(now_ms)
        # /proc/uptime counts in 10 ms steps: a round takes hundreds of them.
        us=$(((end - start) * 1000))
        not_good=$(awk '$2 != "reply" || $3 != "00000000"' "$WORK/bench-$which.out" | wc -l)
        bad=$((bad + not_good))
        echo "$((us / commands))" >>"$WORK/bench-us-$which"
    done
    reset_reservations
done
expect_eq every-reply-good 0 "$bad"

median() { sort -n "$WORK/bench-us-$1" | sed -n "$((rounds / 2 + 1))p"; }
m_direct=$(median direct) m_1=$(median 1) m_2=$(median 2) m_4=$(median 4)
for which in direct 1 2 4; do
    info "register-us-per-round-$which" "$(tr '\n' ' ' <"$WORK/bench-us-$which")"
done
info register-us-median "one path (no map) $m_direct, map of 1 path $m_1, 2 paths $m_2, 4 paths $m_4"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f\n", a / b; else print "n/a" }'; }
info ratio-2-path-map-vs-one-path "$(ratio "$m_2" "$m_direct")x"
info ratio-4-path-map-vs-one-path "$(ratio "$m_4" "$m_direct")x"
info ratio-2-path-map-vs-1-path-map "$(ratio "$m_2" "$m_1")x"
info ratio-4-path-map-vs-1-path-map "$(ratio "$m_4" "$m_1")x"

# After a last registration through the 4-path map every path carries the key.
expect_status last-register-4-paths 0 prt register-ignore --sa-key 0xc9 "$MAP4"
expect_path_regs all-four-registered "sda=key=0xc9 sdb=key=0xc9 sdc=key=0xc9 sdd=key=0xc9"

stop_helper "$OUR_HELPER_PID"
remove_maps bench1 bench2 bench4
