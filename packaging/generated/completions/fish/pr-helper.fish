complete -c pr-helper -s f -l pidfile -d 'Write the daemon\'s pid to PATH and hold an exclusive lock on it (default path with -d: /var/run/qemu-pr-helper.pid)' -r -F
complete -c pr-helper -s k -l socket -d 'Listen on the Unix socket PATH (absolute); refused under systemd socket activation [default: /var/run/qemu-pr-helper.sock]' -r -F
complete -c pr-helper -s T -l trace -d 'Enable tracing, qemu-pr-helper syntax: [[enable=]PATTERN][,events=FILE][,file=FILE]. PATTERN selects log targets at trace level: `*` means everything of this daemon, `NAME*` or `NAME` is a target prefix (targets are Rust module paths such as pr_helper::serve), and `TARGET=LEVEL` is taken as a tracing directive as is. events=FILE reads one PATTERN per line (`#` starts a comment). file=FILE appends the log to FILE instead of standard error.' -r
complete -c pr-helper -s u -l user -d 'Switch to USER (name or number) after start-up, keeping only CAP_SYS_RAWIO; the group defaults to USER\'s primary group' -r
complete -c pr-helper -s g -l group -d 'Switch to GROUP (name or number) after start-up' -r
complete -c pr-helper -l sgio-timeout -d 'Timeout of one SG_IO ioctl, in seconds (qemu-pr-helper uses 1 ms, which makes slow sg devices fail)' -r
complete -c pr-helper -l max-connections -d 'Connections served at once; more are closed at once, with a log line' -r
complete -c pr-helper -l handshake-timeout -d 'Seconds a new peer has to complete the feature handshake' -r
complete -c pr-helper -l request-timeout -d 'Seconds a peer has to send the rest of a request once it has begun it, and to take a response off the socket' -r
complete -c pr-helper -l shutdown-grace -d 'Seconds in-flight commands may still run after SIGTERM/SIGINT/SIGHUP before the daemon exits anyway' -r
complete -c pr-helper -l allow-uid -d 'Accept peers with this uid (name or number); repeatable. Without --allow-uid and --allow-gid any peer that can open the socket is served' -r
complete -c pr-helper -l allow-gid -d 'Accept peers with this gid (name or number); repeatable' -r
complete -c pr-helper -l socket-mode -d 'Permissions of the socket, in octal (e.g. 0660) [default: from the umask, as qemu-pr-helper]' -r
complete -c pr-helper -l socket-group -d 'Group owning the socket (name or number)' -r
complete -c pr-helper -l emulated-state-dir -d 'Serve regular files (disk images) with the built-in software SCSI target, keeping reservation state in DIR' -r -F
complete -c pr-helper -l emulated-initiator -d 'What the software target counts as one initiator: `process` (each peer process, e.g. one QEMU) or `session` (every process of one login or script session, for driving it with prtool from a shell)' -r -f -a "process\t'Each peer process is an initiator (one QEMU process, one initiator)'
session\t'Each session (`setsid`) is an initiator: all commands run from one shell or script count as one, as if they came from one host'"
complete -c pr-helper -l blocking-threads -d 'Serving threads: each busy connection is served on a thread of its own. Up to half of them may wait on answered connections between their commands; other idle connections hold no thread' -r
complete -c pr-helper -l busy-poll-us -d 'After answering, poll up to this many microseconds for the peer\'s next request before sleeping, while the peer keeps answering that fast (saves a wake-up per command at the cost of that much CPU; 0: never poll)' -r
complete -c pr-helper -l seccomp -d 'What a syscall outside the seccomp allowlist gets once start-up is done: `kill` the process (SIGSYS), `log` it (kernel audit log) and let it run, `trap` it (fails with ENOSYS, reported once on standard error), or `none` (no filter). Anything but `kill` is logged as a warning at start-up' -r -f -a "kill\t'The process is killed with SIGSYS'
log\t'The syscall runs and the kernel logs it'
trap\t'The syscall fails with ENOSYS and is reported once on standard error'
none\t'No filter'"
complete -c pr-helper -s d -l daemon -d 'Run in the background (detach from the terminal; logs go to the journal or syslog)'
complete -c pr-helper -s v -l verbose -d 'Log more (repeat for more: -v debug, -vv trace)'
complete -c pr-helper -s q -l quiet -d 'Log only errors'
complete -c pr-helper -l allow-partitions -d 'Also send SG_IO to partitions (and to device-mapper devices that map only part of a disk, such as LVM volumes). A reservation made through either applies to the whole disk, so this is off by default'
complete -c pr-helper -l no-multipath -d 'Do not treat device-mapper multipath maps specially: send SG_IO to the map, which reaches its active path only (what qemu-pr-helper without libmpathpersist does). Also drops CAP_SYS_ADMIN and CAP_DAC_READ_SEARCH, which multipath support keeps'
complete -c pr-helper -l no-landlock -d 'Do not restrict filesystem access with Landlock after start-up (on by default where the kernel has Landlock)'
complete -c pr-helper -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pr-helper -s V -l version -d 'Print version'
