#!/usr/bin/env bash
# The main job: build the daemon, start it with the software SCSI target on image files,
# show prtool registering, reserving and reading keys through it, then keep serving
# until Ctrl-C (or exit after the demo with --demo-only).
#
# Everything lives under ./run in the working tree: the socket, the pid file, the log,
# the emulated target's state directory and a 64 MiB demo image.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
demo_only=false
[ "${1:-}" = "--demo-only" ] && demo_only=true

"$repo/scripts/setup.sh"
cargo build --release --quiet -p pr-helper -p prtool

bin="${CARGO_TARGET_DIR:-$repo/target}/release"
run="$repo/run"
sock="$run/pr-helper.sock"
image="$run/demo-disk.img"
mkdir -p "$run/state"
[ -f "$image" ] || truncate -s 64M "$image"

# Every prtool below runs in this script's session, so the software target sees them as
# one initiator; `setsid` gives a command a session, i.e. an initiator, of its own.
"$bin/pr-helper" -k "$sock" -f "$run/pr-helper.pid" \
    --emulated-state-dir "$run/state" --emulated-initiator session 2>>"$run/pr-helper.log" &
daemon=$!
cleanup() { kill -TERM "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "run: pr-helper did not create $sock" >&2; exit 1; }

step() { printf '\n$ prtool %s\n' "$*"; "$bin/prtool" -k "$sock" "$@"; }
step read-keys "$image"
step register --sa-key 0xabc123 "$image"
step read-keys "$image"
step reserve --key 0xabc123 --type we-ro "$image"
step read-reservation "$image"
printf '\n$ setsid prtool register --sa-key 0x5eed   # a second initiator\n'
setsid -w "$bin/prtool" -k "$sock" register --sa-key 0x5eed "$image"
printf '\n$ setsid prtool reserve --key 0x5eed --type we-ro   # conflicts with the holder\n'
setsid -w "$bin/prtool" -k "$sock" reserve --key 0x5eed --type we-ro "$image" || echo "(exit status $?: reservation conflict)"
step read-full-status "$image"
step release --key 0xabc123 --type we-ro "$image"
step clear --key 0xabc123 "$image"
printf '\nThe daemon logged one line per connection opened and closed (%s):\n' "$run/pr-helper.log"
tail -n 4 "$run/pr-helper.log"

if $demo_only; then exit 0; fi
printf '\npr-helper keeps serving on %s (pid %s, log %s); Ctrl-C stops it.\n' \
    "$sock" "$daemon" "$run/pr-helper.log"
wait "$daemon"
