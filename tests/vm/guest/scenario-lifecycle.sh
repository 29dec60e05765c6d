# Lifecycle on the block device /dev/sda (initiator A): read keys (none),
# register, read keys (the key, generation advanced), reserve WE-RO, read
# reservation, report capabilities, read full status, release, clear; all
# through prtool -> pr-helper, each result cross-checked with sg_persist.
. /vm/lib.sh
. /vm/lifecycle-steps.sh

start_our_helper_for_prtool || exit 0
lifecycle_steps /dev/sda /dev/sg0 5001405000000a01

# The daemon that just served every step runs under its seccomp filter
# (default --seccomp=kill) with NO_NEW_PRIVS, and under Landlock where this
# kernel has it (the daemon logs one warning line when it has not).
status=/proc/$OUR_HELPER_PID/status
seccomp=$(sed -n 's/^Seccomp:[[:space:]]*//p' "$status")
no_new_privs=$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' "$status")
if [ "$seccomp" = 2 ] && [ "$no_new_privs" = 1 ]; then
    pass daemon-seccomp-filter "Seccomp=$seccomp NoNewPrivs=$no_new_privs"
else
    fail daemon-seccomp-filter "Seccomp=$seccomp NoNewPrivs=$no_new_privs"
fi
if grep -q "has no Landlock" "$PR_SOCKET.log"; then
    vm_line "VMINFO $SCENARIO landlock this kernel has no Landlock: the daemon ran without it"
else
    pass daemon-landlock "no 'has no Landlock' warning in the daemon's log"
fi
stop_helper "$OUR_HELPER_PID"
