//! The client against both real helpers (ours and Debian's
//! `qemu-pr-helper`), over real sockets with real descriptors.

mod common;

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::Duration;

use common::{Helper, Peer, read_keys_cdb, register_cdb, regular_file};
use pr_manager::{Client, Config, DataTransfer, Error, StatusEvent, TransportError};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use scsi::sense::Sense;
use scsi::status::Status;

/// Guards a wait on an event against hanging forever; never measured.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn config(helper: &Helper) -> Config {
    let mut config = Config::new(helper.socket());
    config.idle_watch_interval = Some(Duration::from_millis(50));
    config
}

fn next_event(events: &Receiver<StatusEvent>) -> StatusEvent {
    events.recv_timeout(HANG_GUARD).expect("a status event")
}

/// The next connection to `listener`, waiting at most [`HANG_GUARD`].
fn accept_one(listener: &UnixListener) -> UnixStream {
    let mut ready = [PollFd::new(listener, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: i64::try_from(HANG_GUARD.as_secs()).expect("guard in range"),
        tv_nsec: 0,
    };
    let count = poll(&mut ready, Some(&timeout)).expect("poll the stand-in listener");
    assert_eq!(count, 1, "nobody connected within {HANG_GUARD:?}");
    listener.accept().expect("accept").0
}

fn handshake_and_status(peer: Peer) {
    let helper = Helper::start(peer);
    let client = Client::new(config(&helper));
    let events = client.subscribe();
    assert!(!client.is_connected(), "lazy client starts disconnected");
    let client = Client::connect(config(&helper)).expect("connect and negotiate");
    assert!(client.is_connected());
    assert_eq!(client.idle_connections(), 1);
    drop(events);
}

fn non_scsi_descriptor_is_io_process_terminated(peer: Peer) {
    let helper = Helper::start(peer);
    let client = Client::new(config(&helper));
    let file = regular_file();
    let mut buf = [0u8; 64];
    let reply = client
        .execute(
            &read_keys_cdb(64),
            file.as_file().as_fd(),
            DataTransfer::FromDevice(&mut buf),
        )
        .expect("a valid command");
    assert!(reply.failure.is_none(), "{:?}", reply.failure);
    assert_eq!(reply.status, Status::CHECK_CONDITION);
    let sense = reply.decoded_sense().expect("sense with CHECK CONDITION");
    assert_eq!(sense, Sense::IO_ERROR);
    assert_eq!(sense.to_string(), "ABORTED COMMAND: I/O PROCESS TERMINATED");
    assert_eq!(reply.data_len, 0);
    assert_eq!(reply.residual, 64);
    assert!(client.is_connected());
}

fn pr_out_on_read_only_descriptor_is_invalid_opcode(peer: Peer) {
    let helper = Helper::start(peer);
    let client = Client::new(config(&helper));
    let file = regular_file();
    let read_only = File::open(file.path()).expect("open read-only");
    let (cdb, params) = register_cdb(0x1234);
    let reply = client
        .execute(&cdb, read_only.as_fd(), DataTransfer::ToDevice(&params))
        .expect("a valid command");
    assert!(reply.failure.is_none(), "{:?}", reply.failure);
    assert_eq!(reply.status, Status::CHECK_CONDITION);
    let sense = reply.decoded_sense().expect("sense");
    assert_eq!(sense, Sense::INVALID_OPCODE);
    assert_eq!(
        sense.to_string(),
        "ILLEGAL REQUEST: INVALID COMMAND OPERATION CODE"
    );
}

/// Stop, notice while idle, restart during the retry window, reconnect.
fn reconnect_within_window_and_idle_notice(peer: Peer) {
    let mut helper = Helper::start(peer);
    let mut cfg = config(&helper);
    // A wide window so a slow restart on a noisy machine still fits in it.
    cfg.connect_attempts = 40;
    cfg.retry_interval = Duration::from_millis(250);
    let client = Client::new(cfg);
    let events = client.subscribe();
    let file = regular_file();
    let fd = file.as_file().as_fd();
    let mut buf = [0u8; 32];

    let first = client
        .execute(&read_keys_cdb(32), fd, DataTransfer::FromDevice(&mut buf))
        .expect("valid");
    assert!(first.failure.is_none());
    assert_eq!(next_event(&events), StatusEvent::Connected);

    helper.stop();
    // Nothing is sent: the watcher sees the hang-up on the idle socket.
    assert!(matches!(
        next_event(&events),
        StatusEvent::Disconnected { .. }
    ));
    assert!(!client.is_connected());
    assert_eq!(client.idle_connections(), 0);

    // A stand-in on the helper's path that accepts and hangs up at once: the
    // command's first connect attempt reaches it and fails in the handshake,
    // which the test sees as an event (the accept) instead of sleeping.
    let gate = UnixListener::bind(helper.socket()).expect("bind the stand-in");
    let second = thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let mut buf = [0u8; 32];
            client
                .execute(&read_keys_cdb(32), fd, DataTransfer::FromDevice(&mut buf))
                .expect("valid")
        });
        // The command has started failing its first attempts: restart.
        drop(accept_one(&gate));
        drop(gate);
        helper.restart();
        worker.join().expect("worker")
    });
    assert!(second.failure.is_none(), "{:?}", second.failure);
    assert_eq!(second.decoded_sense(), Some(Sense::IO_ERROR));
    assert_eq!(next_event(&events), StatusEvent::Connected);
    assert!(client.is_connected());
}

