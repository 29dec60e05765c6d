//! One connection's whole protocol logic, without I/O.
//!
//! A [`Session`] says what it needs next ([`Session::next`]): bytes written, bytes
//! read (at most N, so a later request's descriptor stays in the socket until its
//! turn), a command executed, or the connection closed for a reason. The driver
//! (`connection.rs`) does exactly that and reports back. Deadlines are instants the
//! driver waits until; the clock is the caller's, so tests use a fake one.
//!
//! The states, in order: greeting (our feature word) → handshake (the peer's word) →
//! idle → receiving (part of a request read; the request deadline runs) → executing →
//! replying (the descriptor stays open until the reply is written) → idle again.
//! At shutdown the driver tells the session how many bytes were waiting in the socket
//! ([`Session::begin_drain`]); from then on it reads no more than those, answers the
//! requests they complete and closes with [`CloseReason::ShuttingDown`].

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use pr_protocol::{
    Decoded, HandshakeDecoder, MAX_TRANSFER, Negotiation, Request, RequestDecoder, Violation,
};
use scsi::sense::Sense;

use super::descriptor::PeerFd;
use crate::backend::{Execution, PeerInfo, check_condition};

/// The time limits a session enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// From connecting to the peer's feature word.
    pub handshake: Duration,
    /// From a request's first byte to its last; also the time the peer has to take a
    /// reply off the socket.
    pub request: Duration,
}

/// Why a connection ended: the reason in its closing log line.
#[derive(Debug)]
pub(crate) enum CloseReason {
    /// The peer closed the socket between requests.
    PeerClosed,
    /// The peer broke a protocol rule.
    Violation(Violation),
    /// The kernel truncated the control message (more descriptors than we make room
    /// for, or our descriptor table is full); descriptors that did arrive are closed.
    ControlTruncated { received: usize },
    /// No feature word within the handshake deadline.
    HandshakeTimeout(Duration),
    /// A request started but was not complete within the request deadline.
    RequestTimeout {
        deadline: Duration,
        stage_wanted: usize,
    },
    /// The peer did not take a reply off the socket within the request deadline.
    ReplyTimeout(Duration),
    /// The daemon is shutting down and the requests that were waiting when the
    /// connection noticed it have been answered.
    ShuttingDown,
    /// Reading or writing the socket failed.
    Io {
        step: &'static str,
        error: io::Error,
    },
    /// The backend call did not complete (it panicked).
    BackendFailed,
}

impl CloseReason {
    /// Whether the peer did something wrong (logged as a warning).
    pub(crate) fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            CloseReason::Violation(_)
                | CloseReason::ControlTruncated { .. }
                | CloseReason::HandshakeTimeout(_)
                | CloseReason::RequestTimeout { .. }
                | CloseReason::ReplyTimeout(_)
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("peer closed the connection"),
            CloseReason::Violation(violation) => write!(f, "protocol violation: {violation}"),
            CloseReason::ControlTruncated { received } => write!(
                f,
                "protocol violation: truncated control message ({received} descriptor(s) \
                 received and closed; too many sent, or our descriptor table is full)"
            ),
            CloseReason::HandshakeTimeout(limit) => {
                write!(
                    f,
                    "no feature word within the handshake deadline of {limit:?}"
                )
            }
            CloseReason::RequestTimeout {
                deadline,
                stage_wanted,
            } => write!(
                f,
                "request incomplete after the request deadline of {deadline:?} \
                 ({stage_wanted} byte(s) of the current stage missing)"
            ),
            CloseReason::ReplyTimeout(limit) => {
                write!(f, "peer did not read its response within {limit:?}")
            }
            CloseReason::ShuttingDown => f.write_str("daemon shutting down"),
            CloseReason::Io { step, error } => write!(f, "{step} failed: {error}"),
            CloseReason::BackendFailed => f.write_str("the backend call did not complete"),
        }
    }
}

