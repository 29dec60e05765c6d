# The sandbox on the guest's kernel, with the multipath backend on: the
# confinement probe (pr-helper-probe, the real daemon whose backend attempts
# one refused operation after confinement; crates/pr-helper/tests/confinement.rs
# runs the same cases on the host) in kill mode, in trap mode, and without the
# sandbox, where the same operation must succeed.
. /vm/lib.sh

if ! have_binary pr-helper-probe || ! have_binary prtool || ! have_binary pr-helper; then
    fail binaries "pr-helper-probe, prtool or pr-helper is missing from the initramfs"
    exit 0
fi
[ -c /dev/mapper/control ] || fail device-mapper "no /dev/mapper/control: the multipath backend would be off"

# A root-owned listening stream socket for the connect case: our own helper's.
LISTEN=$WORK/confinement-listen.sock
start_helper ours "$LISTEN" || { fail listener "$(cat "$LISTEN.log")"; exit 0; }
LISTENER_PID=$HELPER_PID

# run_probe CASE MODE TARGET: starts the probe, sends it one command (READ
# KEYS on /dev/sda), waits for it to die when MODE is kill, sets RESULT (the
# result file) and STATUS (the probe's exit status, or "running").
run_probe() {
    local case=$1 mode=$2 target=$3 socket=$WORK/probe.sock
    rm -f "$socket" "$WORK/probe.result"
    case $mode in
        kill) args=--seccomp=kill ;;
        trap) args=--seccomp=trap ;;
        none) args="--seccomp=none --no-landlock" ;;
    esac
    # shellcheck disable=SC2086 # args is a list of words
    PR_HELPER_PROBE_CASE=$case PR_HELPER_PROBE_RESULT=$WORK/probe.result \
        PR_HELPER_PROBE_TARGET=$target pr-helper-probe -k "$socket" $args >"$socket.log" 2>&1 &
    local pid=$!
    wait_for_socket "$socket" && wait_for_log "$socket.log" ' serving '
    CAPS=$(awk '/^CapPrm/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
    prtool --socket "$socket" read-keys /dev/sda >/dev/null 2>&1
    # Killed, or replaced by the exec: gone by now or soon.
    local tries=0
    STATUS=running
    while [ "$tries" -lt 50 ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"
            STATUS=$?
            break
        fi
        case $(cat "$WORK/probe.result" 2>/dev/null) in *result*) break ;; esac
        tries=$((tries + 1))
        sleep 0.1
    done
    if [ "$STATUS" = running ]; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    RESULT=$(tr '\n' ' ' <"$WORK/probe.result" 2>/dev/null)
    LOG=$(tr '\n' ' ' <"$socket.log" | cut -c1-300)
}

# check CASE TARGET KILL TRAP NONE: each expectation is "sigsys", "errno N",
# "ok" or "executed".
check() {
    local case=$1 target=$2
    shift 2
    for mode in kill trap none; do
        want=$1
        shift
        run_probe "$case" "$mode" "$target"
        case $want in
            sigsys) ok=$([ "$STATUS" = 159 ] && [ "$RESULT" = "attempt $case " ] && echo y) ;;
            executed) ok=$([ "$STATUS" = 0 ] && [ "$RESULT" = "attempt $case executed " ] && echo y) ;;
            *) ok=$([ "$RESULT" = "attempt $case result $case $want " ] && echo y) ;;
        esac
        if [ -n "$ok" ]; then
            pass "$case-$mode" "$want"
        else
            fail "$case-$mode" "expected $want; status $STATUS; result '$RESULT'; log $LOG"
        fi
    done
}

ENOSYS="errno 38"
check thread "" ok ok ok
# Multipath on: CAP_SYS_ADMIN permitted beside CAP_SYS_RAWIO, so the filter
# and the ruleset tested below are the multipath ones.
run_probe thread trap ""
expect_eq multipath-backend-on 0000000000220000 "$CAPS"
check clone-newuser "" sigsys "$ENOSYS" ok
check clone3 "" "$ENOSYS" "$ENOSYS" ok
check unshare "" sigsys "$ENOSYS" ok
check socket-unix-stream "" sigsys "$ENOSYS" ok
check socket-inet "" sigsys "$ENOSYS" ok
check socket-netlink-route "" sigsys "$ENOSYS" ok
check connect "$LISTEN" sigsys "$ENOSYS" ok
check execve "" sigsys "$ENOSYS" executed
check ptrace "" sigsys "$ENOSYS" ok
# A disk opened for writing: Landlock refuses it (EACCES), the multipath rules
# notwithstanding (read-only under /dev, write only on /dev/mapper/control). A
# kernel without Landlock lets it through, and the daemon says so.
run_probe thread kill ""
if echo "$LOG" | grep -q "has no Landlock"; then
    info landlock "not enforced by this kernel: the disk-write case expects success"
    check open-disk-write /dev/sdb ok ok ok
else
    info landlock "enforced"
    check open-disk-write /dev/sdb "errno 13" "errno 13" ok
fi
stop_helper "$LISTENER_PID"
