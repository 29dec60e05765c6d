//! One connection: handshake, then requests one at a time until the peer leaves, breaks
//! a rule, stalls, or the daemon shuts down.
//!
//! Reads never ask for more than the decoder's current stage wants, so the bytes and
//! the descriptor of a pipelined next request stay in the socket until their turn.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pr_protocol::{
    Decoded, HandshakeDecoder, MAX_TRANSFER, Negotiation, Request, RequestDecoder, Response,
    Violation,
};
use scsi::sense::Sense;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout_at;

use super::affine::{Command, Lent, Pending, Returned, Worker};
use super::drain::{Bell, Drain, drained_handshake, next_drained};
use super::pool::{CallSlots, DeviceKey, Pool};
use super::recv::{Received, recv_with_fds};
use super::{ServeSettings, ShutdownSignal};
use crate::backend::{Backends, Execution, Job, PeerInfo, Plan, check_condition};

/// What every connection task shares.
#[derive(Debug)]
pub(crate) struct Context {
    pub(super) backends: Arc<Backends>,
    pub(super) pool: Pool,
    /// Connections that may have a thread of their own at once ([`super::affine`]).
    seats: Arc<Semaphore>,
    handshake_timeout: Duration,
    pub(super) request_timeout: Duration,
    pub(super) commands: AtomicU64,
    /// Wakes connections' own threads at shutdown.
    pub(super) bell: Arc<Bell>,
}

impl Context {
    pub(crate) fn new(backends: Backends, settings: &ServeSettings, bell: Arc<Bell>) -> Self {
        Self {
            backends: Arc::new(backends),
            pool: Pool::new(settings.blocking_threads),
            seats: Arc::new(Semaphore::new(settings.blocking_threads.max(1))),
            handshake_timeout: settings.handshake_timeout,
            request_timeout: settings.request_timeout,
            commands: AtomicU64::new(0),
            bell,
        }
    }

    /// Commands executed and answered so far.
    pub(crate) fn commands(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }

    /// A seat and the call's slots, if all are free right now.
    fn takeover(&self, job: &Job, request: &Request<OwnedFd>) -> Option<Takeover> {
        let seat = Arc::clone(&self.seats).try_acquire_owned().ok()?;
        let slots = self
            .pool
            .try_slots(DeviceKey::for_job(job, request.fd.as_fd()))?;
        Some(Takeover { seat, slots })
    }
}

/// What lets a connection move to a thread of its own with its first command.
struct Takeover {
    seat: OwnedSemaphorePermit,
    slots: CallSlots,
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
    /// No requested-features word within the handshake deadline.
    HandshakeTimeout(Duration),
    /// A request started but was not complete within the request deadline.
    RequestTimeout {
        deadline: Duration,
        stage_wanted: usize,
    },
    /// The peer did not take a response off the socket within the request deadline.
    ReplyTimeout(Duration),
    /// The daemon is shutting down and the requests that were waiting when the
    /// connection noticed it have been answered (`drain.rs`).
    ShuttingDown,
    /// Reading or writing the socket failed.
    Io {
        step: &'static str,
        error: io::Error,
    },
    /// The blocking backend call did not complete (it panicked).
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

/// A connection being served.
pub(crate) struct Connection {
    context: Arc<Context>,
    stream: UnixStream,
    peer: PeerInfo,
    shutdown: ShutdownSignal,
    /// Receive buffer: CDB-sized while idle (idle connections stay small), grown to a
    /// parameter list's length only while one is being read.
    buffer: Vec<u8>,
    /// Number of this connection in the log lines.
    id: u64,
    /// Set once the connection observed the shutdown: what it may still read.
    drain: Option<Drain>,
}

/// Size of the receive buffer between requests: one CDB.
pub(super) const IDLE_BUFFER: usize = pr_protocol::CDB_SIZE;

/// The outcome of waiting for the next chunk of input.
enum Input {
    Data(Received),
    Closed(CloseReason),
}

impl Connection {
    pub(crate) fn new(
        context: Arc<Context>,
        stream: UnixStream,
        peer: PeerInfo,
        shutdown: ShutdownSignal,
        id: u64,
    ) -> Self {
        Self {
            context,
            stream,
            peer,
            shutdown,
            buffer: vec![0; IDLE_BUFFER],
            id,
            drain: None,
        }
    }