/// What the session needs next.
#[derive(Debug)]
pub(crate) enum Step<'a> {
    /// Write these bytes (all or part), then call [`Session::wrote`].
    Write(&'a [u8]),
    /// Receive at most `buffer.len()` bytes (and any descriptors) into `buffer`, then
    /// call [`Session::received`].
    Read(&'a mut [u8]),
    /// Execute this request on the backend, then call [`Session::executed`].
    Execute(&'a Request<PeerFd>),
    /// Close the connection (its socket and any descriptor held) for this reason.
    Close(CloseReason),
}

/// Bytes and descriptors one receive produced.
#[derive(Debug)]
pub(crate) struct Received {
    /// Bytes written to the buffer of the [`Step::Read`]; 0 is the end of the stream.
    pub bytes: usize,
    /// Descriptors that came with them (already close-on-exec).
    pub fds: Vec<PeerFd>,
    /// The kernel cut the control message short.
    pub control_truncated: bool,
}

enum Phase {
    Greeting {
        sent: usize,
    },
    Handshake(HandshakeDecoder),
    /// Between requests, or part of one read (then `request_deadline` is set).
    Requests(RequestDecoder<PeerFd>),
    Executing {
        request: Request<PeerFd>,
        started: Instant,
    },
    Replying {
        wire: Vec<u8>,
        sent: usize,
        /// Held, unused, so that its descriptor closes only once the reply is out.
        _request: Request<PeerFd>,
        deadline: Instant,
    },
    Closed(Option<CloseReason>),
}

impl Received {
    /// The end of the stream (or, while draining, nothing more waiting).
    pub(crate) fn end_of_stream() -> Self {
        Self {
            bytes: 0,
            fds: Vec::new(),
            control_truncated: false,
        }
    }
}

/// One connection's protocol state.
pub(crate) struct Session {
    phase: Phase,
    limits: Limits,
    /// When the handshake must be done.
    handshake_deadline: Instant,
    /// When the request being received must be complete.
    request_deadline: Option<Instant>,
    /// At shutdown: bytes still to be read of those waiting when it was noticed.
    drain: Option<usize>,
    /// Receive space: CDB-sized while idle, grown only while a parameter list is read.
    buffer: Vec<u8>,
    greeting: [u8; pr_protocol::HANDSHAKE_SIZE],
    /// Commands answered (their replies fully written).
    answered: u64,
    /// For the log lines.
    id: u64,
    peer: PeerInfo,
}

/// What one receive did to the phase.
enum Outcome {
    Stay,
    Negotiated,
    Partial,
    Complete(Request<PeerFd>),
    Close(CloseReason),
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match &self.phase {
            Phase::Greeting { .. } => "greeting",
            Phase::Handshake(_) => "handshake",
            Phase::Requests(decoder) if decoder.is_idle() => "idle",
            Phase::Requests(_) => "receiving",
            Phase::Executing { .. } => "executing",
            Phase::Replying { .. } => "replying",
            Phase::Closed(_) => "closed",
        };
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("phase", &phase)
            .field("drain", &self.drain)
            .finish_non_exhaustive()
    }
}

/// Size of the receive space between requests: one CDB.
const IDLE_BUFFER: usize = pr_protocol::CDB_SIZE;

impl Session {
    /// A session for a connection accepted at `now`.
    pub(crate) fn new(id: u64, peer: PeerInfo, limits: Limits, now: Instant) -> Self {
        let handshake = HandshakeDecoder::default();
        Self {
            greeting: handshake.greeting(),
            phase: Phase::Greeting { sent: 0 },
            limits,
            handshake_deadline: now + limits.handshake,
            request_deadline: None,
            drain: None,
            buffer: vec![0; IDLE_BUFFER],
            answered: 0,
            id,
            peer,
        }
    }

    /// The connection's number in the log lines.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The peer, as it connected.
    pub(crate) fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    /// Commands whose replies were fully written.
    pub(crate) fn answered(&self) -> u64 {
        self.answered
    }

    /// What to do next.
    pub(crate) fn next(&mut self) -> Step<'_> {
        if self.drain == Some(0) && matches!(self.phase, Phase::Handshake(_) | Phase::Requests(_)) {
            // The drain is spent: a partial request is dropped, its descriptor closed.
            self.close(CloseReason::ShuttingDown);
        }
        match &mut self.phase {
            Phase::Greeting { sent } => Step::Write(self.greeting.get(*sent..).unwrap_or_default()),
            Phase::Handshake(decoder) => Step::Read(read_space(
                &mut self.buffer,
                decoder.bytes_wanted(),
                self.drain,
            )),
            Phase::Requests(decoder) => Step::Read(read_space(
                &mut self.buffer,
                decoder.bytes_wanted(),
                self.drain,
            )),
            Phase::Executing { request, .. } => Step::Execute(request),
            Phase::Replying { wire, sent, .. } => {
                Step::Write(wire.get(*sent..).unwrap_or_default())
            }
            Phase::Closed(reason) => {
                Step::Close(reason.take().unwrap_or(CloseReason::ShuttingDown))
            }
        }
    }

    /// When the current read or write must be done; `None` while idle between requests
    /// and while a command executes.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Greeting { .. } | Phase::Handshake(_) => Some(self.handshake_deadline),
            Phase::Requests(_) => self.request_deadline,
            Phase::Replying { deadline, .. } => Some(*deadline),
            Phase::Executing { .. } | Phase::Closed(_) => None,
        }
    }

    /// Whether the connection is between requests with nothing held: the driver may
    /// set it aside until the peer sends again.
    pub(crate) fn is_idle(&self) -> bool {
        matches!(&self.phase, Phase::Requests(decoder) if decoder.is_idle()) && self.drain.is_none()
    }

    /// Whether the handshake is still under way (its deadline runs).
    pub(crate) fn in_handshake(&self) -> bool {
        matches!(self.phase, Phase::Greeting { .. } | Phase::Handshake(_))
    }

    /// Whether the shutdown drain has begun.
    pub(crate) fn draining(&self) -> bool {
        self.drain.is_some()
    }

    /// The daemon is shutting down and `waiting` bytes were in the socket when this
    /// connection noticed: read only those. Idempotent.
    pub(crate) fn begin_drain(&mut self, waiting: usize) {
        if self.drain.is_none() {
            self.drain = Some(waiting);
        }
    }

    /// The deadline of the current step passed at `now`.
    pub(crate) fn expired(&mut self, now: Instant) {
        let Some(deadline) = self.deadline() else {
            return;
        };
        if now < deadline {
            return;
        }
        let reason = match &self.phase {
            Phase::Greeting { .. } | Phase::Handshake(_) => {
                CloseReason::HandshakeTimeout(self.limits.handshake)
            }
            Phase::Requests(decoder) => CloseReason::RequestTimeout {
                deadline: self.limits.request,
                stage_wanted: decoder.bytes_wanted(),
            },
            Phase::Replying { .. } => CloseReason::ReplyTimeout(self.limits.request),
            Phase::Executing { .. } | Phase::Closed(_) => return,
        };
        self.close(reason);
    }

    /// `written` bytes of the last [`Step::Write`] went out.
    pub(crate) fn wrote(&mut self, written: usize) {
        match &mut self.phase {
            Phase::Greeting { sent } => {
                *sent = sent.saturating_add(written);
                if *sent >= self.greeting.len() {
                    self.phase = Phase::Handshake(HandshakeDecoder::default());
                }
            }
            Phase::Replying { wire, sent, .. } => {
                *sent = sent.saturating_add(written);
                if *sent >= wire.len() {
                    self.answered = self.answered.saturating_add(1);
                    // The request (and its descriptor) drops here, after its reply.
                    self.phase = Phase::Requests(RequestDecoder::new());
                    self.request_deadline = None;
                }
            }
            _ => {}
        }
    }

    /// Writing failed.
    pub(crate) fn write_failed(&mut self, error: io::Error) {
        let step = if self.in_handshake() {
            "writing the feature word"
        } else {
            "writing the response"
        };
        self.close(CloseReason::Io { step, error });
    }

    /// Reading failed.
    pub(crate) fn read_failed(&mut self, error: io::Error) {
        self.close(CloseReason::Io {
            step: "reading the socket",
            error,
        });
    }

    /// The last [`Step::Read`] produced `received` at `now`.
    pub(crate) fn received(&mut self, received: Received, now: Instant) {
        if received.control_truncated {
            // The descriptors that did arrive are closed as `received` drops here.
            let count = received.fds.len();
            self.close(CloseReason::ControlTruncated { received: count });
            return;
        }
        if let Some(left) = self.drain.as_mut() {
            *left = left.saturating_sub(received.bytes);
        }
        let draining = self.drain.is_some();
        let bytes = self.buffer.get(..received.bytes).unwrap_or_default();
        let outcome = match &mut self.phase {
            Phase::Handshake(decoder) if received.bytes == 0 => Outcome::Close(if draining {
                CloseReason::ShuttingDown
            } else {
                match decoder.end_of_stream() {
                    Ok(()) => CloseReason::PeerClosed,
                    Err(violation) => CloseReason::Violation(violation),
                }
            }),
            Phase::Handshake(decoder) => match decoder.feed(bytes, received.fds) {
                Ok(Negotiation::NeedMore) => Outcome::Stay,
                Ok(Negotiation::Done { .. }) => Outcome::Negotiated,
                Err(violation) => Outcome::Close(CloseReason::Violation(violation)),
            },
            Phase::Requests(decoder) if received.bytes == 0 => {
                Outcome::Close(match decoder.end_of_stream() {
                    Ok(()) if draining => CloseReason::ShuttingDown,
                    Ok(()) => CloseReason::PeerClosed,
                    // At shutdown a request cut short is the drain's doing, not the peer's.
                    Err(_) if draining => CloseReason::ShuttingDown,
                    Err(violation) => CloseReason::Violation(violation),
                })
            }
            Phase::Requests(decoder) => match decoder.feed(bytes, received.fds) {
                Ok(Decoded::NeedMore) => Outcome::Partial,
                Ok(Decoded::Request(request)) => Outcome::Complete(request),
                Err(violation) => Outcome::Close(CloseReason::Violation(violation)),
            },
            // Reads happen only in the two phases above.
            _ => Outcome::Stay,
        };
        match outcome {
            Outcome::Stay => {}
            Outcome::Negotiated => self.phase = Phase::Requests(RequestDecoder::new()),
            Outcome::Partial => {
                // The request deadline runs from the request's first byte.
                self.request_deadline
                    .get_or_insert(now + self.limits.request);
            }
            Outcome::Complete(request) => {
                if self.buffer.len() > IDLE_BUFFER {
                    self.buffer = vec![0; IDLE_BUFFER];
                }
                self.request_deadline = None;
                self.phase = Phase::Executing {
                    request,
                    started: now,
                };
            }
            Outcome::Close(reason) => self.close(reason),
        }
    }

    /// The backend answered the executing request at `now`: encode the reply (a reply
    /// that cannot be encoded, a backend bug, becomes CHECK CONDITION: QEMU's client
    /// would assert on it) and log the command.
    pub(crate) fn executed(&mut self, execution: Execution, now: Instant) {
        let Phase::Executing {
            mut request,
            started,
        } = std::mem::replace(&mut self.phase, Phase::Closed(None))
        else {
            return;
        };
        let Execution {
            response,
            descriptor,
        } = execution;
        // A device node closes on this thread after the reply; anything else on a
        // closer thread (descriptor.rs).
        request.fd.classified(&descriptor);
        let mut wire = Vec::with_capacity(response.encoded_len());
        let response = match response.encode(&request.cdb, &mut wire) {
            Ok(()) => response,
            Err(error) => {
                tracing::error!(conn = self.id, peer_pid = self.peer.pid, peer_uid = self.peer.uid, peer_gid = self.peer.gid, error = %error, "backend produced an invalid response");
                let fallback = check_condition(Sense::IO_ERROR);
                wire.clear();
                let _ = fallback.encode(&request.cdb, &mut wire);
                fallback
            }
        };
        super::log::command(
            self.id,
            &self.peer,
            &request,
            &descriptor,
            &response,
            now.saturating_duration_since(started),
        );
        self.phase = Phase::Replying {
            wire,
            sent: 0,
            _request: request,
            deadline: now + self.limits.request,
        };
    }

    fn close(&mut self, reason: CloseReason) {
        self.phase = Phase::Closed(Some(reason));
    }
}

/// The first `wanted` bytes of `buffer` (at least 1, at most the protocol's largest
/// transfer, at most what the drain has left, which is not 0 here), growing it if
/// needed.
fn read_space(buffer: &mut Vec<u8>, wanted: usize, drain: Option<usize>) -> &mut [u8] {
    let limit = wanted
        .clamp(1, MAX_TRANSFER)
        .min(drain.unwrap_or(usize::MAX))
        .max(1);
    if buffer.len() < limit {
        buffer.resize(limit, 0);
    }
    buffer.get_mut(..limit).unwrap_or_default()
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
