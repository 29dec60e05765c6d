//! A daemonised `pr-helper -d` really logs to syslog.
//!
//! This machine has neither journald nor `/dev/log`, so the daemon runs in
//! a private mount namespace (`unshare --mount --propagation private`, as
//! root) whose `/dev` is a fresh tmpfs holding only `null` and `log`, the
//! latter a symbolic link to a datagram socket this test owns (the layout
//! systemd itself uses for `/dev/log`; a link rather than a bind mount so
//! that the test can replace its socket, as a restarting syslog does). If
//! the host has
//! a journal directory, a tmpfs hides it there, so the syslog path is the
//! one taken. The daemon's socket and pid file live in a temporary
//! directory the namespace shares with us. Waits are bounded only to turn a
//! hang into a failure; nothing here measures time.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pr_testkit::checks::expect_served_with;
use pr_testkit::detached::Detached;
use pr_testkit::wait::has_exited;

/// Bounds every wait for the daemon to do something (a hang guard only).
const HANG_LIMIT: Duration = Duration::from_secs(60);

/// Runs as `sh -c SCRIPT sh SYSLOG_SOCKET PROGRAM ARGS...` inside the new
/// mount namespace: builds the private /dev, then becomes the daemon.
const NAMESPACE_SCRIPT: &str = r#"set -e
mount -t tmpfs -o mode=0755 pr-helper-test-dev /dev
mknod -m 0666 /dev/null c 1 3
ln -s "$1" /dev/log
if [ -e /run/systemd/journal ]; then
    mount -t tmpfs pr-helper-test-journal /run/systemd/journal
fi
shift
exec "$@"
"#;

/// `pr-helper` inside the namespace, its arguments still to be added.
fn namespace_command(syslog_socket: &Path) -> Command {
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(NAMESPACE_SCRIPT)
        .arg("sh")
        .arg(syslog_socket)
        .arg(env!("CARGO_BIN_EXE_pr-helper"));
    command
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

/// The session id of `pid`, from /proc/PID/stat.
fn session_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the command name: state, ppid, pgrp, session.
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.split(' ').nth(3))
        .and_then(|field| field.parse().ok())
        .unwrap_or_else(|| panic!("no session in {stat}"))
}

/// A daemon started with `-d` in the namespace, and the syslog socket it logs to.
struct InNamespace {
    /// Killed when dropped, so nothing outlives a test; dropped before `_dir`.
    daemon: Detached,
    syslog_path: PathBuf,
    /// Holds the socket, pid file and syslog socket; removed last.
    _dir: tempfile::TempDir,
}

impl InNamespace {
    /// Binds the test's syslog socket, then starts the daemon; returns
    /// once the foreground process has exited 0 (the daemon serves).
    fn start() -> (Self, UnixDatagram) {
        let dir = tempfile::tempdir().unwrap();
        let syslog_path = dir.path().join("syslog.sock");
        let syslog = bind_syslog(&syslog_path);
        let daemon = Detached::start(&mut namespace_command(&syslog_path), dir.path());
        assert!(!has_exited(daemon.pid()));
        let started = Self {
            daemon,
            syslog_path,
            _dir: dir,
        };
        (started, syslog)
    }

    fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Connects, sends PR IN READ KEYS on /dev/null (answered 0B/00/06
    /// without an ioctl) and disconnects: one connection opened and closed.
    fn one_command(&self) {
        let null = File::open("/dev/null").unwrap();
        expect_served_with(self.daemon.socket(), null.as_fd()).expect("one command answered");
    }

    /// SIGTERM: the daemon exits and removes its socket and pid file.
    fn terminate(self) {
        self.daemon.stop();
        assert!(!self.daemon.socket().exists(), "socket left behind");
        assert!(!self.daemon.pid_file().exists(), "pid file left behind");
    }
}

fn bind_syslog(path: &Path) -> UnixDatagram {
    let syslog = UnixDatagram::bind(path).expect("bind the test's syslog socket");
    syslog.set_read_timeout(Some(HANG_LIMIT)).unwrap();
    syslog
}

#[test]
fn detached_daemon_logs_connections_to_syslog() {
    let (daemon, syslog) = InNamespace::start();
    let pid = daemon.pid();

    // Detached: its own session, standard streams on /dev/null (the
    // namespace's node is the same device as the host's).
    assert_eq!(session_of(pid), pid, "not a session leader");
    for fd in 0..3 {
        let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
        assert_eq!(target, Path::new("/dev/null"), "fd {fd}");
    }

    // One command on one connection, then close it: the daemon logs the
    // connection opened and closed.
    daemon.one_command();
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
    // The peer credentials are ours: the test process is the client. They are
    // one set of fields, not repeated in another form.
    let ours = format!(
        "peer_pid={} peer_uid={} peer_gid={}",
        std::process::id(),
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw()
    );
    assert!(opened.contains(&ours), "{opened}");
    assert_eq!(opened.matches("pid=").count(), 1, "{opened}");
    assert!(!opened.contains("peer="), "{opened}");
    let closed = lines.last().unwrap();
    assert!(closed.starts_with(&format!("<30>{header_end}")), "{closed}");
    assert!(closed.contains(&ours), "{closed}");
    assert_eq!(closed.matches("pid=").count(), 1, "{closed}");

    daemon.terminate();
}

#[test]
fn a_syslog_that_stops_reading_or_restarts_does_not_stop_the_daemon() {
    let (daemon, syslog) = InNamespace::start();
    receive_until(&syslog, "serving");

    // The reader stalls: far more lines than a datagram socket queues
    // (net.unix.max_dgram_qlen, 10 by default). Every command is still
    // answered; the lines that do not fit are lost.
    for _ in 0..50 {
        daemon.one_command();
    }

    // Syslog restarts: its socket closes and a new one takes the path.
    // The daemon's next line reaches the new one.
    drop(syslog);
    std::fs::remove_file(&daemon.syslog_path).unwrap();
    let restarted = bind_syslog(&daemon.syslog_path);
    daemon.one_command();
    // The previous connection's closing line may come first: it is written
    // after that client left, possibly after the restart.
    let lines = receive_until(&restarted, "connection opened");
    let opened = lines.last().unwrap();
    let header = format!("<30>pr-helper[{}]: ", daemon.pid());
    assert!(opened.starts_with(&header), "{opened}");
    let conn = opened
        .split(' ')
        .find(|field| field.starts_with("conn="))
        .unwrap_or_else(|| panic!("no conn= in {opened}"));
    let lines = receive_until(&restarted, &format!("connection closed {conn} "));
    assert!(lines.last().unwrap().starts_with(&header), "{lines:#?}");

    daemon.terminate();
}
