//! Start-up and lifecycle of the real binary: command line, systemd socket
//! activation, `-d` with the pid file lock, privilege drop, descriptor
//! hygiene and graceful shutdown with commands in flight.
//!
//! Several tests need root (privilege drop, socket group); the test
//! machine runs them as root. Waits are bounded only to turn a hang into a
//! failure; nothing here measures time.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use pr_testkit::activation::ActivationSockets;
use pr_testkit::daemon::{Daemon, DaemonOptions};
use pr_testkit::detached::{Detached, read_pid};
use pr_testkit::wait::{has_exited, wait_until};
use pr_testkit::{RawClient, cdb};
use rustix::process::Signal;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pr-helper")
}

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run pr-helper")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A fresh client is served end to end (0B/00/06 for READ KEYS on a regular
/// file, answered without an ioctl).
fn assert_served(socket: &Path) {
    pr_testkit::checks::expect_served_at(socket).expect("served end to end");
}

/// A field of /proc/PID/status, e.g. "CapEff".
fn status_field(pid: u32, field: &str) -> String {
    status_field_of(&format!("/proc/{pid}/status"), field)
}

fn status_field_of(path: &str, field: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .map(|value| value.trim().to_owned())
        .unwrap_or_else(|| panic!("no {field} in {path}:\n{text}"))
}

fn kill(pid: u32, signal: Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}

/// Runs `command` (the daemon, or a wrapper that execs it) with `-k sock` appended
/// and its standard streams on /dev/null; returns once it serves on `sock`. Waits for a
/// connection rather than for the socket file, which may be a stale one.
fn spawn_serving(mut command: Command, sock: &Path) -> Child {
    let child = command
        .arg("-k")
        .arg(sock)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("run {:?}: {error}", command.get_program()));
    wait_until("the daemon serves", || RawClient::connect(sock).is_ok());
    assert_served(sock);
    child
}

/// Sends `signal` to a daemon the test spawned; it must exit 0.
fn stop(mut child: Child, signal: Signal) {
    kill(child.id(), signal);
    assert!(child.wait().unwrap().success());
}

/// Descriptors the process has open, as /proc shows their targets.
fn fd_targets(pid: u32) -> Vec<String> {
    pr_testkit::proc::fd_targets(pid).unwrap()
}

// ---------------------------------------------------------------------------
// Command line

#[test]
fn help_lists_every_qemu_pr_helper_flag_and_our_options() {
    let output = run(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "-h, --help",
        "-V, --version",
        "-d, --daemon",
        "-f, --pidfile",
        "-k, --socket",
        "-T, --trace",
        "-u, --user",
        "-g, --group",
        "-v, --verbose",
        "-q, --quiet",
        "--sgio-timeout",
        "--max-connections",
        "--handshake-timeout",
        "--request-timeout",
        "--allow-uid",
        "--allow-gid",
        "--socket-mode",
        "--socket-group",
        "--shutdown-grace",
        "--allow-partitions",
        "--emulated-state-dir",
        "--blocking-threads",
        "/var/run/qemu-pr-helper.sock",
        "/var/run/qemu-pr-helper.pid",
        "events=FILE",
    ] {
        assert!(
            help.contains(flag),
            "--help does not mention {flag}:\n{help}"
        );
    }
    let short = run(&["-h"]);
    assert!(short.status.success());
    assert!(String::from_utf8_lossy(&short.stdout).contains("--socket"));
}

#[test]
fn version_prints_and_exits_zero() {
    for flag in ["-V", "--version"] {
        let output = run(&[flag]);
        assert!(output.status.success());
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
    }
}

