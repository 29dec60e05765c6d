//! Every bad input of issue 4, against the real daemon on a temporary socket.
//!
//! Each test checks the outcome for the misbehaving peer, that another client is
//! served while it misbehaves and afterwards, and that the daemon's descriptor count
//! (`/proc/PID/fd`) returns to its idle baseline (no descriptor leaks).

use std::os::fd::{AsFd, BorrowedFd};
use std::thread;
use std::time::Duration;

use pr_testkit::checks::{expect_served, idle_fd_baseline, wait_for_fd_count};
use pr_testkit::{Daemon, DaemonOptions, RawClient, WireResponse, cdb, descriptors};

fn start(args: &[&str]) -> Daemon {
    Daemon::start_with(DaemonOptions::new(env!("CARGO_BIN_EXE_pr-helper")).args(args))
        .expect("daemon starts")
}

/// The answer to a well-formed command on a regular file: CHECK CONDITION, ABORTED
/// COMMAND / I/O PROCESS TERMINATED (no ioctl is sent to a regular file).
fn assert_aborted(response: &WireResponse) {
    assert!(
        response.is_check_condition(0x0b, 0x00, 0x06),
        "{response:?}"
    );
}

/// Polls `done` every 10 ms, 3000 times at most (a hang guard, not a timing check),
/// and panics with `failure` and the daemon's log if it never holds. The daemon acts on
/// what a peer did (closing, logging, freeing a slot) asynchronously.
fn poll_until(daemon: &Daemon, failure: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if done() {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("{failure}; log:\n{}", daemon.log_text());
}

/// Retries a fresh client until one is served.
fn eventually_served(daemon: &Daemon, failure: &str) {
    poll_until(daemon, failure, || expect_served(daemon).is_ok());
}

/// A daemon, its idle descriptor count, and a client already connected before the bad
/// input (it must keep being served).
struct Setup {
    daemon: Daemon,
    baseline: usize,
    bystander: RawClient,
}

impl Setup {
    fn new(args: &[&str]) -> Self {
        let daemon = start(args);
        let baseline = idle_fd_baseline(&daemon).expect("baseline");
        let bystander = daemon.client().expect("bystander connects");
        Self {
            daemon,
            baseline,
            bystander,
        }
    }

    /// The bystander and a brand-new client are both served.
    fn others_served(&mut self) {
        let file = descriptors::regular_file(4096).expect("file");
        let response = self
            .bystander
            .call(&cdb::read_keys(64), file.as_file().as_fd(), &[])
            .expect("bystander served");
        assert_aborted(&response);
        expect_served(&self.daemon).expect("a new client is served");
    }

    /// Everything is closed again: only the bystander's connection remains open.
    fn back_to_baseline(mut self) {
        self.others_served();
        drop(self.bystander);
        wait_for_fd_count(self.daemon.pid(), self.baseline)
            .expect("descriptor count back to baseline");
        assert!(
            self.daemon.is_running(),
            "daemon died:\n{}",
            self.daemon.log_text()
        );
    }

    fn client(&self) -> RawClient {
        self.daemon.client().expect("client connects")
    }

    /// A fresh client sends `bytes` with `fds`; the daemon closes the connection and
    /// logs why (`needle`).
    fn refused(&self, bytes: &[u8], fds: &[BorrowedFd<'_>], needle: &str) {
        let mut bad = self.client();
        bad.send_with_fds(bytes, fds).expect("send");
        bad.expect_closed().expect("closed");
        self.logged(needle);
    }

    /// The daemon wrote a closing line naming `needle`. The line follows the close the
    /// peer sees, so it is polled for.
    fn logged(&self, needle: &str) {
        poll_until(
            &self.daemon,
            &format!("no closing log line containing {needle:?}"),
            || self.has_close_line(needle),
        );
    }

    fn has_close_line(&self, needle: &str) -> bool {
        self.daemon
            .log_text()
            .lines()
            .any(|line| line.contains("connection closed") && line.contains(needle))
    }
}

fn file() -> tempfile::NamedTempFile {
    descriptors::regular_file(4096).expect("file")
}

#[test]
fn request_without_descriptor_closes_the_connection() {
    let mut setup = Setup::new(&[]);
    let mut bad = setup.client();
    bad.send(&cdb::read_keys(64)).expect("send CDB");
    bad.expect_closed().expect("closed");
    setup.logged("without a descriptor");
    setup.others_served();
    setup.back_to_baseline();
}

#[test]
fn two_descriptors_close_the_connection_and_both_descriptors() {
    let setup = Setup::new(&[]);
    let (a, b) = (file(), file());
    let fds: [BorrowedFd<'_>; 2] = [a.as_file().as_fd(), b.as_file().as_fd()];
    setup.refused(&cdb::read_keys(64), &fds, "2 descriptors");
    setup.back_to_baseline();
}

#[test]
fn more_descriptors_than_the_control_buffer_holds_is_a_truncated_control_message() {
    let setup = Setup::new(&[]);
    let files: Vec<_> = (0..12).map(|_| file()).collect();
    let fds: Vec<BorrowedFd<'_>> = files.iter().map(|f| f.as_file().as_fd()).collect();
    setup.refused(&cdb::read_keys(64), &fds, "truncated control message");
    setup.back_to_baseline();
}

#[test]
fn a_descriptor_on_each_half_of_the_cdb_closes_the_connection() {
    let setup = Setup::new(&[]);
    let (a, b) = (file(), file());
    let mut bad = setup.client();
    let command = cdb::read_keys(64);
    bad.send_with_fds(&command[..8], &[a.as_file().as_fd()])
        .expect("first half");
    // The second half may be refused by a socket the daemon already closed.
    let _ = bad.send_with_fds(&command[8..], &[b.as_file().as_fd()]);
    bad.expect_closed().expect("closed");
    setup.logged("descriptors with one CDB");
    setup.back_to_baseline();
}

#[test]
fn a_descriptor_with_the_feature_word_closes_the_connection() {
    let setup = Setup::new(&[]);
    let a = file();
    let mut bad = setup.daemon.connect().expect("connect");
    bad.read_features().expect("features");
    bad.send_with_fds(&0u32.to_be_bytes(), &[a.as_file().as_fd()])
        .expect("send");
    bad.expect_closed().expect("closed");
    setup.logged("during the feature handshake");
    setup.back_to_baseline();
}

#[test]
fn wrong_opcodes_close_the_connection() {
    let setup = Setup::new(&[]);
    let a = file();
    for opcode in [0x00u8, 0x12, 0x5d, 0x60, 0xa3, 0xff] {
        let mut command = cdb::read_keys(64);
        command[0] = opcode;
        setup.refused(
            &command,
            &[a.as_file().as_fd()],
            &format!("opcode {opcode:#04x}"),
        );
    }
    setup.back_to_baseline();
}

#[test]
fn transfer_length_8192_is_served() {
    let setup = Setup::new(&[]);
    let a = file();
    let mut client = setup.client();
    let response = client
        .call(&cdb::read_keys(8192), a.as_file().as_fd(), &[])
        .expect("PR IN 8192");
    assert_aborted(&response);
    let list = vec![0u8; 8192];
    let response = client
        .call(&cdb::register(8192), a.as_file().as_fd(), &list)
        .expect("PR OUT 8192");
    assert_aborted(&response);
    drop(client);
    setup.back_to_baseline();
}

#[test]
fn transfer_lengths_above_8192_close_the_connection() {
    let setup = Setup::new(&[]);
    let a = file();
    for length in [8193u16, 65535] {
        for command in [cdb::read_keys(length), cdb::register(length)] {
            setup.refused(
                &command,
                &[a.as_file().as_fd()],
                &format!("transfer length {length} refused"),
            );
        }
    }
    setup.back_to_baseline();
}

#[test]
fn cdb_bytes_5_and_6_are_refused_without_closing() {
    let setup = Setup::new(&[]);
    let a = file();
    let mut client = setup.client();
    for (index, value) in [(5usize, 0x01u8), (6, 0x80)] {
        let mut command = cdb::register(24);
        command[index] = value;
        let response = client
            .call(&command, a.as_file().as_fd(), &cdb::register_params(1))
            .expect("answered");
        assert!(
            response.is_check_condition(0x05, 0x24, 0x00),
            "{response:?}"
        );
    }
    // The stream stayed in step: the same connection serves the next request.
    let response = client
        .call(&cdb::read_keys(64), a.as_file().as_fd(), &[])
        .expect("next");
    assert_aborted(&response);
    drop(client);
    setup.back_to_baseline();
}

#[test]
fn truncated_parameter_list_then_stall_is_disconnected_at_the_deadline() {
    let mut setup = Setup::new(&["--request-timeout", "0.5"]);
    let a = file();
    let mut bad = setup.client();
    bad.send_with_fds(&cdb::register(24), &[a.as_file().as_fd()])
        .expect("CDB");
    bad.send(&[0u8; 10]).expect("part of the list");
    // Served while the stalled peer still holds its descriptor.
    setup.others_served();
    bad.expect_closed().expect("disconnected at the deadline");
    setup.logged("request deadline");
    setup.back_to_baseline();
}

#[test]
fn stall_inside_the_cdb_is_disconnected_at_the_deadline() {
    let setup = Setup::new(&["--request-timeout", "0.5"]);
    let a = file();
    let mut bad = setup.client();
    bad.send_with_fds(&cdb::read_keys(64)[..5], &[a.as_file().as_fd()])
        .expect("part of the CDB");
    bad.expect_closed().expect("disconnected at the deadline");
    setup.logged("request deadline");
    setup.back_to_baseline();
}

#[test]
fn disconnect_mid_cdb_is_cleaned_up() {
    let setup = Setup::new(&[]);
    let a = file();
    let mut bad = setup.client();
    bad.send_with_fds(&cdb::read_keys(64)[..7], &[a.as_file().as_fd()])
        .expect("part of the CDB");
    drop(bad);
    setup.logged("7 of 16 CDB bytes");
    setup.back_to_baseline();
}

#[test]
fn disconnect_mid_parameter_list_is_cleaned_up() {
    let setup = Setup::new(&[]);
    let a = file();
    let mut bad = setup.client();
    bad.send_with_fds(&cdb::register(24), &[a.as_file().as_fd()])
        .expect("CDB");
    bad.send(&[0u8; 3]).expect("part of the list");
    drop(bad);
    setup.logged("3 of 24 parameter list bytes");
    setup.back_to_baseline();
}

#[test]
fn unknown_requested_features_close_the_connection() {
    let setup = Setup::new(&[]);
    for requested in [1u32, 0x8000_0000, u32::MAX] {
        let mut bad = setup.daemon.connect().expect("connect");
        assert_eq!(bad.read_features().expect("features"), 0);
        bad.send_features(requested).expect("request");
        bad.expect_closed().expect("closed");
    }
    setup.logged("handshake refused");
    setup.back_to_baseline();
}

#[test]
fn handshake_stall_is_disconnected_at_the_deadline() {
    let mut setup = Setup::new(&["--handshake-timeout", "0.5"]);
    let mut silent = setup.daemon.connect().expect("connect");
    silent.read_features().expect("features");
    let mut half = setup.daemon.connect().expect("connect");
    half.read_features().expect("features");
    half.send(&[0, 0]).expect("half a word");
    setup.others_served();
    silent.expect_closed().expect("silent peer disconnected");
    half.expect_closed().expect("half-word peer disconnected");
    setup.logged("handshake deadline");
    setup.back_to_baseline();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let setup = Setup::new(&[]);
    let a = file();
    let (read_only, _backing) = descriptors::read_only_file().expect("read-only file");
    let mut high_bytes = cdb::register(24);
    high_bytes[5] = 1;
    let mut client = setup.client();
    let params = cdb::register_params(7);
    // All three requests are in the socket before the first answer is read.
    client
        .send_request(&cdb::read_keys(64), a.as_file().as_fd(), &[])
        .expect("1");
    client
        .send_request(&cdb::register(24), read_only.as_fd(), &params)
        .expect("2");
    client
        .send_request(&high_bytes, a.as_file().as_fd(), &params)
        .expect("3");
    let first = client.read_response().expect("1");
    let second = client.read_response().expect("2");
    let third = client.read_response().expect("3");
    assert_aborted(&first);
    assert!(second.is_check_condition(0x05, 0x20, 0x00), "{second:?}");
    assert!(third.is_check_condition(0x05, 0x24, 0x00), "{third:?}");
    drop(client);
    setup.back_to_baseline();
}

#[test]
fn a_peer_that_never_reads_holds_up_only_itself() {
    let mut setup = Setup::new(&["--request-timeout", "1"]);
    let a = file();
    let mut hog = setup.client();
    hog.stream()
        .set_write_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let fd = a.as_file().try_clone().expect("dup");
    // Pipeline requests and never read: the daemon's writes fill our receive buffer,
    // then it stops reading us; our writes then block until it drops us.
    let writer = thread::spawn(move || {
        let mut sent = 0u32;
        loop {
            if hog
                .send_request(&cdb::read_keys(64), fd.as_fd(), &[])
                .is_err()
            {
                return sent;
            }
            sent += 1;
        }
    });
    setup.others_served();
    let sent = writer.join().expect("writer");
    assert!(sent > 0);
    setup.logged("did not read its response");
    setup.back_to_baseline();
}

#[test]
fn connections_beyond_the_cap_are_closed_at_once() {
    let daemon = start(&["--max-connections", "3"]);
    let baseline = idle_fd_baseline(&daemon).expect("baseline");
    let first = daemon.client().expect("1");
    let mut second = daemon.client().expect("2");
    let third = daemon.client().expect("3");
    let mut over = daemon.connect().expect("connect succeeds (backlog)");
    assert!(
        over.read_features().is_err(),
        "connection over the cap was served"
    );
    over.expect_closed().expect("closed");
    assert!(daemon.log_text().contains("connection limit reached"));
    // Those within the cap are still served.
    let a = file();
    let response = second
        .call(&cdb::read_keys(8), a.as_file().as_fd(), &[])
        .expect("served");
    assert_aborted(&response);
    // A slot frees when a client leaves (asynchronously: retry until it is reused).
    drop(first);
    eventually_served(&daemon, "slot never freed");
    drop((second, third));
    wait_for_fd_count(daemon.pid(), baseline).expect("baseline");
}

#[test]
fn a_full_descriptor_table_backs_off_and_recovers() {
    const LIMIT: u64 = 48;
    let daemon = Daemon::start_with(
        DaemonOptions::new(env!("CARGO_BIN_EXE_pr-helper")).max_open_files(LIMIT),
    )
    .expect("daemon starts under a low RLIMIT_NOFILE");
    let baseline = idle_fd_baseline(&daemon).expect("baseline");
    let pid = daemon.pid();
    // Enough clients to use every descriptor the daemon may open, and more waiting in
    // the listen backlog: `accept` now fails with EMFILE.
    let free = usize::try_from(LIMIT).expect("limit") - baseline;
    let mut clients = Vec::new();
    for _ in 0..free + 8 {
        clients.push(
            daemon
                .connect()
                .expect("connect (accepted or in the backlog)"),
        );
    }
    wait_for_fd_count(pid, usize::try_from(LIMIT).expect("limit")).expect("table full");
    poll_until(
        &daemon,
        "no \"cannot accept connections\" in the log",
        || daemon.log_text().contains("cannot accept connections"),
    );
    // While full, the daemon waits instead of spinning on accept: over two seconds of
    // wall time it uses a small fraction of one CPU (a spinning accept loop uses all).
    let ticks_before = pr_testkit::cpu_ticks(pid).expect("cpu");
    thread::sleep(Duration::from_secs(2));
    let ticks_used = pr_testkit::cpu_ticks(pid).expect("cpu") - ticks_before;
    let two_seconds = 2 * pr_testkit::proc::ticks_per_second();
    assert!(
        ticks_used * 4 < two_seconds,
        "daemon used {ticks_used} ticks of CPU in {two_seconds} ticks of waiting"
    );
    // Peers leave: the daemon accepts again and serves.
    drop(clients);
    eventually_served(&daemon, "daemon did not recover");
    assert!(daemon.log_text().contains("accepting connections again"));
    wait_for_fd_count(pid, baseline).expect("baseline");
}
