#!/usr/bin/env bash
# Benchmark our pr-helper against Debian's qemu-pr-helper and the yardstick,
# side by side.
#
# The yardstick (`pr-bench yardstick`) is the least server the protocol
# allows: one thread per connection, recvmsg the CDB with its descriptor,
# SG_IO inline, write the reply, nothing else. It shows what is left to gain.
#
# All three get a loop-device descriptor with every PR IN READ KEYS: each
# issues SG_IO, the loop driver refuses it (EINVAL), so what is measured is
# the cost of the protocol and the dispatch, not of a device. The yardstick
# runs with --identity-check (one fstat of each request's descriptor, the
# check a helper that routes by device must make: ours does, and so does
# qemu-pr-helper's multipath build), so that like is compared with like.
#
# Two client shapes (pr-bench load): "shared", every connection sends the
# same open file (one VM, many queues), and "per-conn", each connection
# opens the device itself (--file-per-connection: many VMs, one helper).
#
# Measures, in one run:
#   - idle RSS of each freshly started server (/proc/PID/status VmRSS);
#   - RSS per idle connection, holding BENCH_IDLE (500) negotiated connections;
#   - closed-loop throughput and p50/p99 latency at 1, 4 and 16 connections
#     in both shapes, the three servers interleaved in rounds (pr-bench
#     alternates the order), and each server's CPU time per request
#     (/proc/PID/stat);
#   - a hung-device row and a stuck-file-system row (hung_device_row and
#     stuck_fs_row below).
# Then prints ours against both, round by round: the median over the rounds
# and the worst round of each ratio, against issue 20's targets (the table
# at the end; "MISSES" marks a target not met).
#
# Needs root (losetup, and the helpers want CAP_SYS_RAWIO), cargo,
# /usr/bin/qemu-pr-helper. Environment knobs:
#   BENCH_DURATION  measured seconds per server per round  (default 5)
#   BENCH_WARMUP    warm-up seconds before each measurement (default 1)
#   BENCH_ROUNDS    rounds per connection count and shape   (default 5)
#   BENCH_CONNS     connection counts                       (default "1 4 16")
#   BENCH_SHAPES    client shapes                  (default "shared per-conn")
#   BENCH_IDENTITY_CHECK  0: the yardstick without its fstat (default 1)
#   BENCH_IDLE      idle connections for the RSS test       (default 500)
#   BENCH_DEVICE    descriptor to send instead of the loop device, e.g. a
#                   regular file (then we answer without any ioctl while
#                   the others still try SG_IO) or /dev/null
#   BENCH_JSON_DIR  if set, pr-bench JSON results are written there
#   OURS            our daemon binary (default: the release build)
#   OURS_ARGS       extra arguments for our daemon
#   REFERENCE       the reference daemon (default /usr/bin/qemu-pr-helper)
#   NO_BUILD=1      skip `cargo build --release`
#
# `NO_BUILD=1 BENCH_DURATION=2 BENCH_ROUNDS=5 scripts/bench.sh` takes about
# 6 minutes (3 servers x 5 rounds x 3 connection counts x 2 shapes x 3 s).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-1}
ROUNDS=${BENCH_ROUNDS:-5}
CONNS=${BENCH_CONNS:-"1 4 16"}
SHAPES=${BENCH_SHAPES:-"shared per-conn"}
YARD_ARGS=--identity-check
[ "${BENCH_IDENTITY_CHECK:-1}" = 0 ] && YARD_ARGS=""
IDLE=${BENCH_IDLE:-500}
REFERENCE=${REFERENCE:-/usr/bin/qemu-pr-helper}
OURS_ARGS=${OURS_ARGS:-}

