# Shared helpers of the guest scripts (sourced, busybox sh).
#
# Result lines, written to $VM_RESULTS (the second serial port, read by the
# host) and echoed to the console:
#   VMCHECK <scenario> <check> PASS|FAIL <detail...>   one per check
#   VMINFO  <scenario> <key> <value...>                measurements, reported only
#   VMSTART <scenario> / VMEND <scenario> exit=<n>     scenario boundaries
#   VMDONE                                             all scenarios ran

VM_RESULTS=${VM_RESULTS:-/dev/ttyS1}
SCENARIO=${SCENARIO:-$(basename "$0" .sh | sed 's/^scenario-//')}
WORK=/tmp/vm-work
mkdir -p "$WORK"

vm_line() {
    echo "$*" >"$VM_RESULTS"
    echo "$*"
}

scenario_name() {
    basename "$1" .sh | sed 's/^scenario-//'
}

pass() { # check detail...
    local check=$1
    shift
    vm_line "VMCHECK $SCENARIO $check PASS $*"
}

fail() { # check detail...
    local check=$1
    shift
    vm_line "VMCHECK $SCENARIO $check FAIL $*"
}

info() { # key value...
    local key=$1
    shift
    vm_line "VMINFO $SCENARIO $key $*"
}

# expect_eq CHECK EXPECTED ACTUAL
expect_eq() {
    if [ "$2" = "$3" ]; then
        pass "$1" "$3"
    else
        fail "$1" "expected '$2' got '$3'"
    fi
}

# expect_status CHECK EXPECTED_EXIT COMMAND...: runs COMMAND, compares its
# exit status; its output is kept in $WORK/out for later checks.
expect_status() {
    local check=$1 want=$2
    shift 2
    "$@" >"$WORK/out" 2>&1
    local got=$?
    if [ "$got" = "$want" ]; then
        pass "$check" "exit=$got"
    else
        fail "$check" "exit=$got want=$want: $* : $(tr '\n' ' ' <"$WORK/out" | cut -c1-300)"
    fi
}

# --- sg_persist, run directly on the device: the reference view ---------

# Prints "gen=0x.. keys=k1,k2" (keys lower-case hex, in device order).
sg_keys() {
    sg_persist -n --in --read-keys "$1" 2>&1 | awk '
        /PR generation=/ { sub(/.*PR generation=/, ""); sub(/,.*/, ""); gen = $0 }
        /^ +0x[0-9a-fA-F]+$/ { k = tolower($1); keys = keys (keys == "" ? "" : ",") k }
        END { printf "gen=%s keys=%s\n", gen, keys }'
}

# Prints "key=0x.. type=<words>" or "none".
sg_reservation() {
    sg_persist -n --in --read-reservation "$1" 2>&1 | awk '
        /NO reservation/ { none = 1 }
        /Key=/ { sub(/.*Key=/, ""); key = tolower($1) }
        /type:/ { sub(/.*type: */, ""); type = $0; gsub(/ +/, "_", type) }
        END { if (none || key == "") print "none"; else printf "key=%s type=%s\n", key, type }'
}

# Reads once on each path so that a pending unit attention (e.g.
# REGISTRATIONS PREEMPTED after another nexus acted) is consumed.
drain_unit_attentions() {
    for dev in /dev/sda /dev/sdb /dev/sdc /dev/sdd; do
        [ -b "$dev" ] || continue
        sg_persist -n --in --read-keys "$dev" >/dev/null 2>&1
    done
}

# Removes every registration and reservation on the LUN so that each
# scenario starts from a clean state (CLEAR acts on all I_T nexuses).
reset_reservations() {
    drain_unit_attentions
    sg_persist -n --out --register-ignore --param-sark=0x5eed /dev/sda >/dev/null 2>&1
    sg_persist -n --out --clear --param-rk=0x5eed /dev/sda >/dev/null 2>&1
    drain_unit_attentions
}

# --- helpers: daemons on sockets ------------------------------------------

# wait_for_path PATH: device nodes appear asynchronously (after a SCSI scan, an
# NVMe connect); up to 20 s.
wait_for_path() {
    tries=0
    while [ ! -e "$1" ]; do
        tries=$((tries + 1))
        if [ "$tries" -gt 200 ]; then
            echo "$1 did not appear" >&2
            return 1
        fi
        sleep 0.1
    done
}

