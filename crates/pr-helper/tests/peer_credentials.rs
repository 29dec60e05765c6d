//! Peers the daemon must serve however the kernel describes them.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pr_testkit::{RawClient, cdb};

/// Bounds the wait for the daemon's socket (a hang guard only).
const HANG_LIMIT: Duration = Duration::from_secs(60);

/// Kills the daemon (through `unshare --kill-child`) when the test ends.
struct Namespaced(Child);

impl Drop for Namespaced {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_socket(path: &Path, daemon: &mut Namespaced) {
    let started = Instant::now();
    while !path.exists() {
        if let Some(status) = daemon.0.try_wait().expect("wait") {
            panic!("daemon exited before serving: {status}");
        }
        assert!(started.elapsed() < HANG_LIMIT, "no socket at {path:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A daemon in a pid namespace of its own sees a peer outside it with pid 0
/// in SO_PEERCRED. Reading that into a non-zero pid type is undefined
/// behaviour (in practice the credentials read as an error and the
/// connection is dropped): the peer must be served like any other.
#[test]
fn a_peer_whose_pid_is_invisible_to_the_daemon_is_served() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("ns.sock");
    let child = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child"])
        .arg(env!("CARGO_BIN_EXE_pr-helper"))
        .arg("-k")
        .arg(&sock)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("unshare (util-linux)");
    let mut daemon = Namespaced(child);
    wait_for_socket(&sock, &mut daemon);

    let mut client = RawClient::connect(&sock).expect("connect");
    client.handshake().expect("handshake");
    let null = File::open("/dev/null").expect("/dev/null");
    let response = client
        .call(&cdb::read_keys(64), null.as_fd(), &[])
        .expect("answered");
    assert!(
        response.is_check_condition(0x0B, 0x00, 0x06),
        "{response:?}"
    );
}

/// A peer outside the allowlist is refused at every `connect`; it must not
/// be able to add a log line per attempt. (The daemon allows one line per
/// second: the assertion only fails if 200 connects took 200 seconds.)
#[test]
fn a_refused_peer_cannot_add_a_log_line_per_connect() {
    use pr_testkit::daemon::{Daemon, DaemonOptions};
    const ATTEMPTS: usize = 200;
    let mut daemon = Daemon::start_with(DaemonOptions::default().args(["--allow-uid", "4242"]))
        .expect("daemon starts");
    for _ in 0..ATTEMPTS {
        let mut refused = daemon.connect().expect("connect");
        refused.expect_closed().expect("refused");
    }
    // Still serving: a refused peer changed nothing else.
    assert!(daemon.is_running());
    let log = daemon.log_text();
    let lines = log
        .lines()
        .filter(|line| line.contains("peer not in the uid/gid allowlist"))
        .count();
    assert!(lines >= 1, "{log}");
    assert!(
        lines < ATTEMPTS,
        "{lines} refusal lines for {ATTEMPTS} connects"
    );
}
