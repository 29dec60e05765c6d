# SIGTERM while clients keep sending: pr-sigterm-probe starts the helper,
# runs 8 clients sending READ KEYS with a /dev/sda descriptor, sends SIGTERM
# after 400 replies and accounts for every request. Every request whose CDB
# was fully sent before the signal must be answered; the daemon must exit 0
# and remove its socket and pid file. Debian's qemu-pr-helper is measured
# the same way for contrast (reported, not checked).
. /vm/lib.sh

for tool in pr-helper pr-sigterm-probe; do
    if ! have_binary "$tool"; then
        fail binaries "$tool is missing from the initramfs (cargo build --release -p pr-helper -p vm-tests)"
        exit 0
    fi
done

# field NAME LINE: the value of NAME=value in the probe's line.
field() {
    echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

probe() { # WHICH HELPER_COMMAND...
    local which=$1
    shift
    local socket=$WORK/sigterm-$which.sock
    pr-sigterm-probe --socket "$socket" --device /dev/sda --clients 8 \
        --replies-before-signal 400 --pidfile "$socket.pid" \
        -- "$@" -k "$socket" -f "$socket.pid" 2>"$WORK/sigterm-$which.err"
}

line=$(probe ours pr-helper)
if [ -z "$line" ]; then
    fail probe "pr-sigterm-probe failed: $(tr '\n' ' ' <"$WORK/sigterm-ours.err" | cut -c1-300)"
    exit 0
fi
info ours "$line"
expect_eq no-transport-failure-before-signal 0 "$(field failures_before "$line")"
expect_eq every-command-sent-before-signal-answered 0 "$(field lost_before "$line")"
sent=$(field sent_before "$line")
if [ "${sent:-0}" -gt 0 ]; then
    pass commands-sent-before-signal "$sent"
else
    fail commands-sent-before-signal "none"
fi
expect_eq replies-all-good 0 "$(field not_good "$line")"
expect_eq exit-status 0 "$(field exit "$line")"
expect_eq socket-removed yes "$(field socket_removed "$line")"
expect_eq pidfile-removed yes "$(field pidfile_removed "$line")"

# Cross-check: the device still answers directly, with no reservation left.
expect_eq device-answers-directly-after "keys=" "$(sg_keys /dev/sda | sed 's/gen=[^ ]* //')"

line=$(probe qemu qemu-pr-helper)
info qemu-pr-helper "${line:-probe failed: $(cat "$WORK/sigterm-qemu.err")}"
