//! SIGTERM while peers keep sending: every request written before the signal is
//! answered, a connection then answers only what was already waiting in its socket and
//! closes, and the daemon exits 0 with its socket and pid file gone.
//!
//! Commands are kept in flight by `pr-helper-slow`, the daemon with a test backend that
//! waits before every command. Nothing here measures time; waits are bounded
//! only to turn a hang into a failure.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use pr_testkit::daemon::{Daemon, DaemonOptions};
use pr_testkit::wait::wait_until;
use pr_testkit::{RawClient, cdb};
use rustix::process::Signal;

/// Connections, each with its own image file (no per-device limit queues them).
const CLIENTS: usize = 4;
/// Requests each client keeps outstanding: with two, the next request is always
/// waiting in the socket while the current one executes.
const WINDOW: usize = 2;
/// Replies each client collects before the signal.
const WARM_UP: u64 = 10;
/// Replies after the signal to requests written after it, per connection: the drain
/// may count at most the window that was in the socket when the connection noticed.
const AFTER_SIGNAL_LIMIT: u64 = WINDOW as u64;
/// A client stops sending after this many requests written after the signal (a
/// daemon that keeps serving would otherwise never let the test end).
const SEND_AFTER_SIGNAL_CAP: u64 = 200;

/// What one client saw.
#[derive(Debug, Default)]
struct Tally {
    /// Replies to requests fully written before the signal.
    answered_before: u64,
    /// Requests fully written before the signal that got no reply.
    missing_before: u64,
    /// Replies to requests written after the signal.
    answered_after: u64,
    /// Requests written after the signal.
    sent_after: u64,
    /// How the connection ended (after all replies): `None` is EOF or a reset.
    end: Option<String>,
}

/// Keeps `WINDOW` READ KEYS outstanding on `client` until the daemon closes it.
fn closed_loop(
    mut client: RawClient,
    file: &tempfile::NamedTempFile,
    signalled: &AtomicBool,
    replies: &AtomicU64,
) -> Tally {
    let mut tally = Tally::default();
    // For each outstanding request: was it fully written before the signal?
    let mut outstanding = VecDeque::new();
    let mut sending = true;
    let send = |client: &mut RawClient, tally: &mut Tally, outstanding: &mut VecDeque<bool>| {
        if tally.sent_after >= SEND_AFTER_SIGNAL_CAP {
            return false;
        }
        match client.send_request(&cdb::read_keys(64), file.as_file().as_fd(), &[]) {
            Ok(()) => {
                // Read after the write returned: `false` proves the write came first.
                let before = !signalled.load(Ordering::SeqCst);
                if !before {
                    tally.sent_after += 1;
                }
                outstanding.push_back(before);
                true
            }
            // The daemon closed the connection: only replies are left to read.
            Err(_) => false,
        }
    };
    for _ in 0..WINDOW {
        sending = sending && send(&mut client, &mut tally, &mut outstanding);
    }
    loop {
        match client.read_response() {
            Ok(response) => {
                assert!(
                    response.is_check_condition(0x0B, 0x00, 0x06),
                    "{response:?}"
                );
                replies.fetch_add(1, Ordering::SeqCst);
                match outstanding.pop_front() {
                    Some(true) => tally.answered_before += 1,
                    Some(false) => tally.answered_after += 1,
                    None => panic!("a reply to no request"),
                }
                sending = sending && send(&mut client, &mut tally, &mut outstanding);
            }
            Err(error) => {
                if !matches!(
                    error.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                ) {
                    tally.end = Some(error.to_string());
                }
                break;
            }
        }
    }
    tally.missing_before = outstanding.iter().filter(|&&before| before).count() as u64;
    tally
}

#[test]
fn sigterm_ends_busy_connections_after_what_was_already_sent() {
    let options = DaemonOptions::slow(20).with_pid_file();
    let mut daemon =
        Daemon::start_with(options.args(["--shutdown-grace", "120"])).expect("daemon starts");
    let pidfile = daemon.pid_file().expect("a pid file").to_owned();

    let signalled = Arc::new(AtomicBool::new(false));
    let replies = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let client = daemon.client().expect("client");
            let signalled = Arc::clone(&signalled);
            let replies = Arc::clone(&replies);
            thread::spawn(move || {
                let file = pr_testkit::descriptors::regular_file(4096).expect("file");
                closed_loop(client, &file, &signalled, &replies)
            })
        })
        .collect();

    wait_until("every client is under way", || {
        replies.load(Ordering::SeqCst) >= WARM_UP * CLIENTS as u64
    });
    signalled.store(true, Ordering::SeqCst);
    daemon.signal(Signal::TERM).unwrap();

    let tallies: Vec<Tally> = clients
        .into_iter()
        .map(|client| client.join().expect("client thread"))
        .collect();
    let status = daemon.wait().unwrap();
    let log = daemon.log_text();
    for tally in &tallies {
        assert_eq!(tally.missing_before, 0, "{tally:?}\n{log}");
        assert!(tally.answered_before > 0, "{tally:?}");
        assert!(
            tally.answered_after <= AFTER_SIGNAL_LIMIT,
            "served on after the signal: {tally:?}"
        );
        assert_eq!(tally.end, None, "{tally:?}");
    }
    assert!(status.success(), "{status}: {log}");
    assert!(!log.contains("grace period over"), "{log}");
    // One closing line per connection, each saying why.
    assert_eq!(
        log.matches("reason=daemon shutting down").count(),
        CLIENTS,
        "{log}"
    );
    assert!(!daemon.socket().exists(), "socket left behind");
    assert!(!pidfile.exists(), "pid file left behind");
    eprintln!("{tallies:#?}");
}
