//! Shutdown with peers that are not in the middle of a request.

use std::time::{Duration, Instant};

use pr_testkit::daemon::{Daemon, DaemonOptions};
use rustix::process::Signal;

/// Bounds the wait for the daemon to exit (a hang guard only: the limits
/// given to the daemon are far longer, so only closing the stalled peer at
/// once lets it exit).
const HANG_LIMIT: Duration = Duration::from_secs(60);

/// A peer that connected but never sent its feature word holds no request:
/// at SIGTERM it is closed at once like an idle connection, instead of
/// keeping the daemon up for the handshake deadline.
#[test]
fn a_peer_that_never_finishes_the_handshake_does_not_hold_up_shutdown() {
    let mut daemon = Daemon::start_with(DaemonOptions::default().args([
        "--handshake-timeout",
        "600",
        "--shutdown-grace",
        "600",
    ]))
    .expect("daemon starts");
    let mut stuck = daemon.connect().expect("connect");
    // The greeting shows the connection is being served, in its handshake.
    assert_eq!(stuck.read_features().expect("greeting"), 0);

    daemon.signal(Signal::TERM).expect("SIGTERM");

    let started = Instant::now();
    while daemon.is_running() {
        assert!(
            started.elapsed() < HANG_LIMIT,
            "daemon still running: {}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = daemon.wait().expect("exit status");
    assert!(status.success(), "{status:?}: {}", daemon.log_text());
    stuck.expect_closed().expect("closed by the daemon");
    assert!(
        daemon.log_text().contains("daemon shutting down"),
        "{}",
        daemon.log_text()
    );
}
