#!/usr/bin/env bash
# Benchmark our pr-helper against Debian's qemu-pr-helper, side by side.
#
# Both daemons get a loop-device descriptor with every PR IN READ KEYS:
# both issue SG_IO, the loop driver refuses it (EINVAL), so what is measured
# is the cost of the protocol and the dispatch, not of a device.
#
# Measures, in one run:
#   - idle RSS of each freshly started daemon (/proc/PID/status VmRSS);
#   - RSS per idle connection, holding BENCH_IDLE (500) negotiated connections;
#   - closed-loop throughput and p50/p99 latency at 4 and 16 connections,
#     both daemons interleaved in rounds (pr-bench alternates the order),
#     and each daemon's CPU time per request (/proc/PID/stat).
# Then prints the ratios against issue 4's targets.
#
# Needs root (losetup), cargo, /usr/bin/qemu-pr-helper. Environment knobs:
#   BENCH_DURATION  measured seconds per target per round   (default 5)
#   BENCH_WARMUP    warm-up seconds before each measurement (default 1)
#   BENCH_ROUNDS    rounds per connection count             (default 2)
#   BENCH_CONNS     connection counts                       (default "4 16")
#   BENCH_IDLE      idle connections for the RSS test       (default 500)
#   BENCH_DEVICE    descriptor to send instead of the loop device, e.g. a
#                   regular file (then we answer without any ioctl while
#                   qemu-pr-helper still tries SG_IO) or /dev/null
#   BENCH_JSON_DIR  if set, pr-bench JSON results are written there
#   OURS            our daemon binary (default: the release build)
#   OURS_ARGS       extra arguments for our daemon
#   REFERENCE       the reference daemon (default /usr/bin/qemu-pr-helper)
#   NO_BUILD=1      skip `cargo build --release`
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-1}
ROUNDS=${BENCH_ROUNDS:-2}
CONNS=${BENCH_CONNS:-"4 16"}
IDLE=${BENCH_IDLE:-500}
REFERENCE=${REFERENCE:-/usr/bin/qemu-pr-helper}
OURS_ARGS=${OURS_ARGS:-}

die() { echo "bench.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (losetup, and both helpers want CAP_SYS_RAWIO)"
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

cleanup() {
    local pid
    for pid in "$OURS_PID" "$REF_PID"; do
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

# Starts a daemon in the background; prints its pid once the socket answers.
start_daemon() {
    local name=$1 binary=$2 socket=$3
    shift 3
    "$binary" -k "$socket" -f "$WORK/$name.pid" "$@" >"$WORK/$name.log" 2>&1 &
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
# shellcheck disable=SC2086 # OURS_ARGS is a list of words on purpose
OURS_PID=$(start_daemon ours "$OURS" "$OURS_SOCK" $OURS_ARGS)
REF_PID=$(start_daemon qemu "$REFERENCE" "$REF_SOCK")
sleep 1
OURS_IDLE_RSS=$(rss_kib "$OURS_PID")
REF_IDLE_RSS=$(rss_kib "$REF_PID")
echo "== idle RSS: ours ${OURS_IDLE_RSS} KiB, qemu-pr-helper ${REF_IDLE_RSS} KiB"

echo "== $IDLE idle connections"
idle_per_conn() {
    "$BENCH" idle -k "$1" -p "$2" -c "$IDLE" --json |
        sed -n 's/.*"rss_per_connection_bytes":\([-0-9.e+]*\).*/\1/p'
}
OURS_PER_CONN=$(idle_per_conn "$OURS_SOCK" "$OURS_PID")
REF_PER_CONN=$(idle_per_conn "$REF_SOCK" "$REF_PID")
printf '   ours %.0f bytes/connection, qemu-pr-helper %.0f bytes/connection\n' \
    "$OURS_PER_CONN" "$REF_PER_CONN"

# First number following "KEY": in a pr-bench JSON document (ratios are
# printed last, so the last match is the ratio block's).
json_number() { sed -n "s/.*\"$2\": *\([-0-9.eE+a-zNA]*\).*/\1/p" "$1" | tail -n 1; }

declare -A TPUT_RATIO P99_RATIO CPU_RATIO
for conns in $CONNS; do
    echo "== closed loop, $conns connections, $ROUNDS rounds x ${DURATION}s per daemon"
    json=$WORK/load-$conns.json
    "$BENCH" load -t "ours=$OURS_SOCK" -t "qemu=$REF_SOCK" \
        -p "ours=$OURS_PID" -p "qemu=$REF_PID" -c "$conns" \
        -d "$DURATION" -w "$WARMUP" -r "$ROUNDS" -D "$DEVICE" --json-out "$json"
    TPUT_RATIO[$conns]=$(json_number "$json" throughput)
    P99_RATIO[$conns]=$(json_number "$json" p99)
    CPU_RATIO[$conns]=$(json_number "$json" server_cpu)
    if [ -n "${BENCH_JSON_DIR:-}" ]; then
        mkdir -p "$BENCH_JSON_DIR"
        cp "$json" "$BENCH_JSON_DIR/"
    fi
done

# verdict VALUE OP LIMIT: "meets" or "MISSES" (awk does the float compare).
verdict() {
    if awk -v v="$1" -v l="$3" "BEGIN { exit !(v $2 l) }"; then echo "meets"; else echo "MISSES"; fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }

echo
echo "== summary (ours / qemu-pr-helper; target in brackets)"
for conns in $CONNS; do
    t=$(printf '%.2f' "${TPUT_RATIO[$conns]}")
    p=$(printf '%.2f' "${P99_RATIO[$conns]}")
    printf '%2s connections: throughput  %5sx [>= 2]  %s\n' "$conns" "$t" "$(verdict "$t" '>=' 2)"
    printf '%2s connections: p99         %5sx [<= 1]  %s\n' "$conns" "$p" "$(verdict "$p" '<=' 1)"
    printf '%2s connections: CPU/request %5sx (for orientation: helper CPU time per request)\n' \
        "$conns" "$(printf '%.2f' "${CPU_RATIO[$conns]}")"
done
rss_ratio=$(ratio "$OURS_IDLE_RSS" "$REF_IDLE_RSS")
conn_ratio=$(ratio "$OURS_PER_CONN" "$REF_PER_CONN")
printf 'idle RSS:            %5sx [<= 1]  %s  (%s KiB vs %s KiB)\n' \
    "$rss_ratio" "$(verdict "$rss_ratio" '<=' 1)" "$OURS_IDLE_RSS" "$REF_IDLE_RSS"
printf 'RSS per idle conn:   %5sx [<= 1]  %s  (%.0f B vs %.0f B, %s connections)\n' \
    "$conn_ratio" "$(verdict "$conn_ratio" '<=' 1)" "$OURS_PER_CONN" "$REF_PER_CONN" "$IDLE"