fn down_longer_than_window_is_lun_communication_failure(peer: Peer) {
    let mut helper = Helper::start(peer);
    let mut cfg = config(&helper);
    cfg.connect_attempts = 3;
    cfg.retry_interval = Duration::from_millis(20);
    let client = Client::new(cfg);
    helper.stop();
    let file = regular_file();
    let mut buf = [0u8; 16];
    let reply = client
        .execute(
            &read_keys_cdb(16),
            file.as_file().as_fd(),
            DataTransfer::FromDevice(&mut buf),
        )
        .expect("valid");
    assert_eq!(reply.status, Status::CHECK_CONDITION);
    assert_eq!(reply.decoded_sense(), Some(Sense::LUN_COMM_FAILURE));
    assert_eq!(&reply.sense[..18], &Sense::LUN_COMM_FAILURE.fixed_bytes());
    match reply.failure {
        Some(Error::Transport(TransportError::Connect {
            attempts,
            ref path,
            ref source,
        })) => {
            assert_eq!(attempts, 3);
            assert_eq!(path, &helper.socket());
            assert_eq!(source.errno(), Some(2), "ENOENT: the socket is gone");
        }
        ref other => panic!("expected a connect failure, got {other:?}"),
    }
    assert!(!client.is_connected());
}

/// 16 threads × 1000 commands through one client: PR IN on a regular file
/// and PR OUT on a read-only file interleave, and each reply must be the
/// one its own request gets (different sense, different residual).
fn concurrent_commands_get_their_own_replies(peer: Peer) {
    let helper = Helper::start(peer);
    let client = Arc::new(Client::new(config(&helper)));
    let file = regular_file();
    let read_only = File::open(file.path()).expect("open read-only");
    let threads = 16usize;
    let per_thread = 1000usize;
    let done: usize = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let client = Arc::clone(&client);
                let (file, read_only) = (&file, &read_only);
                scope.spawn(move || {
                    let mut ok = 0usize;
                    for i in 0..per_thread {
                        if (t + i) % 2 == 0 {
                            let alloc = 8 + ((t * per_thread + i) % 200) as u16;
                            let mut buf = vec![0u8; usize::from(alloc) + t];
                            let reply = client
                                .execute(
                                    &read_keys_cdb(alloc),
                                    file.as_file().as_fd(),
                                    DataTransfer::FromDevice(&mut buf),
                                )
                                .expect("valid");
                            assert!(reply.failure.is_none(), "{:?}", reply.failure);
                            assert_eq!(reply.decoded_sense(), Some(Sense::IO_ERROR));
                            assert_eq!(reply.residual, buf.len());
                        } else {
                            let (cdb, params) = register_cdb((t * per_thread + i) as u64);
                            let reply = client
                                .execute(&cdb, read_only.as_fd(), DataTransfer::ToDevice(&params))
                                .expect("valid");
                            assert!(reply.failure.is_none(), "{:?}", reply.failure);
                            assert_eq!(reply.decoded_sense(), Some(Sense::INVALID_OPCODE));
                        }
                        ok += 1;
                    }
                    ok
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).sum()
    });
    assert_eq!(done, threads * per_thread, "no command lost");
    assert!(client.idle_connections() <= 4, "pool bound respected");
}

macro_rules! against_both {
    ($($name:ident),* $(,)?) => {
        mod ours {
            $( #[test] fn $name() { super::$name(super::Peer::Ours); } )*
        }
        mod debian {
            $( #[test] fn $name() { super::$name(super::Peer::Debian); } )*
        }
    };
}

against_both!(
    handshake_and_status,
    non_scsi_descriptor_is_io_process_terminated,
    pr_out_on_read_only_descriptor_is_invalid_opcode,
    reconnect_within_window_and_idle_notice,
    down_longer_than_window_is_lun_communication_failure,
    concurrent_commands_get_their_own_replies,
);

/// With our daemon's software target the payload depends on the request:
/// READ FULL STATUS truncated to each request's own allocation length.
/// 16 threads × 1000 commands with allocation lengths all different in
/// flight; each reply must carry exactly its own prefix of the payload.
#[test]
fn ours_emulated_replies_match_their_allocation_length() {
    use pr_manager::{PrInAction, RegisterOptions, pr_in_command};

    let helper = Helper::start_emulated();
    let client = Arc::new(Client::new(config(&helper)));
    let disk = regular_file();
    let rw = File::options()
        .read(true)
        .write(true)
        .open(disk.path())
        .expect("open read-write");
    client
        .register_and_ignore(rw.as_fd(), 0x5EED, RegisterOptions::default())
        .expect("register");
    let full = client
        .pr_in_payload(rw.as_fd(), PrInAction::ReadFullStatus)
        .expect("read full status");
    assert!(full.len() > 32, "one registrant with its transport ID");
    let full_len = u16::try_from(full.len()).expect("small payload");

    let done: usize = thread::scope(|scope| {
        let workers: Vec<_> = (0..16u16)
            .map(|t| {
                let (client, rw, full) = (Arc::clone(&client), &rw, &full);
                scope.spawn(move || {
                    for i in 0..1000u16 {
                        // 1..=full_len, shifted per thread so neighbours differ.
                        let alloc = (t.wrapping_mul(7).wrapping_add(i) % full_len) + 1;
                        let mut buf = vec![0u8; usize::from(alloc)];
                        let reply = client
                            .execute(
                                &pr_in_command(PrInAction::ReadFullStatus, alloc),
                                rw.as_fd(),
                                DataTransfer::FromDevice(&mut buf),
                            )
                            .expect("valid");
                        assert!(reply.is_good(), "{:?} {:?}", reply.status, reply.failure);
                        assert_eq!(reply.data_len, usize::from(alloc), "thread {t} command {i}");
                        assert_eq!(reply.residual, 0);
                        assert_eq!(buf[..], full[..usize::from(alloc)]);
                    }
                    1000usize
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).sum()
    });
    assert_eq!(done, 16_000, "no command lost");
}
