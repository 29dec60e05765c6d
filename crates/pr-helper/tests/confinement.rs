//! The sandbox from inside the process it confines: `pr-helper-probe` is the real
//! daemon (same start-up, same `sandbox::confine`) whose backend, at the first
//! command, attempts one operation on a thread started after confinement (see
//! `src/bin/pr-helper-probe/main.rs`). Each case runs three times:
//! - `--seccomp=kill` (the default): the daemon dies by SIGSYS, or gets the errno
//!   the policy or Landlock answers with (`clone3`: ENOSYS in every mode; a disk
//!   opened for writing: EACCES from Landlock);
//! - `--seccomp=trap`: the syscall fails with ENOSYS and the daemon lives on;
//! - `--seccomp=none --no-landlock`: the same operation succeeds, so each case can
//!   fail.
//!
//! Needs root (the privilege drop, opening a block device; the test machine runs
//! as root). The VM tier runs the same probe on its kernel with multipath on
//! (`tests/vm/guest/scenario-confinement.sh`).

use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use pr_testkit::daemon::{Daemon, DaemonOptions};
use rustix::process::Signal;

fn probe() -> &'static str {
    env!("CARGO_BIN_EXE_pr-helper-probe")
}

/// What a case must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    /// The process is killed by SIGSYS during the attempt.
    KilledBySigsys,
    /// The attempt fails with this errno; the daemon lives on.
    Errno(i32),
    /// The attempt succeeds.
    Succeeds,
    /// `execve` succeeded: the new image wrote `executed` and exited 0.
    Executed,
}

/// What a case gave.
#[derive(Debug)]
struct Observed {
    expected_matched: bool,
    report: String,
}

/// Runs `case` in a fresh probe daemon started with `args`, sends it one command,
/// and compares what happened with `expected`.
fn run(case: &str, args: &[&str], target: Option<&Path>, expected: Expected) -> Observed {
    let dir = tempfile::tempdir().unwrap();
    let result = dir.path().join("result");
    let mut options = DaemonOptions::new(probe())
        .args(args.iter().copied())
        .env("PR_HELPER_PROBE_CASE", case)
        .env("PR_HELPER_PROBE_RESULT", &result);
    if let Some(target) = target {
        options = options.env("PR_HELPER_PROBE_TARGET", target);
    }
    let mut daemon = Daemon::start_with(options).expect("the probe daemon starts");
    let file = pr_testkit::descriptors::regular_file(4096).unwrap();
    let answered = daemon
        .client()
        .and_then(|mut client| {
            client.call(&pr_testkit::cdb::read_keys(64), file.as_file().as_fd(), &[])
        })
        .is_ok();
    // A daemon that is gone (killed, or replaced by the exec) is waited for
    // before its lines are read: the new image writes after the connection closed.
    let exited = match expected {
        Expected::KilledBySigsys | Expected::Executed => Some(daemon.wait().unwrap()),
        Expected::Errno(_) | Expected::Succeeds => None,
    };
    let lines = std::fs::read_to_string(&result).unwrap_or_default();
    let attempted = lines.contains(&format!("attempt {case}\n"));
    let matched = match (expected, exited) {
        (Expected::KilledBySigsys, Some(status)) => {
            !answered
                && attempted
                && status.signal() == Some(libc::SIGSYS)
                && !lines.contains("result ")
        }
        (Expected::Executed, Some(status)) => {
            attempted && status.success() && lines.ends_with("executed\n")
        }
        (Expected::Errno(errno), _) => {
            answered
                && lines.contains(&format!("result {case} errno {errno}\n"))
                && stop(&mut daemon)
        }
        (Expected::Succeeds, _) => {
            answered && lines.contains(&format!("result {case} ok\n")) && stop(&mut daemon)
        }
        _ => false,
    };
    Observed {
        expected_matched: matched,
        report: format!(
            "case {case} with {args:?}: expected {expected:?}; answered {answered}; \
             result file {lines:?}; log:\n{}",
            daemon.log_text()
        ),
    }
}

/// SIGTERM: the probe daemon must still stop cleanly.
fn stop(daemon: &mut Daemon) -> bool {
    daemon.signal(Signal::TERM).is_ok() && daemon.wait().is_ok_and(|status| status.success())
}

