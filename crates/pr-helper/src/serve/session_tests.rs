//! The session alone: every state, every close reason, the drain budget, deadlines on
//! a clock the tests move by hand.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use pr_protocol::{RESPONSE_HEADER_SIZE, Response};

use super::*;
use crate::backend::DescriptorLabel;

const LIMITS: Limits = Limits {
    handshake: Duration::from_secs(10),
    request: Duration::from_secs(5),
};

const PEER: PeerInfo = PeerInfo {
    pid: 42,
    uid: 1000,
    gid: 1000,
};

fn descriptor() -> OwnedFd {
    std::fs::File::open("/dev/null").expect("/dev/null").into()
}

fn read_keys_cdb() -> [u8; 16] {
    let mut cdb = [0u8; 16];
    cdb[0] = pr_protocol::PERSISTENT_RESERVE_IN;
    cdb[8] = 64;
    cdb
}

/// A PR OUT REGISTER CDB with a 24-byte parameter list.
fn register_cdb() -> [u8; 16] {
    let mut cdb = [0u8; 16];
    cdb[0] = pr_protocol::PERSISTENT_RESERVE_OUT;
    cdb[8] = 24;
    cdb
}

/// Feeds `bytes` as one read of at most what the session asked for.
fn feed(session: &mut Session, bytes: &[u8], fds: Vec<OwnedFd>, now: Instant) {
    let Step::Read(space) = session.next() else {
        panic!("the session does not want to read");
    };
    assert!(bytes.len() <= space.len(), "fed more than asked for");
    space[..bytes.len()].copy_from_slice(bytes);
    session.received(
        Received {
            bytes: bytes.len(),
            fds: fds.into_iter().map(PeerFd::new).collect(),
            control_truncated: false,
        },
        now,
    );
}

fn wanted(session: &mut Session) -> usize {
    match session.next() {
        Step::Read(space) => space.len(),
        other => panic!("expected a read, got {other:?}"),
    }
}

fn close_reason(session: &mut Session) -> CloseReason {
    match session.next() {
        Step::Close(reason) => reason,
        other => panic!("expected a close, got {other:?}"),
    }
}

/// Writes everything the session wants written, in one go.
fn write_all(session: &mut Session) -> Vec<u8> {
    let Step::Write(bytes) = session.next() else {
        panic!("the session does not want to write");
    };
    let bytes = bytes.to_vec();
    session.wrote(bytes.len());
    bytes
}

/// A session past its handshake, idle.
fn ready(now: Instant) -> Session {
    let mut session = Session::new(7, PEER, LIMITS, now);
    assert_eq!(write_all(&mut session), vec![0, 0, 0, 0]);
    feed(&mut session, &[0, 0, 0, 0], Vec::new(), now);
    assert!(session.is_idle());
    session
}

fn answer(session: &mut Session, response: Response, now: Instant) {
    assert!(matches!(session.next(), Step::Execute(_)));
    session.executed(
        Execution {
            response,
            descriptor: DescriptorLabel::NotExamined,
        },
        now,
    );
}

#[test]
fn greeting_then_handshake_then_idle() {
    let now = Instant::now();
    let mut session = Session::new(1, PEER, LIMITS, now);
    assert!(session.in_handshake());
    assert_eq!(session.deadline(), Some(now + LIMITS.handshake));
    // A partial write of the greeting is resumed where it stopped.
    let Step::Write(bytes) = session.next() else {
        panic!("greeting first");
    };
    assert_eq!(bytes, [0, 0, 0, 0]);
    session.wrote(1);
    let Step::Write(rest) = session.next() else {
        panic!("rest of the greeting");
    };
    assert_eq!(rest.len(), 3);
    session.wrote(3);
    // The feature word may come a byte at a time; never more is asked for.
    assert_eq!(wanted(&mut session), 4);
    feed(&mut session, &[0, 0], Vec::new(), now);
    assert_eq!(wanted(&mut session), 2);
    feed(&mut session, &[0, 0], Vec::new(), now);
    assert!(session.is_idle());
    assert!(!session.in_handshake());
    assert_eq!(session.deadline(), None);
    assert_eq!(wanted(&mut session), pr_protocol::CDB_SIZE);
}