die() { echo "bench.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (losetup, and the helpers want CAP_SYS_RAWIO)"
[ -x "$REFERENCE" ] || die "$REFERENCE missing: install qemu-system-common (scripts/setup.sh)"

if [ "${NO_BUILD:-0}" != 1 ]; then
    echo "== building release binaries"
    (cd "$ROOT" && cargo build --release -p pr-helper -p pr-bench) >&2
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OURS=${OURS:-$TARGET_DIR/release/pr-helper}
BENCH=$TARGET_DIR/release/pr-bench
[ -x "$OURS" ] || die "$OURS missing: did the build fail?"
[ -x "$BENCH" ] || die "$BENCH missing: did the build fail?"

WORK=$(mktemp -d /tmp/pr-bench.XXXXXX)
LOOP=""
OURS_PID=""
REF_PID=""
YARD_PID=""

cleanup() {
    local pid
    for pid in "$OURS_PID" "$REF_PID" "$YARD_PID"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            # Give it a moment to remove its socket, then make sure.
            for _ in 1 2 3 4 5 6 7 8 9 10; do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.2
            done
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [ -n "$LOOP" ]; then
        losetup -d "$LOOP" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Sparse backing file; the loop driver never touches it for SG_IO.
truncate -s 64M "$WORK/disk.img"
if [ -n "${BENCH_DEVICE:-}" ]; then
    DEVICE=$BENCH_DEVICE
    echo "== descriptor $DEVICE"
else
    LOOP=$(losetup -f --show "$WORK/disk.img")
    DEVICE=$LOOP
    echo "== loop device $LOOP"
fi

# start_server NAME SOCKET COMMAND...: starts a server in the background
# (output in $WORK/NAME.log); prints its pid once the socket exists.
start_server() {
    local name=$1 socket=$2
    shift 2
    "$@" >"$WORK/$name.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$WORK/$name.log" >&2
            die "$name exited during start-up"
        fi
        [ -S "$socket" ] && break
        sleep 0.1
    done
    if [ ! -S "$socket" ]; then
        kill -KILL "$pid" 2>/dev/null || true
        die "$name never created $socket"
    fi
    echo "$pid"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

OURS_SOCK=$WORK/ours.sock
REF_SOCK=$WORK/qemu.sock
YARD_SOCK=$WORK/yardstick.sock
# shellcheck disable=SC2086 # OURS_ARGS is a list of words on purpose
OURS_PID=$(start_server ours "$OURS_SOCK" "$OURS" -k "$OURS_SOCK" -f "$WORK/ours.pid" $OURS_ARGS)
REF_PID=$(start_server qemu "$REF_SOCK" "$REFERENCE" -k "$REF_SOCK" -f "$WORK/qemu.pid")
# shellcheck disable=SC2086 # YARD_ARGS is empty or one word
YARD_PID=$(start_server yardstick "$YARD_SOCK" "$BENCH" yardstick -k "$YARD_SOCK" $YARD_ARGS)
sleep 1
OURS_IDLE_RSS=$(rss_kib "$OURS_PID")
REF_IDLE_RSS=$(rss_kib "$REF_PID")
YARD_IDLE_RSS=$(rss_kib "$YARD_PID")
echo "== idle RSS: ours ${OURS_IDLE_RSS} KiB, qemu-pr-helper ${REF_IDLE_RSS} KiB, yardstick ${YARD_IDLE_RSS} KiB"

echo "== $IDLE idle connections"
idle_per_conn() {
    "$BENCH" idle -k "$1" -p "$2" -c "$IDLE" --json |
        sed -n 's/.*"rss_per_connection_bytes":\([-0-9.e+]*\).*/\1/p'
}
OURS_PER_CONN=$(idle_per_conn "$OURS_SOCK" "$OURS_PID")
REF_PER_CONN=$(idle_per_conn "$REF_SOCK" "$REF_PID")
YARD_PER_CONN=$(idle_per_conn "$YARD_SOCK" "$YARD_PID")
printf '   ours %.0f, qemu-pr-helper %.0f, yardstick %.0f bytes/connection\n' \
    "$OURS_PER_CONN" "$REF_PER_CONN" "$YARD_PER_CONN"

# Numbers from pr-bench's --summary-out file, whose lines are
# "target NAME OPS P50 P99 CPU" and "ratio NAME BASELINE THROUGHPUT P50 P99 CPU"
# (COLUMN counts words from 1):
#   target_field FILE NAME COLUMN      a target's own figure;
#   ratio_field FILE BASELINE COLUMN   ours against BASELINE.
target_field() { awk -v n="$2" -v c="$3" '$1 == "target" && $2 == n { print $c }' "$1"; }
ratio_field() { awk -v b="$2" -v c="$3" '$1 == "ratio" && $2 == "ours" && $3 == b { print $c }' "$1"; }

shape_flag() { [ "$1" = per-conn ] && echo --file-per-connection; true; }

for conns in $CONNS; do
    for shape in $SHAPES; do
        echo "== closed loop, $conns connection(s), $shape file, $ROUNDS rounds x ${DURATION}s per server"
        json=$WORK/load-$conns-$shape.json
        # shellcheck disable=SC2046 # shape_flag prints nothing or one word
        "$BENCH" load -t "ours=$OURS_SOCK" -t "qemu=$REF_SOCK" -t "yardstick=$YARD_SOCK" \
            -p "ours=$OURS_PID" -p "qemu=$REF_PID" -p "yardstick=$YARD_PID" -c "$conns" \
            -d "$DURATION" -w "$WARMUP" -r "$ROUNDS" -D "$DEVICE" --subject ours \
            $(shape_flag "$shape") \
            --json-out "$json" --summary-out "$WORK/summary-$conns-$shape.txt"
        if [ -n "${BENCH_JSON_DIR:-}" ]; then
            mkdir -p "$BENCH_JSON_DIR"
            cp "$json" "$BENCH_JSON_DIR/"
        fi
    done
done

# The hung-device row. No device on this host can be made to hang (it has no
# SCSI; SG_IO on a loop device fails at once), so a hang is injected the way
# the tests inject one: pr-helper-slow is our daemon with a test backend that
# holds every command on one file (hung.img) for HUNG_MS, and answers every
# other at once. Four connections drive the loop device in closed loop, first
# alone, then while a fifth connection keeps a command stuck on hung.img; the
# ratio is the four's throughput and p99 with the hang against without. Only
# our daemon is measured: neither reference can be made to hang here.
HUNG_MS=${BENCH_HUNG_MS:-3000}
SLOW=$TARGET_DIR/release/pr-helper-slow
hung_device_row() {
    if [ ! -x "$SLOW" ]; then
        echo "hung device:         not measured ($SLOW missing: cargo build --release -p pr-helper --bin pr-helper-slow)"
        return
    fi
    local sock=$WORK/slow.sock pid out1 out2 stuck
    truncate -s 1M "$WORK/hung.img"
    pid=$(PR_HELPER_TEST_SLOW_FILE=$WORK/hung.img PR_HELPER_TEST_LATENCY_MS=$HUNG_MS \
        start_server slow "$sock" "$SLOW" -k "$sock" -f "$WORK/slow.pid")
    out1=$WORK/hung-before.txt out2=$WORK/hung-during.txt
    "$BENCH" load -t "ours=$sock" -c 4 -d "$DURATION" -w "$WARMUP" -r 1 -D "$DEVICE" \
        --summary-out "$out1" >/dev/null
    # The stuck connection: closed loop on hung.img, every command held HUNG_MS.
    "$BENCH" load -t "stuck=$sock" -c 1 -d "$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { print d + w + 2 }')" -w 0 -r 1 \
        -D "$WORK/hung.img" >/dev/null 2>&1 &
    stuck=$!
    sleep 0.5
    "$BENCH" load -t "ours=$sock" -c 4 -d "$DURATION" -w "$WARMUP" -r 1 -D "$DEVICE" \
        --summary-out "$out2" >/dev/null
    wait "$stuck" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local ops1 ops2 p991 p992
    ops1=$(target_field "$out1" ours 3) ops2=$(target_field "$out2" ours 3)
    p991=$(target_field "$out1" ours 5) p992=$(target_field "$out2" ours 5)
    printf 'hung device:          others with / without one connection stuck %s ms per command (ours, injected hang): throughput %sx (%.0f vs %.0f ops/s), p99 %sx (%.1f vs %.1f us)\n' \
        "$HUNG_MS" "$(ratio "$ops2" "$ops1")" "$ops2" "$ops1" "$(ratio "$p992" "$p991")" "$p992" "$p991"
}

# The stuck-file-system row: a peer sends descriptors of a file on a FUSE file
# system whose server stopped answering (pr-bench stuck-fuse), so that `stat`
# and `close` of them would wait forever; four other connections drive the
# loop device first alone, then while that peer runs. Our daemon only (the
# others would hold a thread, or their only thread, in the first such close).
stuck_fs_row() {
    local out1=$WORK/stuckfs-before.txt out2=$WORK/stuckfs-during.txt stuck
    "$BENCH" load -t "ours=$OURS_SOCK" -c 4 -d "$DURATION" -w "$WARMUP" -r 1 -D "$DEVICE" \
        --summary-out "$out1" >/dev/null
    "$BENCH" stuck-fuse -k "$OURS_SOCK" \
        -d "$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { print d + w + 2 }')" \
        >"$WORK/stuck-fuse.txt" 2>&1 &
    stuck=$!
    sleep 0.5
    "$BENCH" load -t "ours=$OURS_SOCK" -c 4 -d "$DURATION" -w "$WARMUP" -r 1 -D "$DEVICE" \
        --summary-out "$out2" >/dev/null
    if ! wait "$stuck"; then
        echo "stuck file system:    not measured ($(tail -n 1 "$WORK/stuck-fuse.txt"))"
        return
    fi
    local ops1 ops2 p991 p992
    ops1=$(target_field "$out1" ours 3) ops2=$(target_field "$out2" ours 3)
    p991=$(target_field "$out1" ours 5) p992=$(target_field "$out2" ours 5)
    printf 'stuck file system:    others with / without a peer sending descriptors of a FUSE file that never answers (%s): throughput %sx (%.0f vs %.0f ops/s), p99 %sx (%.1f vs %.1f us)\n' \
        "$(tail -n 1 "$WORK/stuck-fuse.txt" | sed 's/^stuck-fuse: //')" \
        "$(ratio "$ops2" "$ops1")" "$ops2" "$ops1" "$(ratio "$p992" "$p991")" "$p992" "$p991"
}

# verdict VALUE OP LIMIT: "meets" or "MISSES" (awk does the float compare).
verdict() {
    if awk -v v="$1" -v l="$3" "BEGIN { exit !(v $2 l) }"; then echo "meets"; else echo "MISSES"; fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }
two() { awk -v v="$1" 'BEGIN { printf "%.2f", v }'; }

# round_ratios FILE BASELINE COLUMN: ours / BASELINE in every round, one per
# line, from the "round NAME INDEX OPS P50 P99" lines (COLUMN 4 ops/s, 5 p50,
# 6 p99).
round_ratios() {
    awk -v b="$2" -v c="$3" '$1 == "round" && $2 == "ours" { o[$3] = $c }
        $1 == "round" && $2 == b { t[$3] = $c }
        END { for (i in o) if (t[i] > 0) printf "%.4f\n", o[i] / t[i] }' "$1"
}
# median / lowest / highest of numbers on standard input.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
lowest() { sort -g | head -n 1; }
highest() { sort -g | tail -n 1; }

# target LABEL VALUE OP LIMIT: one line of the targets table.
target() {
    printf '  %-44s %7sx  [%s %s]  %s\n' "$1" "$(two "$2")" "$3" "$4" "$(verdict "$2" "$3" "$4")"
}
# info LABEL VALUE: a line for orientation, no target.
info() { printf '  %-44s %7sx\n' "$1" "$(two "$2")"; }

echo
echo "== targets (issue 20): median over $ROUNDS interleaved rounds and the worst round; p99 over all rounds' samples"
for conns in $CONNS; do
    for shape in $SHAPES; do
        s=$WORK/summary-$conns-$shape.txt
        echo "$conns connection(s), $shape file:"
        printf '  ops/s: ours %.0f, qemu-pr-helper %.0f, yardstick %.0f; p50/p99 us: ours %s/%s, qemu-pr-helper %s/%s, yardstick %s/%s\n' \
            "$(target_field "$s" ours 3)" "$(target_field "$s" qemu 3)" "$(target_field "$s" yardstick 3)" \
            "$(target_field "$s" ours 4)" "$(target_field "$s" ours 5)" \
            "$(target_field "$s" qemu 4)" "$(target_field "$s" qemu 5)" \
            "$(target_field "$s" yardstick 4)" "$(target_field "$s" yardstick 5)"
        printf '  CPU us/request: ours %s, qemu-pr-helper %s, yardstick%s %s; throughput / yardstick by round: %s\n' \
            "$(target_field "$s" ours 6)" "$(target_field "$s" qemu 6)" "${YARD_ARGS:+ (identity check)}" \
            "$(target_field "$s" yardstick 6)" "$(round_ratios "$s" yardstick 4 | tr '\n' ' ')"
        if [ "$conns" -le 1 ]; then
            target "throughput / qemu, median" "$(round_ratios "$s" qemu 4 | median)" '>=' 1
            target "throughput / qemu, worst round" "$(round_ratios "$s" qemu 4 | lowest)" '>=' 1
            target "p50 / qemu" "$(ratio_field "$s" qemu 5)" '<' 1
            target "p99 / qemu" "$(ratio_field "$s" qemu 6)" '<' 1
            info "throughput / yardstick, median" "$(round_ratios "$s" yardstick 4 | median)"
            info "p99 / yardstick" "$(ratio_field "$s" yardstick 6)"
        else
            target "throughput / yardstick, median" "$(round_ratios "$s" yardstick 4 | median)" '>=' 0.95
            target "throughput / yardstick, worst round" "$(round_ratios "$s" yardstick 4 | lowest)" '>=' 0.85
            target "p99 / yardstick" "$(ratio_field "$s" yardstick 6)" '<=' 1.2
            info "p99 / yardstick, worst round" "$(round_ratios "$s" yardstick 6 | highest)"
            info "throughput / qemu, median" "$(round_ratios "$s" qemu 4 | median)"
            info "p99 / qemu" "$(ratio_field "$s" qemu 6)"
        fi
        info "CPU/request / yardstick" "$(ratio_field "$s" yardstick 7)"
    done
done
hung_device_row
stuck_fs_row
rss_ratio=$(ratio "$OURS_IDLE_RSS" "$REF_IDLE_RSS")
conn_ratio=$(ratio "$OURS_PER_CONN" "$REF_PER_CONN")
printf 'idle RSS:            %5sx [<= 1]  %s  (ours %s KiB, qemu-pr-helper %s KiB, yardstick %s KiB)\n' \
    "$rss_ratio" "$(verdict "$rss_ratio" '<=' 1)" "$OURS_IDLE_RSS" "$REF_IDLE_RSS" "$YARD_IDLE_RSS"
printf 'RSS per idle conn:   %5sx [<= 1]  %s  (ours %.0f B, qemu-pr-helper %.0f B, yardstick %.0f B; %s connections)\n' \
    "$conn_ratio" "$(verdict "$conn_ratio" '<=' 1)" "$OURS_PER_CONN" "$REF_PER_CONN" "$YARD_PER_CONN" "$IDLE"