    /// Serves the connection to its end and says why it ended. Dropping the returned
    /// future (forced shutdown) closes the socket and any descriptor held.
    pub(crate) async fn run(mut self) -> CloseReason {
        if let Err(reason) = self.handshake().await {
            return reason;
        }
        let mut decoder = RequestDecoder::<OwnedFd>::new();
        loop {
            let request = match self.read_request(&mut decoder).await {
                Ok(request) => request,
                Err(reason) => return reason,
            };
            if self.buffer.len() > IDLE_BUFFER {
                self.buffer = vec![0; IDLE_BUFFER];
            }
            let started = Instant::now();
            let answered = match self.context.backends.plan(&request, &self.peer) {
                Plan::Answered(execution) => self.respond(request, execution, started).await,
                Plan::Blocking(job) => match self.context.takeover(&job, &request) {
                    Some(takeover) => {
                        let command = Command {
                            job,
                            request,
                            started,
                            slots: takeover.slots,
                        };
                        match self.serve_on_own_thread(command, takeover.seat).await {
                            Ok(connection) => {
                                self = connection;
                                continue;
                            }
                            Err(reason) => return reason,
                        }
                    }
                    None => self.answer_in_pool(job, request, started).await,
                },
            };
            if let Err(reason) = answered {
                return reason;
            }
        }
    }

    /// Lends the socket to a blocking thread that serves this connection directly until
    /// it is idle ([`super::affine`]), then serves it here again.
    async fn serve_on_own_thread(
        self,
        first: Command,
        seat: OwnedSemaphorePermit,
    ) -> Result<Self, CloseReason> {
        let Connection {
            context,
            stream,
            peer,
            shutdown,
            buffer,
            id,
            drain,
        } = self;
        let stream = stream
            .into_std()
            .map_err(|error| io_failure("handing the socket to a thread", error))?;
        let lent = Lent::new(stream);
        let shared = lent.share().ok_or_else(|| {
            io_failure(
                "handing the socket to a thread",
                io::ErrorKind::Other.into(),
            )
        })?;
        let worker = Worker {
            context: Arc::clone(&context),
            stream: shared,
            peer,
            id,
            shutdown: shutdown.clone(),
            buffer,
            drain,
        };
        let joined = tokio::task::spawn_blocking(move || {
            let returned = worker.serve(first);
            drop(seat);
            returned
        })
        .await;
        let (buffer, pending, drain) = match joined {
            Ok(Returned::HandBack {
                buffer,
                pending,
                drain,
            }) => (buffer, pending, drain),
            Ok(Returned::Closed(reason)) => return Err(reason),
            Err(error) => {
                tracing::error!(conn = id, peer = %peer, error = %error, "connection thread failed");
                return Err(CloseReason::BackendFailed);
            }
        };
        let stream = lent.take_back().ok_or_else(|| {
            io_failure(
                "taking the socket back from its thread",
                io::ErrorKind::Other.into(),
            )
        })?;
        let stream = UnixStream::from_std(stream)
            .map_err(|error| io_failure("taking the socket back from its thread", error))?;
        let mut connection = Connection {
            context,
            stream,
            peer,
            shutdown,
            buffer,
            id,
            drain,
        };
        if let Some(pending) = pending {
            let Pending {
                job,
                request,
                started,
            } = *pending;
            connection.answer_in_pool(job, request, started).await?;
        }
        Ok(connection)
    }

    async fn handshake(&mut self) -> Result<(), CloseReason> {
        let mut decoder = HandshakeDecoder::default();
        let deadline = tokio::time::Instant::now() + self.context.handshake_timeout;
        let greeting = decoder.greeting();
        match timeout_at(deadline, self.stream.write_all(&greeting)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(io_failure("writing the feature word", error)),
            Err(_) => {
                return Err(CloseReason::HandshakeTimeout(
                    self.context.handshake_timeout,
                ));
            }
        }
        loop {
            // At shutdown, what the peer sent before it still counts: its feature word
            // and any requests behind it may already be waiting. Finish the handshake
            // from those bytes only and let the request drain answer the rest; a peer
            // with nothing (or half a word) waiting is closed at once, like an idle one.
            if self.shutting_down() {
                let mut drain = Drain::begin(self.stream.as_fd());
                drained_handshake(
                    self.stream.as_fd(),
                    &mut decoder,
                    &mut self.buffer,
                    &mut drain,
                )?;
                self.drain = Some(drain);
                return Ok(());
            }
            let wanted = decoder.bytes_wanted();
            let mut shutdown = self.shutdown.clone();
            let input = tokio::select! {
                input = timeout_at(deadline, self.receive(wanted)) => input,
                // Either the flag turned true or the sender is gone: both mean stop.
                _ = shutdown.wait_for(|&stop| stop) => continue,
            };
            let received = match input {
                Ok(Input::Data(received)) => received,
                Ok(Input::Closed(reason)) => return Err(reason),
                Err(_) => {
                    return Err(CloseReason::HandshakeTimeout(
                        self.context.handshake_timeout,
                    ));
                }
            };
            if received.bytes == 0 {
                return Err(match decoder.end_of_stream() {
                    Ok(()) => CloseReason::PeerClosed,
                    Err(violation) => CloseReason::Violation(violation),
                });
            }
            let bytes = self.buffer.get(..received.bytes).unwrap_or_default();
            match decoder.feed(bytes, received.fds) {
                Ok(Negotiation::NeedMore) => continue,
                Ok(Negotiation::Done { .. }) => return Ok(()),
                Err(violation) => return Err(CloseReason::Violation(violation)),
            }
        }
    }

