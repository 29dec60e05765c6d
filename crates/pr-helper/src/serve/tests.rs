//! [`serve`](super::serve) in-process: graceful drain, forced stop after the grace
//! period, the uid allowlist. Commands are kept in flight with the test-only latency
//! hook, so these tests exist only with the `test-hooks` feature.

use std::os::fd::AsFd;
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use pr_testkit::{RawClient, cdb, descriptors};
use tokio::net::UnixListener;

use super::{ServeSettings, ServeSummary, serve_with_backends, shutdown_channel};
use crate::backend::Backends;

/// A daemon core running on its own runtime thread.
struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    done: mpsc::Receiver<ServeSummary>,
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
}

fn start(settings: ServeSettings, latency: Duration) -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("serve.sock");
    let (stop, shutdown) = shutdown_channel();
    let (done_tx, done) = mpsc::channel();
    let (ready_tx, ready) = mpsc::channel();
    let path = socket.clone();
    thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let summary = runtime.block_on(async move {
            let listener = UnixListener::bind(&path).expect("bind");
            ready_tx.send(()).expect("ready");
            let backends = Backends::new(&settings)
                .expect("backends")
                .with_injected_latency(latency);
            serve_with_backends(listener, settings, backends, shutdown)
                .await
                .expect("serve")
        });
        // A forced stop leaves a sleeping backend call behind; do not wait for it.
        runtime.shutdown_background();
        let _ = done_tx.send(summary);
    });
    ready.recv().expect("listener bound");
    Running {
        stop,
        done,
        _dir: dir,
        socket,
    }
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
    running.stop.send(true).expect("stop");
    let response = busy.read_response().expect("answered despite the shutdown");
    assert!(
        response.is_check_condition(0x0b, 0x00, 0x06),
        "{response:?}"
    );
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
    running.stop.send(true).expect("stop");
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
    running.stop.send(true).expect("stop");
    let summary = running.done.recv().expect("serve returned");
    assert_eq!(summary.connections_refused, 1);
}

#[test]
fn a_connection_its_thread_handed_back_is_served_again() {
    // Zero injected latency: every command still takes the blocking path, so the
    // connection moves to a thread of its own with its first command.
    let running = start(ServeSettings::default(), Duration::ZERO);
    let file = descriptors::regular_file(4096).expect("file");
    let mut peer = client(&running.socket);
    for _ in 0..2 {
        let response = peer
            .call(&cdb::read_keys(64), file.as_file().as_fd(), &[])
            .expect("answered");
        assert!(
            response.is_check_condition(0x0b, 0x00, 0x06),
            "{response:?}"
        );
        // Idle for well over the hand-back period: the task has the socket again.
        thread::sleep(super::affine::IDLE_HAND_BACK * 5);
    }
    running.stop.send(true).expect("stop");
    peer.expect_closed()
        .expect("idle connection closed at shutdown");
    let summary = running.done.recv().expect("serve returned");
    assert_eq!(summary.commands, 2);
    assert_eq!(summary.forced_connections, 0);
}

#[test]
fn commands_beyond_a_devices_slots_wait_in_the_pool_and_are_all_answered() {
    // Ten connections, one file: four commands get the device's slots on their
    // connections' threads, the others are queued in the pool until a slot frees.
    let running = start(ServeSettings::default(), Duration::from_millis(50));
    let file = descriptors::regular_file(4096).expect("file");
    let mut peers: Vec<RawClient> = (0..10).map(|_| client(&running.socket)).collect();
    for peer in &mut peers {
        peer.send_request(&cdb::read_keys(64), file.as_file().as_fd(), &[])
            .expect("request");
    }
    for peer in &mut peers {
        let response = peer.read_response().expect("answered");
        assert!(
            response.is_check_condition(0x0b, 0x00, 0x06),
            "{response:?}"
        );
    }
    // Each connection goes on working after its command was queued.
    for peer in &mut peers {
        let response = peer
            .call(&cdb::read_keys(64), file.as_file().as_fd(), &[])
            .expect("answered again");
        assert!(
            response.is_check_condition(0x0b, 0x00, 0x06),
            "{response:?}"
        );
    }
    running.stop.send(true).expect("stop");
    let summary = running.done.recv().expect("serve returned");
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
    // The first command moves the connection to a thread of its own ...
    let response = peer
        .call(&cdb::read_keys(64), file.as_file().as_fd(), &[])
        .expect("answered");
    assert!(
        response.is_check_condition(0x0b, 0x00, 0x06),
        "{response:?}"
    );
    // ... which then gets only part of the next CDB and never the rest.
    let partial = cdb::read_keys(64);
    peer.send(&partial[..5]).expect("partial request");
    peer.expect_closed()
        .expect("closed once the request deadline passed");
    running.stop.send(true).expect("stop");
    let summary = running.done.recv().expect("serve returned");
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
    // The first command moves the connection to a thread of its own, which then
    // waits in `poll` for the rest of the next request.
    let response = peer
        .call(&cdb::read_keys(64), file.as_file().as_fd(), &[])
        .expect("answered");
    assert!(
        response.is_check_condition(0x0b, 0x00, 0x06),
        "{response:?}"
    );
    let partial = cdb::read_keys(64);
    peer.send_with_fds(&partial[..5], &[file.as_file().as_fd()])
        .expect("partial request");
    running.stop.send(true).expect("stop");
    peer.expect_closed()
        .expect("closed at shutdown, the partial request dropped");
    let summary = running.done.recv().expect("serve returned");
    assert_eq!(summary.commands, 1);
    assert_eq!(summary.forced_connections, 0);
}