#[test]
fn an_unsupported_feature_bit_is_a_violation() {
    let now = Instant::now();
    let mut session = Session::new(1, PEER, LIMITS, now);
    write_all(&mut session);
    feed(&mut session, &1u32.to_be_bytes(), Vec::new(), now);
    let reason = close_reason(&mut session);
    assert!(matches!(reason, CloseReason::Violation(_)), "{reason}");
    assert!(reason.is_peer_fault());
}

#[test]
fn the_handshake_deadline_closes() {
    let now = Instant::now();
    let mut session = Session::new(1, PEER, LIMITS, now);
    write_all(&mut session);
    // Not yet.
    session.expired(now + LIMITS.handshake - Duration::from_millis(1));
    assert_eq!(wanted(&mut session), 4);
    session.expired(now + LIMITS.handshake);
    let reason = close_reason(&mut session);
    assert!(matches!(reason, CloseReason::HandshakeTimeout(limit) if limit == LIMITS.handshake));
    assert!(reason.to_string().contains("handshake deadline"));
}

#[test]
fn end_of_stream_in_the_handshake() {
    let now = Instant::now();
    let mut closed = Session::new(1, PEER, LIMITS, now);
    write_all(&mut closed);
    feed(&mut closed, &[], Vec::new(), now);
    // Leaving before the feature word is a truncated handshake, as the decoder says.
    assert!(matches!(
        close_reason(&mut closed),
        CloseReason::Violation(_)
    ));

    let mut half = Session::new(2, PEER, LIMITS, now);
    write_all(&mut half);
    feed(&mut half, &[0, 0], Vec::new(), now);
    feed(&mut half, &[], Vec::new(), now);
    assert!(matches!(close_reason(&mut half), CloseReason::Violation(_)));
}

#[test]
fn a_request_is_executed_answered_and_its_descriptor_held_until_the_reply_is_out() {
    let now = Instant::now();
    let mut session = ready(now);
    feed(&mut session, &read_keys_cdb(), vec![descriptor()], now);
    let Step::Execute(request) = session.next() else {
        panic!("execute");
    };
    assert_eq!(request.cdb, read_keys_cdb());
    assert_eq!(
        session.deadline(),
        None,
        "no deadline while the backend runs"
    );
    let later = now + Duration::from_millis(3);
    answer(
        &mut session,
        Response::check_condition(&Sense::IO_ERROR.fixed_bytes()),
        later,
    );
    assert_eq!(session.deadline(), Some(later + LIMITS.request));
    // A partial write of the reply is resumed.
    let Step::Write(wire) = session.next() else {
        panic!("reply");
    };
    assert_eq!(wire.len(), RESPONSE_HEADER_SIZE);
    assert_eq!(&wire[..4], &2i32.to_be_bytes());
    session.wrote(100);
    assert_eq!(session.answered(), 0);
    assert!(!session.is_idle());
    let Step::Write(rest) = session.next() else {
        panic!("rest of the reply");
    };
    assert_eq!(rest.len(), 4);
    session.wrote(4);
    assert_eq!(session.answered(), 1);
    assert!(session.is_idle());
}

#[test]
fn a_parameter_list_grows_the_buffer_only_while_it_is_read() {
    let now = Instant::now();
    let mut session = ready(now);
    feed(&mut session, &register_cdb(), vec![descriptor()], now);
    assert_eq!(wanted(&mut session), 24);
    feed(&mut session, &[0; 24], Vec::new(), now);
    let Step::Execute(request) = session.next() else {
        panic!("execute");
    };
    assert_eq!(request.data_out.len(), 24);
    answer(&mut session, Response::with_status(0), now);
    write_all(&mut session);
    assert_eq!(wanted(&mut session), pr_protocol::CDB_SIZE);
}