#[test]
fn bad_command_lines_fail_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let sock = sock.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--no-such-flag"], "unexpected argument"),
        (&["-k", "relative.sock"], "not an absolute path"),
        (&["-k", sock, "--socket-mode", "0999"], "octal"),
        (&["-k", sock, "--sgio-timeout", "0"], "--sgio-timeout"),
        (&["-k", sock, "--max-connections", "0"], "--max-connections"),
        (&["-k", sock, "-q", "-v"], "cannot be used with"),
        (&["-k", sock, "-u", "no-such-user-xyz"], "no such user"),
        (&["-k", sock, "-g", "no-such-group-xyz"], "no such group"),
        (
            &["-k", sock, "--socket-group", "no-such-group-xyz"],
            "--socket-group",
        ),
        (
            &["-k", sock, "-T", "events=/nonexistent/events"],
            "trace events file",
        ),
    ];
    for (args, needle) in cases {
        let output = run(args);
        assert!(!output.status.success(), "{args:?} succeeded");
        let text = stderr(&output);
        assert!(
            text.contains(needle),
            "{args:?}: expected {needle:?} in:\n{text}"
        );
        // One message, not a panic or a backtrace.
        assert!(!text.contains("panicked"), "{text}");
        assert!(!Path::new(sock).exists(), "{args:?} left a socket behind");
    }
}

#[test]
fn missing_socket_directory_names_the_fix() {
    let output = run(&["-k", "/nonexistent-dir-xyz/pr.sock"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("does the directory exist"), "{text}");
}

// ---------------------------------------------------------------------------
// Socket activation

/// A daemon started the way systemd starts it (see
/// [`pr_testkit::activation::spawn_activated`]).
fn spawn_activated(
    fd3: BorrowedFd<'_>,
    listen_fds: &str,
    env: &[(&str, &OsStr)],
    args: &[&str],
) -> Child {
    pr_testkit::activation::spawn_activated(Path::new(bin()), fd3, listen_fds, env, args)
        .expect("spawn through sh")
}

fn child_output(child: Child) -> (Option<i32>, String) {
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// A socket-activated start that must fail: exit status 1, `message` in its output.
fn assert_activation_fails(fd3: BorrowedFd<'_>, listen_fds: &str, args: &[&str], message: &str) {
    let child = spawn_activated(fd3, listen_fds, &[], args);
    let (code, log) = child_output(child);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains(message), "{log}");
}

#[test]
fn socket_activation_serves_the_passed_socket() {
    let sockets = ActivationSockets::bind().unwrap();
    let child = spawn_activated(
        sockets.listener().as_fd(),
        "1",
        &[("NOTIFY_SOCKET", sockets.notify_path())],
        &[],
    );
    let pid = child.id();

    // Readiness reaches the notify socket.
    sockets.expect_ready();

    assert_served(sockets.socket());

    // Descriptor 3 is the socket, now close-on-exec.
    let fd3 = std::fs::read_link(format!("/proc/{pid}/fd/3")).unwrap();
    assert!(fd3.to_string_lossy().starts_with("socket:"), "{fd3:?}");
    let fdinfo = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/3")).unwrap();
    let flags = fdinfo
        .lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .map(|octal| u32::from_str_radix(octal.trim(), 8).unwrap())
        .unwrap();
    assert_ne!(
        flags & 0o2_000_000,
        0,
        "fd 3 is not close-on-exec: {fdinfo}"
    );
    kill(pid, Signal::TERM);
    let (code, log) = child_output(child);
    assert_eq!(code, Some(0), "{log}");
    // The socket belongs to systemd: we leave it.
    assert!(sockets.socket().exists());
}

#[test]
fn socket_activation_refuses_k_and_several_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("activated.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let other = dir.path().join("other.sock");

    assert_activation_fails(
        listener.as_fd(),
        "1",
        &["-k", other.to_str().unwrap()],
        "-k is not allowed with socket activation",
    );
    assert!(!other.exists());
    assert_activation_fails(listener.as_fd(), "2", &[], "systemd passed 2 sockets");
    assert_activation_fails(
        listener.as_fd(),
        "many",
        &[],
        "LISTEN_FDS=many is not a number",
    );
}

#[test]
fn socket_activation_refuses_a_descriptor_that_is_not_a_listener() {
    let dir = tempfile::tempdir().unwrap();
    let file = File::create(dir.path().join("not-a-socket")).unwrap();
    assert_activation_fails(file.as_fd(), "1", &[], "not a listening Unix stream socket");
}

#[test]
fn activation_variables_for_another_process_are_ignored() {
    // LISTEN_PID names some other process: we bind -k ourselves.
    let mut daemon = Daemon::start_with(
        DaemonOptions::default()
            .env("LISTEN_FDS", "1")
            .env("LISTEN_PID", "1"),
    )
    .expect("daemon starts");
    assert_served(daemon.socket());
    daemon.signal(Signal::TERM).unwrap();
    assert!(daemon.wait().unwrap().success());
}

// ---------------------------------------------------------------------------
// Descriptor hygiene, logging

#[test]
fn inherited_descriptors_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("inherited-marker");
    std::fs::write(&marker, b"x").unwrap();
    let sock = dir.path().join("h.sock");
    let mut with_marker = Command::new("sh");
    with_marker
        .arg("-c")
        .arg("exec \"$0\" \"$@\" 7<\"$MARKER\" 9<\"$MARKER\"")
        .arg(bin())
        .env("MARKER", &marker);
    let child = spawn_serving(with_marker, &sock);
    let targets = fd_targets(child.id());
    assert!(
        !targets.iter().any(|t| t.contains("inherited-marker")),
        "inherited descriptors still open: {targets:?}"
    );
    stop(child, Signal::TERM);
}