    /// Reads one complete request, watching for shutdown all along. Once a request has
    /// begun, the request deadline runs until it is complete. After the shutdown it
    /// reads only what was waiting when it was observed (`drain.rs`).
    async fn read_request(
        &mut self,
        decoder: &mut RequestDecoder<OwnedFd>,
    ) -> Result<Request<OwnedFd>, CloseReason> {
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            if self.drain.is_none() && self.shutting_down() {
                self.drain = Some(Drain::begin(self.stream.as_fd()));
            }
            if let Some(drain) = self.drain.as_mut() {
                return next_drained(self.stream.as_fd(), decoder, &mut self.buffer, drain);
            }
            let wanted = decoder.bytes_wanted();
            let mut shutdown = self.shutdown.clone();
            let input = tokio::select! {
                input = self.receive_before(wanted, deadline) => input,
                // Either the flag turned true or the sender is gone: both mean stop.
                _ = shutdown.wait_for(|&stop| stop) => continue,
            };
            let received = match input {
                Input::Data(received) => received,
                Input::Closed(reason) => return Err(reason),
            };
            match feed_read(decoder, &self.buffer, received)? {
                Decoded::NeedMore => {
                    // The request deadline runs from the request's first byte.
                    deadline.get_or_insert_with(|| {
                        tokio::time::Instant::now() + self.context.request_timeout
                    });
                }
                Decoded::Request(request) => return Ok(request),
            }
        }
    }

    /// One `recvmsg` of at most `wanted` bytes, before `deadline` if a request has begun.
    async fn receive_before(
        &mut self,
        wanted: usize,
        deadline: Option<tokio::time::Instant>,
    ) -> Input {
        let Some(deadline) = deadline else {
            return self.receive(wanted).await;
        };
        match timeout_at(deadline, self.receive(wanted)).await {
            Ok(input) => input,
            Err(_) => Input::Closed(CloseReason::RequestTimeout {
                deadline: self.context.request_timeout,
                stage_wanted: wanted,
            }),
        }
    }

    /// One `recvmsg` of at most `wanted` bytes.
    async fn receive(&mut self, wanted: usize) -> Input {
        let Some(buffer) = buffer_for(&mut self.buffer, wanted) else {
            return Input::Closed(CloseReason::Violation(Violation::AlreadyFailed));
        };
        match recv_with_fds(&self.stream, buffer).await {
            Ok(received) => Self::checked(received),
            Err(error) => Input::Closed(io_failure("reading the socket", error)),
        }
    }

    /// A truncated control message ends the connection; anything else is input.
    fn checked(received: Received) -> Input {
        if received.control_truncated {
            let received = received.fds.len();
            // The descriptors that did arrive are closed as `fds` drops here.
            Input::Closed(CloseReason::ControlTruncated { received })
        } else {
            Input::Data(received)
        }
    }

    /// Runs the blocking part of a command in the bounded pool, then answers it.
    async fn answer_in_pool(
        &mut self,
        job: Job,
        request: Request<OwnedFd>,
        started: Instant,
    ) -> Result<(), CloseReason> {
        let (execution, request) = self.run_in_pool(job, request).await?;
        self.respond(request, execution, started).await
    }

