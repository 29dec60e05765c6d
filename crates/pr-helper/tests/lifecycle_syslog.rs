//! A daemonised `pr-helper -d` really logs to syslog.
//!
//! This machine has neither journald nor `/dev/log`, so the daemon runs in
//! a private mount namespace (`unshare --mount --propagation private`, as
//! root) whose `/dev` is a fresh tmpfs holding only `null` and `log`, the
//! latter a bind mount of a datagram socket this test owns. If the host has
//! a journal directory, a tmpfs hides it there, so the syslog path is the
//! one taken. The daemon's socket and pid file live in a temporary
//! directory the namespace shares with us. Waits are bounded only to turn a
//! hang into a failure; nothing here measures time.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pr_testkit::{RawClient, cdb};
use rustix::process::Signal;

/// Bounds every wait for the daemon to do something (a hang guard only).
const HANG_LIMIT: Duration = Duration::from_secs(60);

/// Runs as `sh -c SCRIPT sh SYSLOG_SOCKET PROGRAM ARGS...` inside the new
/// mount namespace: builds the private /dev, then becomes the daemon.
const NAMESPACE_SCRIPT: &str = r#"set -e
mount -t tmpfs -o mode=0755 pr-helper-test-dev /dev
mknod -m 0666 /dev/null c 1 3
: > /dev/log
mount --bind "$1" /dev/log
if [ -e /run/systemd/journal ]; then
    mount -t tmpfs pr-helper-test-journal /run/systemd/journal
fi
shift
exec "$@"
"#;

/// Starts `pr-helper ARGS` detached inside the namespace; returns when the
/// foreground process has exited (the daemon then serves).
fn start_in_namespace(syslog_socket: &Path, args: &[&str]) -> Output {
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(NAMESPACE_SCRIPT)
        .arg("sh")
        .arg(syslog_socket)
        .arg(env!("CARGO_BIN_EXE_pr-helper"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run unshare (util-linux)")
}

/// Datagrams received until one contains `needle`; all of them, as text.
fn receive_until(syslog: &UnixDatagram, needle: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 65536];
    while !lines.iter().any(|line: &String| line.contains(needle)) {
        match syslog.recv(&mut buf) {
            Ok(n) => lines.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                panic!("no syslog line with {needle:?} within the hang limit; got {lines:#?}")
            }
            Err(error) => panic!("receiving from the syslog socket: {error}"),
        }
    }
    lines
}

fn read_pid(path: &Path) -> u32 {
    let text = std::fs::read_to_string(path).expect("read the pid file");
    text.trim().parse().expect("a pid in the pid file")
}

/// Whether `pid` has exited (gone, or a zombie nobody reaped yet).
fn has_exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// The session id of `pid`, from /proc/PID/stat.
fn session_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the command name: state, ppid, pgrp, session.
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.split(' ').nth(3))
        .and_then(|field| field.parse().ok())
        .unwrap_or_else(|| panic!("no session in {stat}"))
}

fn signal(pid: u32, signal: Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a positive pid");
    rustix::process::kill_process(pid, signal).expect("signal the daemon");
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < HANG_LIMIT, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the daemon if the test fails half-way, so nothing outlives it.
struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0
            && !has_exited(pid)
        {
            signal(pid, Signal::KILL);
        }
    }
}

#[test]
fn detached_daemon_logs_connections_to_syslog() {
    let dir = tempfile::tempdir().unwrap();
    let syslog_path = dir.path().join("syslog.sock");
    let syslog = UnixDatagram::bind(&syslog_path).expect("bind the test's syslog socket");
    syslog.set_read_timeout(Some(HANG_LIMIT)).unwrap();
    let sock = dir.path().join("d.sock");
    let pidfile = dir.path().join("d.pid");

    let output = start_in_namespace(
        &syslog_path,
        &[
            "-d",
            "-f",
            pidfile.to_str().unwrap(),
            "-k",
            sock.to_str().unwrap(),
        ],
    );
    assert!(
        output.status.success(),
        "unshare + pr-helper -d failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let pid = read_pid(&pidfile);
    let mut guard = KillOnDrop(Some(pid));
    assert!(!has_exited(pid));

    // Detached: its own session, standard streams on /dev/null (the
    // namespace's node is the same device as the host's).
    assert_eq!(session_of(pid), pid, "not a session leader");
    for fd in 0..3 {
        let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
        assert_eq!(target, Path::new("/dev/null"), "fd {fd}");
    }

    // One command on one connection, then close it: the daemon logs the
    // connection opened and closed.
    {
        let mut client = RawClient::connect(&sock).expect("connect");
        client.handshake().expect("handshake");
        let null = File::open("/dev/null").unwrap();
        let response = client
            .call(&cdb::read_keys(64), null.as_fd(), &[])
            .expect("a reply");
        assert!(
            response.is_check_condition(0x0B, 0x00, 0x06),
            "{response:?}"
        );
    }
    let lines = receive_until(&syslog, "connection closed");

    // Every datagram is one RFC 3164 line: <facility*8+severity>, then our
    // name and the daemon's pid (not the foreground parent's).
    let header_end = format!("pr-helper[{pid}]: ");
    for line in &lines {
        let (priority, rest) = line
            .strip_prefix('<')
            .and_then(|line| line.split_once('>'))
            .unwrap_or_else(|| panic!("no priority header: {line:?}"));
        let priority: u8 = priority
            .parse()
            .unwrap_or_else(|_| panic!("priority not a number: {line:?}"));
        assert_eq!(priority / 8, 3, "facility is not daemon: {line:?}");
        assert!(rest.starts_with(&header_end), "{line:?}");
        assert!(!line.ends_with('\n'), "{line:?}");
    }
    let opened = lines
        .iter()
        .find(|line| line.contains("connection opened"))
        .unwrap_or_else(|| panic!("no connection opened line in {lines:#?}"));
    assert!(opened.starts_with(&format!("<30>{header_end}")), "{opened}");
    // The peer credentials are ours: the test process is the client.
    let ours = format!("peer=pid={} ", std::process::id());
    assert!(opened.contains(&ours), "{opened}");
    let closed = lines.last().unwrap();
    assert!(closed.starts_with(&format!("<30>{header_end}")), "{closed}");
    assert!(closed.contains(&ours), "{closed}");

    // SIGTERM: the daemon exits and removes its socket and pid file.
    signal(pid, Signal::TERM);
    wait_until("daemon exits", || has_exited(pid));
    guard.0 = None;
    assert!(!sock.exists(), "socket left behind");
    assert!(!pidfile.exists(), "pid file left behind");
}