#[test]
fn closed_standard_streams_do_not_swallow_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    // Started with 0, 1 and 2 closed: the socket must not land on them and
    // be replaced by /dev/null when -d redirects the standard streams.
    let mut streams_closed = Command::new("sh");
    streams_closed
        .arg("-c")
        .arg("exec \"$0\" \"$@\" <&- >&- 2>&-")
        .arg(bin());
    let daemon = Detached::start(&mut streams_closed, dir.path());
    let (sock, pidfile) = (daemon.socket(), daemon.pid_file());
    assert_served(sock);
    daemon.stop();
    assert!(!sock.exists() && !pidfile.exists());
}

#[test]
fn soft_descriptor_limit_is_raised_to_the_hard_one() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("l.sock");
    // util-linux prlimit sets the limits, then execs the daemon.
    let mut with_limits = Command::new("prlimit");
    with_limits.args(["--nofile=256:4096", "--"]).arg(bin());
    let child = spawn_serving(with_limits, &sock);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let open_files = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = open_files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers, ["4096", "4096"], "{open_files}");
    stop(child, Signal::TERM);
}

#[test]
fn trace_file_receives_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("trace.log");
    let events = dir.path().join("events");
    std::fs::write(&events, "# our connection handling\npr_helper::serve*\n").unwrap();
    let spec = format!(
        "enable=pr_helper::startup*,events={},file={}",
        events.display(),
        log.display()
    );
    let mut daemon = Daemon::start(["-T", spec.as_str()]).expect("daemon starts with -T");
    assert_served(daemon.socket());
    daemon.signal(Signal::TERM).unwrap();
    assert!(daemon.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("serving"), "{text}");
    assert!(text.contains("connection opened"), "{text}");
    // With file= the log goes to the file only.
    assert!(
        !daemon.log_text().contains("serving"),
        "{}",
        daemon.log_text()
    );
}

#[test]
fn socket_mode_and_group_are_applied() {
    let mut daemon =
        Daemon::start(["--socket-mode", "0660", "--socket-group", "65534"]).expect("daemon starts");
    let meta = std::fs::metadata(daemon.socket()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), 65534);
    assert_served(daemon.socket());
    daemon.signal(Signal::TERM).unwrap();
    assert!(daemon.wait().unwrap().success());
}