const KILL: &[&str] = &["--seccomp=kill"];
const TRAP: &[&str] = &["--seccomp=trap"];
const UNCONFINED: &[&str] = &["--seccomp=none", "--no-landlock"];

/// Runs `case` in the three modes.
fn check(case: &str, target: Option<&Path>, kill: Expected, trap: Expected, unconfined: Expected) {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root (the test machine runs as root)"
    );
    for (args, expected) in [(KILL, kill), (TRAP, trap), (UNCONFINED, unconfined)] {
        let observed = run(case, args, target, expected);
        assert!(observed.expected_matched, "{}", observed.report);
        // Anything but kill is said in the log, as a warning.
        let warned = observed.report.contains(" WARN ")
            && (observed.report.contains("the seccomp filter does not kill")
                || observed.report.contains("no seccomp filter"));
        assert_eq!(warned, args != KILL, "{}", observed.report);
    }
}

const ENOSYS: Expected = Expected::Errno(libc::ENOSYS);

/// Threads started after confinement work (clone with a new thread's flags, after
/// glibc's clone3 got ENOSYS).
#[test]
fn threads_start_under_the_filter() {
    check(
        "thread",
        None,
        Expected::Succeeds,
        Expected::Succeeds,
        Expected::Succeeds,
    );
}

#[test]
fn clone_into_a_new_user_namespace_is_refused() {
    check(
        "clone-newuser",
        None,
        Expected::KilledBySigsys,
        ENOSYS,
        Expected::Succeeds,
    );
}

#[test]
fn clone3_fails_with_enosys_in_every_mode() {
    check("clone3", None, ENOSYS, ENOSYS, Expected::Succeeds);
}

#[test]
fn unshare_is_refused() {
    check(
        "unshare",
        None,
        Expected::KilledBySigsys,
        ENOSYS,
        Expected::Succeeds,
    );
}

#[test]
fn a_unix_stream_socket_is_refused() {
    check(
        "socket-unix-stream",
        None,
        Expected::KilledBySigsys,
        ENOSYS,
        Expected::Succeeds,
    );
}

#[test]
fn an_inet_socket_is_refused() {
    check(
        "socket-inet",
        None,
        Expected::KilledBySigsys,
        ENOSYS,
        Expected::Succeeds,
    );
}

#[test]
fn a_netlink_route_socket_is_refused() {
    check(
        "socket-netlink-route",
        None,
        Expected::KilledBySigsys,
        ENOSYS,
        Expected::Succeeds,
    );
}

/// A root-owned listening stream socket, like systemd's private one.
#[test]
fn connecting_to_a_listening_socket_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("listening.sock");
    let _listener = UnixListener::bind(&path).unwrap();
    check(
        "connect",
        Some(&path),
        Expected::KilledBySigsys,
        ENOSYS,
        Expected::Succeeds,
    );
}

/// A block device node of this machine (a loop device if there is one).
fn a_block_device() -> PathBuf {
    use std::os::unix::fs::FileTypeExt;
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/block")
        .expect("/sys/class/block")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    names.sort_by_key(|name| (!name.starts_with("loop"), name.clone()));
    names
        .into_iter()
        .map(|name| Path::new("/dev").join(name))
        .find(|path| std::fs::metadata(path).is_ok_and(|meta| meta.file_type().is_block_device()))
        .expect("this machine has a block device node under /dev")
}

/// Landlock refuses it (EACCES) in both filter modes: the daemon may write no
/// device node (and, without multipath, open none).
#[test]
fn opening_a_disk_for_writing_is_refused() {
    let disk = a_block_device();
    check(
        "open-disk-write",
        Some(&disk),
        Expected::Errno(libc::EACCES),
        Expected::Errno(libc::EACCES),
        Expected::Succeeds,
    );
}

#[test]
fn execve_is_refused() {
    check(
        "execve",
        None,
        Expected::KilledBySigsys,
        ENOSYS,
        Expected::Executed,
    );
}

#[test]
fn ptrace_is_refused() {
    check(
        "ptrace",
        None,
        Expected::KilledBySigsys,
        ENOSYS,
        Expected::Succeeds,
    );
}