have_binary() {
    command -v "$1" >/dev/null 2>&1
}

# wait_for_socket PATH: polls until PATH exists (the daemon is listening).
wait_for_socket() {
    local tries=0
    while [ ! -S "$1" ]; do
        tries=$((tries + 1))
        [ "$tries" -gt 300 ] && return 1
        sleep 0.1
    done
}

# start_helper NAME SOCKET: starts our pr-helper ("ours") or Debian's
# qemu-pr-helper ("qemu") in the foreground on SOCKET, in the background of
# this shell. Sets HELPER_PID. $OUR_HELPER_ARGS are added to ours (e.g.
# --no-multipath).
start_helper() {
    local which=$1 socket=$2
    rm -f "$socket" "$socket.pid"
    case $which in
        # shellcheck disable=SC2086 # OUR_HELPER_ARGS is a list of words
        ours) pr-helper -k "$socket" -f "$socket.pid" $OUR_HELPER_ARGS >"$socket.log" 2>&1 & ;;
        qemu) qemu-pr-helper -k "$socket" -f "$socket.pid" >"$socket.log" 2>&1 & ;;
    esac
    HELPER_PID=$!
    if ! wait_for_socket "$socket"; then
        echo "$which helper did not create $socket: $(cat "$socket.log")" >&2
        return 1
    fi
    # Ours binds its socket while still root and only then drops privileges and
    # confines itself: checks of its credentials wait for the line it logs once
    # all of that is done.
    if [ "$which" = ours ] && ! wait_for_log "$socket.log" ' serving '; then
        echo "our helper never logged that it is serving: $(cat "$socket.log")" >&2
        return 1
    fi
}

# wait_for_log FILE TEXT: waits up to 30 s for TEXT to appear in FILE.
wait_for_log() {
    local tries=0
    until grep -qF -- "$2" "$1" 2>/dev/null; do
        tries=$((tries + 1))
        [ "$tries" -gt 300 ] && return 1
        sleep 0.1
    done
}

