# Benchmark (reported, not asserted): pr-bench drives our pr-helper and
# Debian's qemu-pr-helper side by side (interleaved rounds) with READ KEYS
# on /dev/sda, a real LIO disk, at 4 and 16 connections. The ratios are
# ours/qemu. The only checks: the runs completed and every reply was GOOD.
. /vm/lib.sh

for tool in pr-helper pr-bench; do
    if ! have_binary "$tool"; then
        fail binaries "$tool is missing from the initramfs (cargo build --release -p pr-helper -p pr-bench)"
        exit 0
    fi
done

start_helper ours "$WORK/bench-ours.sock" || { fail start-ours "$(cat "$WORK/bench-ours.sock.log")"; exit 0; }
ours_pid=$HELPER_PID
start_helper qemu "$WORK/bench-qemu.sock" || { fail start-qemu "$(cat "$WORK/bench-qemu.sock.log")"; exit 0; }
qemu_pid=$HELPER_PID

for connections in 4 16; do
    out=$WORK/bench-$connections.txt
    if pr-bench load -t "ours=$WORK/bench-ours.sock" -t "qemu=$WORK/bench-qemu.sock" \
        -c "$connections" -d 2 -w 0.5 -r 2 -D /dev/sda >"$out" 2>&1; then
        pass "load-c$connections" "completed"
    else
        fail "load-c$connections" "$(tr '\n' ' ' <"$out" | cut -c1-300)"
        continue
    fi
    cat "$out"
    # Table rows: target conns requests secs ops/s p50 p99 p99.9 max
    awk -v c="$connections" '$1 == "ours" || $1 == "qemu" {
            printf "c%s-%s ops/s=%s p50us=%s p99us=%s\n", c, $1, $5, $6, $7 }' "$out" |
        while read -r key rest; do info "$key" "$rest"; done
    ratio=$(sed -n 's/^ratio ours\/qemu: //p' "$out")
    info "c$connections-ratio-ours/qemu" "${ratio:-missing}"
    # Every reply must be GOOD: a real device answers READ KEYS.
    bad=$(grep '^replies ' "$out" | grep -vc 'GOOD')
    expect_eq "replies-good-c$connections" 0 "$bad"
done

stop_helper "$ours_pid"
stop_helper "$qemu_pid"
