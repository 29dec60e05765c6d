//! [`serve`](super::serve) in-process, with a test backend injected: graceful drain,
//! forced stop after the grace period, the uid allowlist, deadlines on a busy
//! connection, a hung device, threads kept by idle connections. Nothing here measures time; waits only bound a hang.

use std::os::fd::AsFd;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use pr_testkit::{RawClient, cdb, descriptors};

use super::{IDLE_PARK, ServeSettings, ServeSummary, Shutdown, serve};
use crate::backend::{Backend, BackendSettings, Backends, Command, SgIoBackend, SgIoSettings};

/// Waits `latency` (or, for the file `hung`, until released), then answers as SG_IO.
#[derive(Debug)]
struct Delayed {
    latency: Duration,
    then: SgIoBackend,
    hung: Option<(sg_io::FileIdentity, Arc<Mutex<()>>)>,
}

impl Backend for Delayed {
    fn execute(&self, command: &Command<'_>) -> pr_protocol::Response {
        if let Some((file, gate)) = &self.hung
            && *file == command.file
        {
            drop(gate.lock());
        }
        thread::sleep(self.latency);
        self.then.execute(command)
    }
}

/// A daemon core serving on its own thread.
struct Running {
    stop: Arc<Shutdown>,
    done: mpsc::Receiver<ServeSummary>,
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
}

impl Running {
    /// Triggers the shutdown and waits for `serve` to return its summary.
    fn shut_down(&self) -> ServeSummary {
        self.stop.trigger();
        self.done.recv().expect("serve returned")
    }
}

fn start(settings: ServeSettings, latency: Duration) -> Running {
    start_with(settings, latency, None)
}

fn start_with(
    settings: ServeSettings,
    latency: Duration,
    hung: Option<(sg_io::FileIdentity, Arc<Mutex<()>>)>,
) -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("serve.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let stop = Arc::new(Shutdown::new().expect("shutdown"));
    let (done_tx, done) = mpsc::channel();
    let shutdown = Arc::clone(&stop);
    thread::spawn(move || {
        let delayed = Delayed {
            latency,
            then: SgIoBackend::new(&SgIoSettings {
                timeout: Duration::from_secs(30),
            }),
            hung,
        };
        let backends = Backends::new(&BackendSettings::default())
            .expect("backends")
            .replace_all_with(Arc::new(delayed));
        let summary = serve(listener, &settings, Arc::new(backends), shutdown).expect("serve");
        let _ = done_tx.send(summary);
    });
    Running {
        stop,
        done,
        _dir: dir,
        socket,
    }
}

/// The test backend's answer to READ KEYS on a regular file: SG_IO's ENOTTY, as
/// CHECK CONDITION 0B/00/06.
fn assert_aborted(response: &pr_testkit::raw::WireResponse) {
    assert!(
        response.is_check_condition(0x0b, 0x00, 0x06),
        "{response:?}"
    );
}

/// One READ KEYS on `fd` through `peer`, answered as [`assert_aborted`] says.
fn read_keys_aborted(peer: &mut RawClient, fd: std::os::fd::BorrowedFd<'_>, what: &str) {
    let response = peer
        .call(&cdb::read_keys(64), fd, &[])
        .unwrap_or_else(|error| panic!("{what}: {error}"));
    assert_aborted(&response);
}

fn client(socket: &Path) -> RawClient {
    let mut client = RawClient::connect(socket).expect("connect");
    client.handshake().expect("handshake");
    client
}