    /// Writes the response to `request`, then closes its descriptor.
    async fn respond(
        &mut self,
        request: Request<OwnedFd>,
        execution: Execution,
        started: Instant,
    ) -> Result<(), CloseReason> {
        let wire = encode_answer(self.id, &self.peer, &request, execution, started);
        let deadline = tokio::time::Instant::now() + self.context.request_timeout;
        let written = timeout_at(deadline, self.stream.write_all(&wire)).await;
        self.context.commands.fetch_add(1, Ordering::Relaxed);
        // The descriptor closes here, after the response went out (or failed to).
        drop(request);
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(io_failure("writing the response", error)),
            Err(_) => Err(CloseReason::ReplyTimeout(self.context.request_timeout)),
        }
    }

    /// Runs the blocking part of a command in the bounded pool. The request travels
    /// with it and comes back, so its descriptor stays open until the answer is written.
    async fn run_in_pool(
        &self,
        job: Job,
        request: Request<OwnedFd>,
    ) -> Result<(Execution, Request<OwnedFd>), CloseReason> {
        let key = DeviceKey::for_job(&job, request.fd.as_fd());
        let backends = Arc::clone(&self.context.backends);
        let peer = self.peer;
        let descriptor = job.descriptor;
        let blocking = move || {
            let response = backends.run(job, &request, &peer);
            (response, request)
        };
        match self.context.pool.run(key, blocking).await {
            Ok((response, request)) => Ok((
                Execution {
                    response,
                    descriptor,
                },
                request,
            )),
            Err(error) => {
                tracing::error!(
                    conn = self.id,
                    peer = %self.peer,
                    error = %crate::backend::error_chain(&error),
                    "backend call failed"
                );
                Err(CloseReason::BackendFailed)
            }
        }
    }

    fn shutting_down(&self) -> bool {
        // A dropped sender also means stop: nobody can tell us to go on.
        self.context.bell.is_rung()
            || *self.shutdown.borrow()
            || self.shutdown.has_changed().is_err()
    }
}

/// The bytes of the response to `request`, after its log line. A response that cannot
/// be encoded (a backend bug) becomes a CHECK CONDITION: QEMU's client would assert on it.
pub(super) fn encode_answer(
    id: u64,
    peer: &PeerInfo,
    request: &Request<OwnedFd>,
    execution: Execution,
    started: Instant,
) -> Vec<u8> {
    let Execution {
        response,
        descriptor,
    } = execution;
    let mut wire = Vec::with_capacity(response.encoded_len());
    let response = match response.encode(&request.cdb, &mut wire) {
        Ok(()) => response,
        Err(error) => {
            tracing::error!(peer = %peer, error = %error, "backend produced an invalid response");
            let fallback = check_condition(Sense::IO_ERROR);
            wire.clear();
            let _ = fallback.encode(&request.cdb, &mut wire);
            fallback
        }
    };
    log_command(id, peer, request, &descriptor, &response, started.elapsed());
    wire
}

/// The first `wanted` bytes of `buffer` (at least 1, at most the protocol's largest
/// transfer), growing it if needed.
pub(super) fn buffer_for(buffer: &mut Vec<u8>, wanted: usize) -> Option<&mut [u8]> {
    let limit = wanted.clamp(1, MAX_TRANSFER);
    if buffer.len() < limit {
        buffer.resize(limit, 0);
    }
    buffer.get_mut(..limit)
}

/// Feeds one read to `decoder`, as every reader of requests does (the task, a
/// connection's own thread, the drain at shutdown): a truncated control message, or the
/// peer's end of stream, ends the connection; the decoder's violation does too.
pub(super) fn feed_read(
    decoder: &mut RequestDecoder<OwnedFd>,
    buffer: &[u8],
    received: Received,
) -> Result<Decoded<OwnedFd>, CloseReason> {
    if received.control_truncated {
        // The descriptors that did arrive are closed as `received` drops here.
        return Err(CloseReason::ControlTruncated {
            received: received.fds.len(),
        });
    }
    if received.bytes == 0 {
        return Err(match decoder.end_of_stream() {
            Ok(()) => CloseReason::PeerClosed,
            Err(violation) => CloseReason::Violation(violation),
        });
    }
    let bytes = buffer.get(..received.bytes).unwrap_or_default();
    decoder
        .feed(bytes, received.fds)
        .map_err(CloseReason::Violation)
}

pub(super) fn io_failure(step: &'static str, error: io::Error) -> CloseReason {
    CloseReason::Io { step, error }
}

fn log_command(
    id: u64,
    peer: &PeerInfo,
    request: &Request<OwnedFd>,
    descriptor: &crate::backend::DescriptorLabel,
    response: &Response,
    latency: Duration,
) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let opcode = request.cdb[0];
    let service_action = request.cdb[1] & 0x1f;
    let status = scsi::status::Status(response.status);
    let sense = if response.status == pr_protocol::STATUS_CHECK_CONDITION {
        Sense::parse(&response.sense).to_string()
    } else {
        String::from("-")
    };
    tracing::debug!(
        conn = id,
        peer = %peer,
        command = scsi::cdb::command_name(opcode),
        service_action = format_args!("{service_action:#04x}"),
        descriptor = %descriptor,
        status = %status,
        sense = %sense,
        payload = response.data.len(),
        latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
        "command"
    );
}
