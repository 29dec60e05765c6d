//! The command line.
//!
//! The short options and their long forms are exactly qemu-pr-helper's, so
//! that libvirt (which passes only `-k SOCKET`) and existing systemd units
//! keep working. Everything we add is a long option with a default that
//! needs no tuning. Values are only parsed here; [`crate::config`] checks
//! them and resolves what needs the system.

use std::path::PathBuf;

use clap::{ArgAction, Parser};

/// Default socket path, as qemu-pr-helper and QEMU compute it.
pub const DEFAULT_SOCKET: &str = "/var/run/qemu-pr-helper.sock";
/// Default pid file path, as qemu-pr-helper's.
pub const DEFAULT_PIDFILE: &str = "/var/run/qemu-pr-helper.pid";

const TRACE_HELP: &str = "\
Enable tracing, qemu-pr-helper syntax: [[enable=]PATTERN][,events=FILE][,file=FILE]. \
PATTERN selects log targets at trace level: `*` means everything of this daemon, \
`NAME*` or `NAME` is a target prefix (targets are Rust module paths such as \
pr_helper::serve), and `TARGET=LEVEL` is taken as a tracing directive as is. \
events=FILE reads one PATTERN per line (`#` starts a comment). \
file=FILE appends the log to FILE instead of standard error.";

/// Persistent Reservation helper for QEMU: executes PERSISTENT RESERVE IN/OUT
/// commands on behalf of virtual machines, through a Unix socket.
///
/// Drop-in replacement for qemu-pr-helper: same options, same protocol.
#[derive(Debug, Clone, Parser)]
#[command(name = "pr-helper", version, about, long_about)]
pub struct Args {
    /// Run in the background (detach from the terminal; logs go to the
    /// journal or syslog).
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,

    /// Write the daemon's pid to PATH and hold an exclusive lock on it
    /// (default path with -d: /var/run/qemu-pr-helper.pid).
    #[arg(short = 'f', long = "pidfile", value_name = "PATH")]
    pub pidfile: Option<PathBuf>,

    /// Listen on the Unix socket PATH (absolute); refused under systemd
    /// socket activation [default: /var/run/qemu-pr-helper.sock].
    #[arg(short = 'k', long = "socket", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    #[arg(short = 'T', long = "trace", value_name = "SPEC", help = TRACE_HELP)]
    pub trace: Vec<String>,

    /// Switch to USER (name or number) after start-up, keeping only
    /// CAP_SYS_RAWIO; the group defaults to USER's primary group.
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,

    /// Switch to GROUP (name or number) after start-up.
    #[arg(short = 'g', long = "group", value_name = "GROUP")]
    pub group: Option<String>,

    /// Log more (repeat for more: -v debug, -vv trace).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,

    /// Log only errors.
    #[arg(short = 'q', long = "quiet", conflicts_with = "verbose")]
    pub quiet: bool,

    /// Timeout of one SG_IO ioctl, in seconds (qemu-pr-helper uses 1 ms,
    /// which makes slow sg devices fail).
    #[arg(long, value_name = "SECONDS", default_value = "30")]
    pub sgio_timeout: f64,

    /// Connections served at once; more are closed at once, with a log line.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_connections: usize,

    /// Seconds a new peer has to complete the feature handshake.
    #[arg(long, value_name = "SECONDS", default_value = "10")]
    pub handshake_timeout: f64,

    /// Seconds a peer has to send the rest of a request once it has begun
    /// it, and to take a response off the socket.
    #[arg(long, value_name = "SECONDS", default_value = "10")]
    pub request_timeout: f64,

    /// Seconds in-flight commands may still run after SIGTERM/SIGINT/SIGHUP
    /// before the daemon exits anyway.
    #[arg(long, value_name = "SECONDS", default_value = "30")]
    pub shutdown_grace: f64,

    /// Accept peers with this uid (name or number); repeatable. Without
    /// --allow-uid and --allow-gid any peer that can open the socket is served.
    #[arg(long = "allow-uid", value_name = "USER")]
    pub allow_uid: Vec<String>,

    /// Accept peers with this gid (name or number); repeatable.
    #[arg(long = "allow-gid", value_name = "GROUP")]
    pub allow_gid: Vec<String>,

    /// Permissions of the socket, in octal (e.g. 0660) [default: from the
    /// umask, as qemu-pr-helper].
    #[arg(long, value_name = "MODE")]
    pub socket_mode: Option<String>,

    /// Group owning the socket (name or number).
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,

    /// Also send SG_IO to partitions (and to device-mapper devices that map
    /// only part of a disk, such as LVM volumes). A reservation made through
    /// either applies to the whole disk, so this is off by default.
    #[arg(long)]
    pub allow_partitions: bool,

    /// Do not treat device-mapper multipath maps specially: send SG_IO to the map,
    /// which reaches its active path only (what qemu-pr-helper without
    /// libmpathpersist does). Also drops CAP_SYS_ADMIN and CAP_DAC_READ_SEARCH,
    /// which multipath support keeps.
    #[arg(long)]
    pub no_multipath: bool,

    /// Serve regular files (disk images) with the built-in software SCSI
    /// target, keeping reservation state in DIR.
    #[arg(long, value_name = "DIR")]
    pub emulated_state_dir: Option<PathBuf>,

    /// What the software target counts as one initiator: `process` (each peer
    /// process, e.g. one QEMU) or `session` (every process of one login or
    /// script session, for driving it with prtool from a shell).
    #[arg(long, value_name = "RULE", default_value = "process")]
    pub emulated_initiator: crate::backend::emulated::InitiatorRule,

    /// Serving threads: each busy connection is served on a thread of its own. Up
    /// to half of them may wait on answered connections between their commands;
    /// other idle connections hold no thread.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub blocking_threads: usize,

    /// After answering, poll up to this many microseconds for the peer's next
    /// request before sleeping, while the peer keeps answering that fast (saves a
    /// wake-up per command at the cost of that much CPU; 0: never poll).
    #[arg(long, value_name = "MICROSECONDS", default_value_t = 0)]
    pub busy_poll_us: u64,

    /// What a syscall outside the seccomp allowlist gets once start-up is
    /// done: `kill` the process (SIGSYS), `log` it (kernel audit log) and
    /// let it run, `trap` it (fails with ENOSYS, reported once on standard
    /// error), or `none` (no filter). Anything but `kill` is logged as a
    /// warning at start-up.
    #[arg(long, value_name = "MODE", default_value = crate::sandbox::seccomp::DEFAULT_MODE)]
    pub seccomp: crate::sandbox::SeccompMode,

    /// Do not restrict filesystem access with Landlock after start-up
    /// (on by default where the kernel has Landlock).
    #[arg(long)]
    pub no_landlock: bool,
}