#[test]
fn second_daemon_on_a_live_socket_is_refused_and_a_stale_one_replaced() {
    let mut daemon = Daemon::start(Vec::<String>::new()).expect("daemon starts");
    let sock = daemon.socket().to_str().unwrap().to_owned();
    // Refused; the pid file it had created is removed again.
    let pidfile = daemon.dir().join("second.pid");
    let output = run(&["-k", &sock, "-f", pidfile.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("already serving"),
        "{}",
        stderr(&output)
    );
    assert!(!pidfile.exists(), "refused instance left its pid file");
    assert_served(daemon.socket());
    daemon.signal(Signal::TERM).unwrap();
    assert!(daemon.wait().unwrap().success());
    assert!(!daemon.socket().exists());

    // A stale socket (nobody listening) is replaced.
    drop(UnixListener::bind(daemon.socket()).unwrap());
    assert!(daemon.socket().exists());
    let again = spawn_serving(Command::new(bin()), Path::new(&sock));
    stop(again, Signal::INT);
}

// ---------------------------------------------------------------------------
// -d and the pid file

#[test]
fn daemonize_writes_locked_pidfile_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    // The foreground process returns 0 once the daemon serves.
    let daemon = Detached::start(&mut Command::new(bin()), dir.path());
    let (sock, pidfile, pid) = (daemon.socket(), daemon.pid_file(), daemon.pid());
    let pid_s = pidfile.to_str().unwrap();
    assert!(!has_exited(pid));
    assert_served(sock);

    // Detached: own session, standard streams on /dev/null.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name: state, ppid, pgrp, session.
    let session: u32 = stat
        .rsplit_once(") ")
        .unwrap()
        .1
        .split(' ')
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(session, pid);
    for fd in 0..3 {
        let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
        assert_eq!(target, Path::new("/dev/null"));
    }

    // A second instance on the same pid file is refused and names the holder,
    // in the foreground and with -d; it touches neither its socket nor ours.
    let other = dir.path().join("other.sock");
    for extra in [&[][..], &["-d"][..]] {
        let mut args = extra.to_vec();
        args.extend(["-f", pid_s, "-k", other.to_str().unwrap()]);
        let output = run(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let text = stderr(&output);
        assert!(
            text.contains(&format!("(pid {pid}) holds the pid file")),
            "{text}"
        );
        assert!(!other.exists());
    }
    assert_eq!(read_pid(pidfile), pid);
    assert_served(sock);

    daemon.stop();
    assert!(!sock.exists(), "socket left behind");
    assert!(!pidfile.exists(), "pid file left behind");
}

/// Runs `pr-helper -d -f DIR/d.pid -k DIR/d.sock EXTRA...` to completion: for a
/// start-up that fails, whose foreground process reports why.
fn run_detached(dir: &Path, extra: &[&str]) -> Output {
    let (sock, pidfile) = (dir.join("d.sock"), dir.join("d.pid"));
    let mut args = vec!["-d", "-f", pidfile.to_str().unwrap()];
    args.extend(["-k", sock.to_str().unwrap()]);
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn daemonize_reports_start_up_errors_in_the_foreground() {
    let dir = tempfile::tempdir().unwrap();
    // Logging fails only after the fork: the foreground process prints it.
    let output = run_detached(dir.path(), &["-T", "file=/nonexistent-dir-xyz/log"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot open the log file"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn daemonize_hands_errors_after_the_fork_to_the_foreground() {
    let dir = tempfile::tempdir().unwrap();
    // Where run_detached puts them.
    let sock = dir.path().join("d.sock");
    let pidfile = dir.path().join("d.pid");
    // The backends are prepared after the fork; a state directory under a
    // regular file cannot be created. The detached child reports the error
    // through the start-up pipe and cleans up.
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let state = not_a_dir.join("state");
    let output = run_detached(
        dir.path(),
        &["--emulated-state-dir", state.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("preparing the backends"), "{text}");
    assert!(text.contains("state directory"), "{text}");
    assert!(!sock.exists(), "socket left behind");
    assert!(!pidfile.exists(), "pid file left behind");
}

// ---------------------------------------------------------------------------
// Privileges

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn privilege_drop_keeps_only_cap_sys_rawio() {
    assert!(
        is_root(),
        "this test must run as root (the test machine does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("p.pid");
    let mut daemon =
        Daemon::start(["-u", "nobody", "-f", pidfile.to_str().unwrap()]).expect("daemon starts");
    let pid = daemon.pid();
    assert_served(daemon.socket());

    let nobody = "65534\t65534\t65534\t65534";
    // Every thread, not only the main one: capabilities are per thread.
    let tasks: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("status"))
        .collect();
    assert!(tasks.len() > 1, "expected runtime threads");
    for status in &tasks {
        let status = status.to_str().unwrap();
        assert_eq!(status_field_of(status, "Uid"), nobody, "{status}");
        assert_eq!(status_field_of(status, "Groups"), "", "{status}");
        assert_eq!(
            status_field_of(status, "CapEff"),
            "0000000000020000",
            "{status}"
        );
        assert_eq!(
            status_field_of(status, "CapPrm"),
            "0000000000020000",
            "{status}"
        );
        assert_eq!(
            status_field_of(status, "CapInh"),
            "0000000000000000",
            "{status}"
        );
        assert_eq!(
            status_field_of(status, "CapAmb"),
            "0000000000000000",
            "{status}"
        );
        assert_eq!(
            status_field_of(status, "CapBnd"),
            "0000000000000000",
            "{status}"
        );
        assert_eq!(status_field_of(status, "NoNewPrivs"), "1", "{status}");
    }
    assert_ne!(status_field(pid, "Gid").split('\t').next(), Some("0"));

    // Still served after the drop, then socket and pid file removed although
    // the daemon can no longer unlink them itself.
    assert_served(daemon.socket());
    assert_served(daemon.socket());
    daemon.signal(Signal::TERM).unwrap();
    assert!(daemon.wait().unwrap().success(), "{}", daemon.log_text());
    assert!(!daemon.socket().exists(), "socket left behind");
    assert!(!pidfile.exists(), "pid file left behind");
}

#[test]
fn files_are_removed_even_when_the_daemon_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("k.pid");
    let mut daemon =
        Daemon::start(["-u", "nobody", "-f", pidfile.to_str().unwrap()]).expect("daemon starts");
    // Served means start-up is complete: the janitor exists.
    assert_served(daemon.socket());
    daemon.signal(Signal::KILL).unwrap();
    daemon.wait().unwrap();
    // The janitor notices the daemon is gone and cleans up on its own.
    wait_until("janitor removes socket and pid file", || {
        !daemon.socket().exists() && !pidfile.exists()
    });
}

/// The janitor: the one child process of the daemon's main thread (forked
/// while the daemon was single-threaded).
fn janitor_of(daemon: u32) -> u32 {
    let children = std::fs::read_to_string(format!("/proc/{daemon}/task/{daemon}/children"))
        .expect("read the daemon's children");
    let pids: Vec<u32> = children
        .split_whitespace()
        .map(|pid| pid.parse().expect("a pid"))
        .collect();
    assert_eq!(pids.len(), 1, "the daemon's children: {children:?}");
    pids[0]
}

#[test]
fn the_janitor_runs_under_its_own_seccomp_filter_unless_seccomp_is_off() {
    for (args, seccomp) in [(&["-u", "nobody"][..], "2"), (&["--seccomp=none"][..], "0")] {
        let mut daemon = Daemon::start(args.iter().copied()).expect("daemon starts");
        // Served means start-up is complete: the janitor exists and has confined itself.
        assert_served(daemon.socket());
        let janitor = janitor_of(daemon.pid());
        wait_until("the janitor has confined itself", || {
            status_field(janitor, "NoNewPrivs") == "1"
                && status_field(janitor, "Seccomp") == seccomp
        });
        assert_eq!(
            status_field(janitor, "CapEff"),
            "0000000000000002",
            "{args:?}"
        );
        // Still able to do its one job.
        daemon.signal(Signal::TERM).unwrap();
        assert!(daemon.wait().unwrap().success(), "{}", daemon.log_text());
        assert!(!daemon.socket().exists(), "{args:?}: socket left behind");
        assert!(
            !daemon.log_text().contains("could not remove"),
            "{}",
            daemon.log_text()
        );
    }
}

#[test]
fn without_user_switch_capabilities_are_still_reduced() {
    assert!(
        is_root(),
        "this test must run as root (the test machine does)"
    );
    let mut daemon = Daemon::start(Vec::<String>::new()).expect("daemon starts");
    // Served means start-up, including the drop, is complete.
    assert_served(daemon.socket());
    let pid = daemon.pid();
    assert_eq!(status_field(pid, "Uid"), "0\t0\t0\t0");
    assert_eq!(status_field(pid, "CapEff"), "0000000000020000");
    assert_eq!(status_field(pid, "CapBnd"), "0000000000000000");
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    daemon.signal(Signal::TERM).unwrap();
    assert!(daemon.wait().unwrap().success());
}

// ---------------------------------------------------------------------------
// Shutdown

#[test]
fn sighup_and_sigint_also_shut_down_cleanly() {
    for signal in [Signal::HUP, Signal::INT] {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("s.pid");
        let mut daemon = Daemon::start(["-f", pidfile.to_str().unwrap()]).expect("daemon starts");
        let mut idle = daemon.client().unwrap();
        daemon.signal(signal).unwrap();
        assert!(
            daemon.wait().unwrap().success(),
            "{signal:?}: {}",
            daemon.log_text()
        );
        assert!(!daemon.socket().exists());
        assert!(!pidfile.exists());
        // The idle connection was closed.
        let mut byte = [0u8; 1];
        assert_eq!(idle.stream_read(&mut byte).unwrap_or(0), 0);
    }
}

/// Threads of `pid` sleeping in the test backend's wait (`clock_nanosleep` or
/// `nanosleep` per /proc/PID/task/TID/syscall): commands in flight.
fn sleeping_threads(pid: u32) -> usize {
    const NANOSLEEP: &str = "35";
    const CLOCK_NANOSLEEP: &str = "230";
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("syscall")).ok())
        .filter(|line| {
            let number = line.split(' ').next().unwrap_or("");
            number == NANOSLEEP || number == CLOCK_NANOSLEEP
        })
        .count()
}

#[test]
fn sigterm_answers_every_command_in_flight() {
    const IN_FLIGHT: usize = 6;
    let options = DaemonOptions::slow(3000).with_pid_file();
    let mut daemon =
        Daemon::start_with(options.args(["--shutdown-grace", "120"])).expect("daemon starts");
    let pidfile = daemon.pid_file().expect("a pid file").to_owned();
    let pid = daemon.pid();

    // One image file per command, so no per-device limit queues any of them.
    let files: Vec<tempfile::NamedTempFile> = (0..IN_FLIGHT)
        .map(|_| pr_testkit::descriptors::regular_file(4096).unwrap())
        .collect();
    let mut clients: Vec<RawClient> = files
        .iter()
        .map(|file| {
            let mut client = daemon.client().unwrap();
            client
                .send_request(&cdb::read_keys(64), file.as_file().as_fd(), &[])
                .unwrap();
            client
        })
        .collect();
    let mut idle = daemon.client().unwrap();

    wait_until("every command is executing", || {
        sleeping_threads(pid) >= IN_FLIGHT
    });
    daemon.signal(Signal::TERM).unwrap();

    // New connections are no longer served once shutdown began.
    for client in &mut clients {
        let response = client.read_response().expect("in-flight command answered");
        assert!(
            response.is_check_condition(0x0B, 0x00, 0x06),
            "{response:?}"
        );
    }
    let mut byte = [0u8; 1];
    assert_eq!(
        idle.stream_read(&mut byte).unwrap_or(0),
        0,
        "idle connection not closed"
    );

    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status}: {}", daemon.log_text());
    assert!(!daemon.socket().exists(), "socket left behind");
    assert!(!pidfile.exists(), "pid file left behind");
}

/// Reading from a raw client's stream (EOF shows the daemon closed it).
trait StreamRead {
    fn stream_read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
}

impl StreamRead for RawClient {
    fn stream_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut stream = self.stream();
        stream.read(buf)
    }
}

#[test]
fn grace_period_bounds_a_stuck_command() {
    // A latency far longer than the test waits for anything.
    let options = DaemonOptions::slow(600_000).with_pid_file();
    let mut daemon =
        Daemon::start_with(options.args(["--shutdown-grace", "0.5"])).expect("daemon starts");
    let pidfile = daemon.pid_file().expect("a pid file").to_owned();
    let pid = daemon.pid();
    let file = pr_testkit::descriptors::regular_file(4096).unwrap();
    let mut client = daemon.client().unwrap();
    client
        .send_request(&cdb::read_keys(64), file.as_file().as_fd(), &[])
        .unwrap();
    wait_until("the command is executing", || sleeping_threads(pid) >= 1);

    daemon.signal(Signal::TERM).unwrap();
    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status}: {}", daemon.log_text());
    assert!(
        daemon.log_text().contains("grace period over"),
        "{}",
        daemon.log_text()
    );
    // The stuck command's connection was closed without an answer.
    let mut byte = [0u8; 1];
    assert_eq!(client.stream_read(&mut byte).unwrap_or(0), 0);
    assert!(!daemon.socket().exists(), "socket left behind");
    assert!(!pidfile.exists(), "pid file left behind");
}