stop_helper() { # PID
    kill "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

# --- helpers: prtool through our daemon -------------------------------------

# prt COMMAND [OPTIONS...] DEVICE: prtool through our pr-helper on $PR_SOCKET.
prt() {
    prtool --socket "$PR_SOCKET" "$@"
}

# start_our_helper_for_prtool: starts pr-helper on $PR_SOCKET, or reports
# why not and returns 1. Sets OUR_HELPER_PID.
start_our_helper_for_prtool() {
    PR_SOCKET=$WORK/$SCENARIO.sock
    for tool in pr-helper prtool; do
        if ! have_binary "$tool"; then
            fail binaries "$tool is missing from the initramfs (cargo build --release -p pr-helper -p prtool)"
            return 1
        fi
    done
    if ! start_helper ours "$PR_SOCKET"; then
        fail start-pr-helper "$(tr '\n' ' ' <"$PR_SOCKET.log" | cut -c1-300)"
        return 1
    fi
    OUR_HELPER_PID=$HELPER_PID
}

# show NAME: the last expect_status's output, line by line, as VMINFO lines.
show() {
    while IFS= read -r line; do
        info "$1" "$line"
    done <"$WORK/out"
}

# out_has CHECK REGEX / out_lacks CHECK REGEX: the output of the last
# expect_status (case-insensitive extended regex).
out_has() {
    if grep -qiE "$2" "$WORK/out"; then
        pass "$1" "output matches /$2/"
    else
        fail "$1" "output lacks /$2/: $(tr '\n' ' ' <"$WORK/out" | cut -c1-300)"
    fi
}

out_lacks() {
    if grep -qiE "$2" "$WORK/out"; then
        fail "$1" "output matches /$2/: $(tr '\n' ' ' <"$WORK/out" | cut -c1-300)"
    else
        pass "$1" "output has no /$2/"
    fi
}

# expect_conflict CHECK COMMAND...: the command must fail with RESERVATION
# CONFLICT: prtool's exit status 3 and the words in its message.
expect_conflict() {
    local check=$1
    shift
    "$@" >"$WORK/out" 2>&1
    local got=$?
    if [ "$got" = 3 ] && grep -qi 'reservation conflict' "$WORK/out"; then
        pass "$check" "exit=$got reservation conflict"
    else
        fail "$check" "exit=$got, want 3 (reservation conflict): $(tr '\n' ' ' <"$WORK/out" | cut -c1-300)"
    fi
}

# pr_facts: reduces sg_persist's or prtool's PR IN text (stdin) to the
# facts both print the same way: generation, keys, reservation key,
# relative port, holder, initiator SAS address. One fact per line.
pr_facts() {
    sed -n \
        -e 's/.*PR generation=\(0x[0-9a-fA-F]*\).*/generation=\1/p' \
        -e 's/^ *\(0x[0-9a-fA-F]*\) *$/key \1/p' \
        -e 's/^ *Key=\(0x[0-9a-fA-F]*\).*/Key=\1/p' \
        -e 's/^ *\(Relative port address: .*\)/\1/p' \
        -e 's/^ *<< Reservation holder >>.*/holder/p' \
        -e 's/^ *not reservation holder.*/not holder/p' \
        -e 's/^ *SAS address: \(.*\)/sas \1/p' |
        tr '\n' ';'
}

# capability_facts: the REPORT CAPABILITIES bits by their abbreviations
# and the type mask bits in order, from either tool's text (stdin).
capability_facts() {
    awk '
        /Type mask/ { in_mask = 1; next }
        in_mask && /: [01]$/ { mask = mask $NF; next }
        /\([A-Z_]+\) *: [01]$/ {
            match($0, /\([A-Z_]+\)/); name = substr($0, RSTART + 1, RLENGTH - 2)
            bits = bits name "=" $NF " "
        }
        /Allow Commands: / { bits = bits "allow=" $NF " " }
        END { printf "%smask=%s\n", bits, mask }'
}

# expect_same_as_sg CHECK PRTOOL_COMMAND SG_PERSIST_OPTION DEVICE [SG_DEVICE]:
# runs prtool's PR IN command on DEVICE (through our helper) and sg_persist
# directly on SG_DEVICE (DEVICE unless given: a multipath map's path, say),
# and compares the facts both print.
expect_same_as_sg() {
    local check=$1 command=$2 option=$3 dev=$4 sg_dev=${5:-$4}
    prt "$command" "$dev" >"$WORK/prt.out" 2>&1
    sg_persist -n --in "$option" "$sg_dev" >"$WORK/sg.out" 2>&1
    local theirs ours
    if [ "$command" = report-capabilities ]; then
        theirs=$(capability_facts <"$WORK/sg.out")
        ours=$(capability_facts <"$WORK/prt.out")
    else
        theirs=$(pr_facts <"$WORK/sg.out")
        ours=$(pr_facts <"$WORK/prt.out")
    fi
    if [ -n "$theirs" ] && [ "$theirs" = "$ours" ]; then
        pass "$check" "$ours"
    else
        fail "$check" "sg_persist $sg_dev: '$theirs' prtool $dev: '$ours'"
    fi
}

# sg_keys_only DEV: "keys=..." without the generation.
sg_keys_only() {
    sg_keys "$1" | sed 's/^gen=[^ ]* //'
}

# sg_generation DEV: the PR generation in decimal.
sg_generation() {
    printf '%d\n' "$(sg_keys "$1" | sed 's/^gen=\([^ ]*\) .*/\1/')"
}

# sg_full_status DEV: one line per registration, in device order:
#   key=0x.. port=<relative target port> sas=<initiator SAS address> holder=yes|no
sg_full_status() {
    sg_persist -n --in --read-full-status "$1" 2>&1 | awk '
        function flush() {
            if (key != "") printf "key=%s port=%s sas=%s holder=%s\n", key, port, sas, holder
        }
        /Key=/ { flush(); sub(/.*Key=/, ""); key = tolower($1); port = ""; sas = ""; holder = "no" }
        /Relative port address:/ { port = tolower($NF) }
        /SAS address:/ { sas = tolower($NF); sub(/^0x/, "", sas) }
        /Reservation holder/ { holder = "yes" }
        END { flush() }'
}