#[test]
fn shutdown_answers_commands_already_sent_and_closes_idle_connections() {
    let running = start(ServeSettings::default(), Duration::from_millis(300));
    let file = descriptors::regular_file(4096).expect("file");
    let mut busy = client(&running.socket);
    let mut idle = client(&running.socket);
    busy.send_request(&cdb::read_keys(64), file.as_file().as_fd(), &[])
        .expect("request");
    running.stop.trigger();
    let response = busy.read_response().expect("answered despite the shutdown");
    assert_aborted(&response);
    busy.expect_closed().expect("closed after its answer");
    idle.expect_closed().expect("idle connection closed");
    let summary = running.done.recv().expect("serve returned");
    assert_eq!(summary.commands, 1);
    assert_eq!(summary.forced_connections, 0);
    assert!(
        RawClient::connect(&running.socket).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn the_grace_period_bounds_the_drain() {
    let settings = ServeSettings {
        shutdown_grace: Duration::from_millis(100),
        ..ServeSettings::default()
    };
    let running = start(settings, Duration::from_secs(600));
    let file = descriptors::regular_file(4096).expect("file");
    let mut stuck = client(&running.socket);
    stuck
        .send_request(&cdb::read_keys(64), file.as_file().as_fd(), &[])
        .expect("request");
    running.stop.trigger();
    let summary = running
        .done
        .recv()
        .expect("serve returned after the grace period");
    assert_eq!(summary.forced_connections, 1);
    assert_eq!(summary.commands, 0);
    assert!(
        stuck.read_response().is_err(),
        "a forced connection got an answer"
    );
}

#[test]
fn peers_outside_the_uid_allowlist_are_refused() {
    let own_uid = rustix::process::getuid().as_raw();
    let settings = ServeSettings {
        allowed_uids: Some(vec![own_uid.wrapping_add(1)]),
        ..ServeSettings::default()
    };
    let running = start(settings, Duration::ZERO);
    let mut refused = RawClient::connect(&running.socket).expect("connect");
    assert!(
        refused.read_features().is_err(),
        "refused peer got the feature word"
    );
    let summary = running.shut_down();
    assert_eq!(summary.connections_refused, 1);
}

/// One connection answered twice with an idle gap after each command, then closed at
/// shutdown.
fn served_across_idle_gaps(settings: ServeSettings) {
    let running = start(settings, Duration::ZERO);
    let file = descriptors::regular_file(4096).expect("file");
    let mut peer = client(&running.socket);
    for _ in 0..2 {
        read_keys_aborted(&mut peer, file.as_file().as_fd(), "answered");
        // Idle for well over the park time.
        thread::sleep(IDLE_PARK * 5);
    }
    running.stop.trigger();
    peer.expect_closed()
        .expect("idle connection closed at shutdown");
    let summary = running.done.recv().expect("serve returned");
    assert_eq!(summary.commands, 2);
    assert_eq!(summary.forced_connections, 0);
}

#[test]
fn a_connection_set_aside_while_idle_is_served_again() {
    // One thread, so none is kept between commands: the idle connection goes back
    // into the epoll set.
    served_across_idle_gaps(ServeSettings {
        blocking_threads: 1,
        ..ServeSettings::default()
    });
}

#[test]
fn a_connection_that_keeps_its_thread_while_idle_is_served_again() {
    // The default cap leaves threads to keep: the idle connection waits on its own,
    // with no time limit, and the shutdown still ends that wait.
    served_across_idle_gaps(ServeSettings::default());
}

#[test]
fn idle_connections_keep_at_most_half_the_threads() {
    // Two threads: one may be kept by an idle connection, never both. Two answered
    // connections go idle; a third is served all the same.
    let running = start(two_threads(), Duration::ZERO);
    let file = descriptors::regular_file(4096).expect("file");
    let mut idle: Vec<RawClient> = (0..2).map(|_| client(&running.socket)).collect();
    for peer in &mut idle {
        read_keys_aborted(peer, file.as_file().as_fd(), "answered");
    }
    // Long enough for the one that cannot keep its thread to be set aside (not a
    // timing assertion: the third peer must be served whenever it comes).
    thread::sleep(IDLE_PARK * 5);
    answered_over_and_over(&running.socket, file.as_file());
    // The idle ones are still served.
    for peer in &mut idle {
        read_keys_aborted(peer, file.as_file().as_fd(), "answered after idling");
    }
    let summary = running.shut_down();
    assert_eq!(summary.commands, 24);
    assert_eq!(summary.forced_connections, 0);
}

#[test]
fn ten_connections_on_one_device_are_all_answered() {
    // Ten connections, one file, each command held in the backend for a while: every
    // connection gets a thread of its own.
    let running = start(ServeSettings::default(), Duration::from_millis(50));
    let file = descriptors::regular_file(4096).expect("file");
    let mut peers: Vec<RawClient> = (0..10).map(|_| client(&running.socket)).collect();
    for peer in &mut peers {
        peer.send_request(&cdb::read_keys(64), file.as_file().as_fd(), &[])
            .expect("request");
    }
    for peer in &mut peers {
        let response = peer.read_response().expect("answered");
        assert_aborted(&response);
    }
    // Each connection goes on working after its command was queued.
    for peer in &mut peers {
        read_keys_aborted(peer, file.as_file().as_fd(), "answered again");
    }
    let summary = running.shut_down();
    assert_eq!(summary.commands, 20);
    assert_eq!(summary.forced_connections, 0);
}

#[test]
fn a_request_left_incomplete_on_the_connections_thread_ends_it_at_the_deadline() {
    let settings = ServeSettings {
        request_timeout: Duration::from_millis(200),
        ..ServeSettings::default()
    };
    let running = start(settings, Duration::ZERO);
    let file = descriptors::regular_file(4096).expect("file");
    let mut peer = client(&running.socket);
    // The first command is served on a thread, which then keeps the connection ...
    read_keys_aborted(&mut peer, file.as_file().as_fd(), "answered");
    // ... which then gets only part of the next CDB and never the rest.
    let partial = cdb::read_keys(64);
    peer.send(&partial[..5]).expect("partial request");
    peer.expect_closed()
        .expect("closed once the request deadline passed");
    let summary = running.shut_down();
    assert_eq!(summary.commands, 1);
}

#[test]
fn a_partial_request_is_dropped_at_shutdown_without_waiting_for_its_deadline() {
    // Deadlines far beyond the test's own read limit: only the shutdown can end it.
    let settings = ServeSettings {
        request_timeout: Duration::from_secs(600),
        shutdown_grace: Duration::from_secs(600),
        ..ServeSettings::default()
    };
    let running = start(settings, Duration::ZERO);
    let file = descriptors::regular_file(4096).expect("file");
    let mut peer = client(&running.socket);
    // The first command is served on a thread, which then waits in `recvmsg` for the
    // rest of the next request.
    read_keys_aborted(&mut peer, file.as_file().as_fd(), "answered");
    let partial = cdb::read_keys(64);
    peer.send_with_fds(&partial[..5], &[file.as_file().as_fd()])
        .expect("partial request");
    running.stop.trigger();
    peer.expect_closed()
        .expect("closed at shutdown, the partial request dropped");
    let summary = running.done.recv().expect("serve returned");
    assert_eq!(summary.commands, 1);
    assert_eq!(summary.forced_connections, 0);
}

#[test]
fn a_hung_device_holds_up_only_its_own_commands() {
    let hung_file = descriptors::regular_file(4096).expect("file");
    let other_file = descriptors::regular_file(4096).expect("file");
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().expect("gate");
    let identity = file_identity(hung_file.as_file());
    let running = start_with(
        ServeSettings::default(),
        Duration::ZERO,
        Some((identity, Arc::clone(&gate))),
    );
    // Three connections stuck on the hung device ...
    let mut stuck: Vec<RawClient> = (0..3).map(|_| client(&running.socket)).collect();
    for peer in &mut stuck {
        peer.send_request(&cdb::read_keys(64), hung_file.as_file().as_fd(), &[])
            .expect("request");
    }
    // ... while others keep being answered, over and over.
    let mut others: Vec<RawClient> = (0..3).map(|_| client(&running.socket)).collect();
    for _ in 0..20 {
        for peer in &mut others {
            read_keys_aborted(
                peer,
                other_file.as_file().as_fd(),
                "answered while the device hangs",
            );
        }
    }
    // The device comes back: its commands are answered too.
    drop(held);
    for peer in &mut stuck {
        let response = peer
            .read_response()
            .expect("answered once the device is back");
        assert_aborted(&response);
    }
    let summary = running.shut_down();
    assert_eq!(summary.commands, 63);
    assert_eq!(summary.forced_connections, 0);
}

#[test]
fn a_peer_that_never_sends_its_feature_word_is_closed_at_the_handshake_deadline() {
    let settings = ServeSettings {
        handshake_timeout: Duration::from_millis(200),
        ..ServeSettings::default()
    };
    let running = start(settings, Duration::ZERO);
    let mut silent = RawClient::connect(&running.socket).expect("connect");
    silent.read_features().expect("greeting");
    silent
        .expect_closed()
        .expect("closed once the handshake deadline passed");
    // A peer that does its handshake is still served.
    let file = descriptors::regular_file(4096).expect("file");
    let mut peer = client(&running.socket);
    peer.call(&cdb::read_keys(64), file.as_file().as_fd(), &[])
        .expect("answered");
    let summary = running.shut_down();
    assert_eq!(summary.commands, 1);
}

fn file_identity(file: &std::fs::File) -> sg_io::FileIdentity {
    let stat = rustix::fs::fstat(file).expect("fstat");
    sg_io::FileIdentity {
        dev: stat.st_dev,
        ino: stat.st_ino,
        rdev: stat.st_rdev,
    }
}

/// Two serving threads at most: a connection that held one while its peer stalls
/// would show at once.
fn two_threads() -> ServeSettings {
    ServeSettings {
        blocking_threads: 2,
        request_timeout: Duration::from_secs(600),
        shutdown_grace: Duration::from_millis(200),
        ..ServeSettings::default()
    }
}

fn answered_over_and_over(socket: &Path, file: &std::fs::File) {
    let mut healthy = client(socket);
    for _ in 0..20 {
        read_keys_aborted(
            &mut healthy,
            file.as_fd(),
            "answered while other peers stall",
        );
    }
}

#[test]
fn peers_that_send_half_a_request_hold_no_thread() {
    let running = start(two_threads(), Duration::ZERO);
    let file = descriptors::regular_file(4096).expect("file");
    let partial = cdb::read_keys(64);
    let mut stalled: Vec<RawClient> = (0..5).map(|_| client(&running.socket)).collect();
    for peer in &mut stalled {
        peer.send_with_fds(&partial[..5], &[file.as_file().as_fd()])
            .expect("partial request");
    }
    answered_over_and_over(&running.socket, file.as_file());
    running.stop.trigger();
    for peer in &mut stalled {
        peer.expect_closed()
            .expect("closed at shutdown, the partial request dropped");
    }
    let summary = running.done.recv().expect("serve returned");
    assert_eq!(summary.commands, 20);
}

#[test]
fn a_peer_that_never_reads_its_replies_holds_no_thread() {
    let running = start(two_threads(), Duration::ZERO);
    let file = descriptors::regular_file(4096).expect("file");
    let greedy = client(&running.socket);
    // Requests without ever reading a reply, until the daemon's replies fill the
    // socket and it stops reading: the sender then blocks, so it runs on its own.
    let stream = greedy.stream().try_clone().expect("clone");
    let fd = file.as_file().try_clone().expect("clone");
    let sender = thread::spawn(move || {
        let mut greedy = RawClient::from_stream(stream).expect("client");
        for _ in 0..2000 {
            if greedy
                .send_request(&cdb::read_keys(64), fd.as_fd(), &[])
                .is_err()
            {
                break;
            }
        }
    });
    // Long enough for the replies to back up (not a timing assertion: the healthy
    // peer must be served whenever it comes).
    thread::sleep(IDLE_PARK * 10);
    answered_over_and_over(&running.socket, file.as_file());
    let summary = running.shut_down();
    // Its replies backed up (it got far fewer than it asked for) and it was still
    // waiting for one when the grace period cut it off.
    assert!(
        summary.commands >= 20 && summary.commands < 2000,
        "{summary:?}"
    );
    assert_eq!(summary.forced_connections, 1, "{summary:?}");
    drop(greedy);
    sender
        .join()
        .expect("sender ends once the connection is cut");
}