#[test]
fn the_request_deadline_runs_from_the_first_byte() {
    let now = Instant::now();
    let mut session = ready(now);
    let cdb = read_keys_cdb();
    let first_byte = now + Duration::from_secs(100);
    feed(&mut session, &cdb[..5], vec![descriptor()], first_byte);
    assert_eq!(session.deadline(), Some(first_byte + LIMITS.request));
    assert!(!session.is_idle(), "a half-read request is not idle");
    // More bytes do not move the deadline.
    feed(
        &mut session,
        &cdb[5..9],
        Vec::new(),
        first_byte + Duration::from_secs(1),
    );
    assert_eq!(session.deadline(), Some(first_byte + LIMITS.request));
    session.expired(first_byte + LIMITS.request);
    let reason = close_reason(&mut session);
    match reason {
        CloseReason::RequestTimeout {
            deadline,
            stage_wanted,
        } => {
            assert_eq!(deadline, LIMITS.request);
            assert_eq!(stage_wanted, 7);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_peer_that_does_not_take_its_reply_is_closed_at_the_reply_deadline() {
    let now = Instant::now();
    let mut session = ready(now);
    feed(&mut session, &read_keys_cdb(), vec![descriptor()], now);
    answer(&mut session, Response::with_status(0x18), now);
    session.expired(now + LIMITS.request);
    let reason = close_reason(&mut session);
    assert!(matches!(reason, CloseReason::ReplyTimeout(_)), "{reason}");
    assert!(reason.is_peer_fault());
}

#[test]
fn a_request_without_a_descriptor_is_a_violation() {
    let now = Instant::now();
    let mut session = ready(now);
    feed(&mut session, &read_keys_cdb(), Vec::new(), now);
    let reason = close_reason(&mut session);
    assert!(matches!(reason, CloseReason::Violation(_)), "{reason}");
}

#[test]
fn a_truncated_control_message_closes_and_names_the_descriptors() {
    let now = Instant::now();
    let mut session = ready(now);
    let Step::Read(_) = session.next() else {
        panic!("read");
    };
    session.received(
        Received {
            bytes: 16,
            fds: vec![PeerFd::new(descriptor()), PeerFd::new(descriptor())],
            control_truncated: true,
        },
        now,
    );
    let reason = close_reason(&mut session);
    assert!(matches!(
        reason,
        CloseReason::ControlTruncated { received: 2 }
    ));
    assert!(reason.to_string().contains("2 descriptor(s)"));
}

#[test]
fn end_of_stream_between_requests_and_within_one() {
    let now = Instant::now();
    let mut idle = ready(now);
    idle.received(Received::end_of_stream(), now);
    let reason = close_reason(&mut idle);
    assert!(matches!(reason, CloseReason::PeerClosed));
    assert!(!reason.is_peer_fault());

    let mut partial = ready(now);
    feed(&mut partial, &read_keys_cdb()[..3], vec![descriptor()], now);
    partial.received(Received::end_of_stream(), now);
    assert!(matches!(
        close_reason(&mut partial),
        CloseReason::Violation(_)
    ));
}

#[test]
fn io_failures_name_their_step() {
    let now = Instant::now();
    let mut reading = ready(now);
    reading.read_failed(std::io::ErrorKind::ConnectionReset.into());
    assert!(
        close_reason(&mut reading)
            .to_string()
            .starts_with("reading the socket failed")
    );

    let mut greeting = Session::new(1, PEER, LIMITS, now);
    greeting.write_failed(std::io::ErrorKind::BrokenPipe.into());
    assert!(
        close_reason(&mut greeting)
            .to_string()
            .starts_with("writing the feature word failed")
    );

    let mut replying = ready(now);
    feed(&mut replying, &read_keys_cdb(), vec![descriptor()], now);
    answer(&mut replying, Response::with_status(0), now);
    replying.write_failed(std::io::ErrorKind::BrokenPipe.into());
    assert!(
        close_reason(&mut replying)
            .to_string()
            .starts_with("writing the response failed")
    );
}

#[test]
fn a_reply_that_cannot_be_encoded_becomes_check_condition() {
    let now = Instant::now();
    let mut session = ready(now);
    feed(&mut session, &read_keys_cdb(), vec![descriptor()], now);
    // More payload than the allocation length (64): QEMU's client would assert.
    answer(&mut session, Response::good(vec![0; 100]), now);
    let wire = write_all(&mut session);
    assert_eq!(wire.len(), RESPONSE_HEADER_SIZE);
    assert_eq!(&wire[..4], &2i32.to_be_bytes());
    assert_eq!(&wire[4..8], &0i32.to_be_bytes());
    assert_eq!(Sense::parse(&wire[8..]), Sense::IO_ERROR);
}

#[test]
fn the_drain_reads_only_what_was_waiting() {
    let now = Instant::now();
    let mut session = ready(now);
    // One request and a half were waiting when the shutdown was noticed.
    session.begin_drain(16 + 8);
    session.begin_drain(1000); // only the first call counts
    assert!(session.draining());
    assert!(
        !session.is_idle(),
        "a draining connection is never set aside"
    );
    feed(&mut session, &read_keys_cdb(), vec![descriptor()], now);
    answer(&mut session, Response::with_status(0), now);
    write_all(&mut session);
    // Eight bytes left: never more is asked for, even though a CDB has sixteen.
    assert_eq!(wanted(&mut session), 8);
    feed(&mut session, &read_keys_cdb()[..8], vec![descriptor()], now);
    // The budget is spent: the partial request is dropped, not waited for.
    assert!(matches!(
        close_reason(&mut session),
        CloseReason::ShuttingDown
    ));
    assert_eq!(session.answered(), 1);
}

#[test]
fn an_idle_connection_closes_at_once_at_shutdown() {
    let now = Instant::now();
    let mut session = ready(now);
    session.begin_drain(0);
    let reason = close_reason(&mut session);
    assert!(matches!(reason, CloseReason::ShuttingDown));
    assert_eq!(reason.to_string(), "daemon shutting down");
}

#[test]
fn end_of_stream_while_draining_is_the_shutdown_not_a_violation() {
    let now = Instant::now();
    let mut session = ready(now);
    session.begin_drain(100);
    feed(&mut session, &read_keys_cdb()[..4], vec![descriptor()], now);
    session.received(Received::end_of_stream(), now);
    assert!(matches!(
        close_reason(&mut session),
        CloseReason::ShuttingDown
    ));
}

#[test]
fn a_feature_word_waiting_at_shutdown_completes_the_handshake_and_the_drain_goes_on() {
    let now = Instant::now();
    let mut session = Session::new(1, PEER, LIMITS, now);
    write_all(&mut session);
    session.begin_drain(4 + 16);
    feed(&mut session, &[0, 0, 0, 0], Vec::new(), now);
    feed(&mut session, &read_keys_cdb(), vec![descriptor()], now);
    answer(&mut session, Response::with_status(0), now);
    write_all(&mut session);
    assert!(matches!(
        close_reason(&mut session),
        CloseReason::ShuttingDown
    ));
    assert_eq!(session.answered(), 1);
}

#[test]
fn half_a_feature_word_at_shutdown_closes() {
    let now = Instant::now();
    let mut session = Session::new(1, PEER, LIMITS, now);
    write_all(&mut session);
    session.begin_drain(2);
    assert_eq!(wanted(&mut session), 2);
    feed(&mut session, &[0, 0], Vec::new(), now);
    assert!(matches!(
        close_reason(&mut session),
        CloseReason::ShuttingDown
    ));
}

#[test]
fn a_backend_failure_is_not_the_peers_fault() {
    assert!(!CloseReason::BackendFailed.is_peer_fault());
    assert!(!CloseReason::ShuttingDown.is_peer_fault());
    assert_eq!(
        CloseReason::BackendFailed.to_string(),
        "the backend call did not complete"
    );
}
