//! A peer's descriptor whose file never answers holds no serving thread.
//!
//! A descriptor of a file on a FUSE file system whose server has stopped answering
//! (`pr_testkit::fuse::StuckFuse`: a plain `fstat` of it waits for GETATTR, every
//! `close` waits for FLUSH, forever) is answered like any other file, 0B/00/06
//! without an ioctl, and the other connections go on being served meanwhile: their
//! commands are answered while several of the stuck descriptors' closes still wait
//! (the hung-device bench row's method: other peers measured while one is stuck; here
//! counted, not timed). Once the file system answers again, every such descriptor
//! is closed. Also a FIFO and a socket, which must not hold anything either. Needs root
//! and `/dev/fuse` (the test machine has both).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use std::time::{Duration, Instant};

use pr_testkit::checks::{idle_fd_baseline, wait_for_fd_count};
use pr_testkit::fuse::StuckFuse;
use pr_testkit::{Daemon, DaemonOptions, RawClient, WireResponse, cdb, descriptors};

/// Bounds a wait for an answer, so that a regression fails instead of hanging the
/// suite (not a timing assertion: an answer comes in microseconds).
const ANSWER_LIMIT: Duration = Duration::from_secs(20);

fn connect(daemon: &Daemon) -> RawClient {
    let client = daemon.client().expect("client");
    client
        .stream()
        .set_read_timeout(Some(ANSWER_LIMIT))
        .expect("read timeout");
    client
}

fn read_keys(client: &mut RawClient, fd: BorrowedFd<'_>) -> io::Result<WireResponse> {
    client.call(&cdb::read_keys(64), fd, &[])
}

fn assert_aborted_command(response: &WireResponse, what: &str) {
    assert!(
        response.is_check_condition(0x0b, 0x00, 0x06),
        "{what}: {response:?}"
    );
}

#[test]
fn a_descriptor_of_a_file_system_that_never_answers_holds_no_serving_thread() {
    let daemon = Daemon::start_with(DaemonOptions::new(env!("CARGO_BIN_EXE_pr-helper")))
        .expect("daemon starts");
    let baseline = idle_fd_baseline(&daemon).expect("baseline");
    // Declared after the daemon, so dropped before it: a failing test releases the
    // held requests first, and the daemon can then exit.
    let mut fuse = StuckFuse::mount().expect("mount a FUSE file system (root, /dev/fuse)");
    fuse.open().expect("open the file on it");
    fuse.go_silent();
    let stuck = fuse.descriptor().expect("opened");

    // More stuck descriptors than a thread could be spared for each: every one is
    // answered, and every close of one waits in the file system.
    const STUCK: usize = 6;
    let mut stuck_clients = Vec::new();
    for index in 0..STUCK {
        let mut client = connect(&daemon);
        let response = read_keys(&mut client, stuck)
            .unwrap_or_else(|error| panic!("stuck descriptor {index}: no answer: {error}"));
        assert_aborted_command(&response, "descriptor of the stuck file system");
        stuck_clients.push(client);
    }
    // Their closes are under way: waiting for FLUSH, which is never answered (the
    // daemon's closer threads each wait in one; the rest queue behind them).
    let until = Instant::now() + ANSWER_LIMIT;
    while fuse.flushes() == 0 {
        assert!(
            Instant::now() < until,
            "no close of a stuck descriptor began"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // Meanwhile four other connections are served, many commands each.
    let file = descriptors::regular_file(4096).expect("file");
    let (fifo_read, _fifo_write) = descriptors::pipe().expect("pipe");
    let (socket, _peer) = descriptors::socket_pair().expect("socket pair");
    std::thread::scope(|scope| {
        for worker in 0..4 {
            let (daemon, file) = (&daemon, &file);
            scope.spawn(move || {
                let mut client = connect(daemon);
                for command in 0..200 {
                    let response = read_keys(&mut client, file.as_file().as_fd())
                        .unwrap_or_else(|e| panic!("worker {worker}, command {command}: {e}"));
                    assert_aborted_command(&response, "regular file");
                }
            });
        }
    });
    // A FIFO and a socket are answered too, on a connection of their own.
    let mut client = connect(&daemon);
    for (what, fd) in [("FIFO", fifo_read.as_fd()), ("socket", socket.as_fd())] {
        let response = read_keys(&mut client, fd).expect(what);
        assert_aborted_command(&response, what);
    }
    // The connections that sent stuck descriptors are served again as well.
    for (index, client) in stuck_clients.iter_mut().enumerate() {
        let response = read_keys(client, file.as_file().as_fd())
            .unwrap_or_else(|e| panic!("stuck client {index}, next command: {e}"));
        assert_aborted_command(&response, "next command after a stuck descriptor");
    }

    // Once the file system answers again the waiting closes return: nothing is
    // leaked.
    drop(client);
    drop(stuck_clients);
    fuse.release();
    wait_for_fd_count(daemon.pid(), baseline).expect("every descriptor closed");
}
