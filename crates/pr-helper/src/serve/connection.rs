//! The driver: runs one connection's [`Session`] on the calling thread with plain
//! blocking calls, until the connection is idle or over.
//!
//! It only waits and moves bytes: a blocking `recvmsg` (with `MSG_CMSG_CLOEXEC`) of
//! at most what the session asks for, a blocking `send`, the backend call, and the
//! clock. The socket's own timeouts bound each wait: `SO_SNDTIMEO` (the reply deadline)
//! is set once, `SO_RCVTIMEO` is the idle time between requests, or what is left of
//! the request deadline while a request is half read.
//!
//! A read that would block while the session is idle returns the connection to the
//! caller, which sets it aside until the peer sends again (`hub.rs`): a connection
//! holds a thread only while it is busy. At shutdown the socket's reading side has
//! been shut (`shutdown(SHUT_RD)`), so the peer can add nothing and every wait ends;
//! the session is told how many bytes were still waiting and reads only those.

use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::sockopt::Timeout;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendFlags};

use super::session::{CloseReason, Received, Session, Step};
use super::shutdown::Shutdown;
use crate::backend::Backends;

/// Descriptors one read makes room for: one is allowed, more are a violation the
/// decoder must see (closed at once), and beyond this the kernel truncates.
const FDS_PER_READ: usize = 4;

/// What a connection's driver shares with the others.
#[derive(Debug)]
pub(super) struct Drive {
    pub backends: Arc<Backends>,
    pub shutdown: Arc<Shutdown>,
    /// How long an idle connection keeps its thread before it is set aside.
    pub idle: Duration,
    /// How long to poll for the next request before blocking (0: never poll).
    pub busy_poll: Duration,
    /// Commands answered, all connections together.
    pub commands: AtomicU64,
}

/// A connection: its protocol state and its socket.
#[derive(Debug)]
pub(super) struct Connection {
    pub session: Session,
    /// Shared with the hub's list of live sockets, which shuts it at shutdown.
    pub stream: Arc<UnixStream>,
    /// The receive timeout set on the socket now.
    recv_timeout: Option<Duration>,
    /// Whether the peer's last request came within the busy-poll time of our reply,
    /// i.e. polling for the next one is likely to pay.
    peer_is_quick: bool,
}

/// What the session asked for, without its borrow.
enum Action {
    Write,
    Read,
    Execute,
}

/// How a connection left its thread.
#[derive(Debug)]
pub(super) enum Left {
    /// Idle (or waiting for the handshake): set it aside until it is readable.
    Idle(Connection),
    /// Over, for this reason; the socket closes when the value drops.
    Closed(Connection, CloseReason),
}

impl Connection {
    /// A connection with its socket. The socket must be blocking.
    pub(super) fn new(
        session: Session,
        stream: UnixStream,
        reply_deadline: Duration,
    ) -> io::Result<Self> {
        rustix::net::sockopt::set_socket_timeout(
            &stream,
            Timeout::Send,
            Some(at_least_a_microsecond(reply_deadline)),
        )?;
        Ok(Self {
            session,
            stream: Arc::new(stream),
            recv_timeout: None,
            peer_is_quick: false,
        })
    }

    /// Sends the greeting (the session's first step; it fits in any socket buffer, so
    /// this does not block), and nothing else: the accepting thread goes on accepting.
    pub(super) fn greet(mut self) -> Left {
        let sent = match self.session.next() {
            Step::Write(bytes) => rustix::net::send(
                &*self.stream,
                bytes,
                SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
            ),
            Step::Close(reason) => return Left::Closed(self, reason),
            _ => return Left::Idle(self),
        };
        match sent {
            Ok(written) => self.session.wrote(written),
            Err(error) => self.session.write_failed(error.into()),
        }
        match self.session.next() {
            Step::Close(reason) => Left::Closed(self, reason),
            _ => Left::Idle(self),
        }
    }

    /// Serves the connection until it is idle or over.
    pub(super) fn run(mut self, drive: &Drive) -> Left {
        loop {
            if drive.shutdown.is_triggered() && !self.session.draining() {
                let waiting = rustix::io::ioctl_fionread(self.stream.as_fd()).unwrap_or(0);
                self.session
                    .begin_drain(usize::try_from(waiting).unwrap_or(usize::MAX));
            }
            let parkable = self.session.is_idle() || self.session.in_handshake();
            let draining = self.session.draining();
            let deadline = self.session.deadline();
            let action = match self.session.next() {
                Step::Write(_) => Action::Write,
                Step::Read(_) => Action::Read,
                Step::Execute(_) => Action::Execute,
                Step::Close(reason) => return Left::Closed(self, reason),
            };
            match action {
                Action::Write => {
                    let sent = match self.session.next() {
                        Step::Write(bytes) => send(&self.stream, bytes),
                        _ => continue,
                    };
                    let before = self.session.answered();
                    match sent {
                        Ok(written) => self.session.wrote(written),
                        Err(error) if is_timeout(&error) => self.session.expired(Instant::now()),
                        Err(error) => self.session.write_failed(error),
                    }
                    if self.session.answered() != before {
                        drive.commands.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Action::Read if parkable && !draining => {
                    if !self.read_while_idle(drive) {
                        return Left::Idle(self);
                    }
                }
                Action::Read => {
                    let flags = if draining {
                        // Only what is already there counts; nothing is waited for.
                        RecvFlags::DONTWAIT
                    } else {
                        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                        self.set_recv_timeout(left);
                        RecvFlags::empty()
                    };
                    match self.receive(flags) {
                        Ok(received) => self.session.received(received, Instant::now()),
                        // Nothing more waiting: the drain is over.
                        Err(error) if draining && is_timeout(&error) => {
                            self.session
                                .received(Received::end_of_stream(), Instant::now());
                        }
                        Err(error) if is_timeout(&error) => self.session.expired(Instant::now()),
                        Err(error) => self.session.read_failed(error),
                    }
                }
                Action::Execute => {
                    let peer = *self.session.peer();
                    let executed = match self.session.next() {
                        Step::Execute(request) => {
                            std::panic::catch_unwind(AssertUnwindSafe(|| {
                                drive.backends.execute(request, &peer)
                            }))
                        }
                        _ => continue,
                    };
                    match executed {
                        Ok(execution) => self.session.executed(execution, Instant::now()),
                        Err(_) => {
                            tracing::error!(conn = self.session.id(), peer = %peer, "backend call panicked");
                            return Left::Closed(self, CloseReason::BackendFailed);
                        }
                    }
                }
            }
        }
    }

    /// One read while the connection is idle or in its handshake: poll briefly if the
    /// peer has been quick, then block for at most the idle time (not at all in the
    /// handshake, whose peer may take seconds). `false`: nothing came, set it aside.
    fn read_while_idle(&mut self, drive: &Drive) -> bool {
        let mut flags = RecvFlags::DONTWAIT;
        if !self.session.in_handshake() {
            if self.peer_is_quick && !drive.busy_poll.is_zero() {
                let until = Instant::now() + drive.busy_poll;
                loop {
                    match self.receive(RecvFlags::DONTWAIT) {
                        Err(error) if is_timeout(&error) => {}
                        other => {
                            self.took(other);
                            return true;
                        }
                    }
                    if Instant::now() >= until {
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
            self.set_recv_timeout(Some(drive.idle));
            flags = RecvFlags::empty();
        }
        let started = Instant::now();
        match self.receive(flags) {
            Err(error) if is_timeout(&error) => {
                self.peer_is_quick = false;
                false
            }
            other => {
                self.peer_is_quick = started.elapsed() <= drive.busy_poll;
                self.took(other);
                true
            }
        }
    }

    fn took(&mut self, received: io::Result<Received>) {
        match received {
            Ok(received) => self.session.received(received, Instant::now()),
            Err(error) => self.session.read_failed(error),
        }
    }

    /// Sets `SO_RCVTIMEO` unless it already has that value (`None`: no timeout).
    fn set_recv_timeout(&mut self, timeout: Option<Duration>) {
        let timeout = timeout.map(at_least_a_microsecond);
        if self.recv_timeout != timeout {
            // On failure the previous timeout stays, which only makes a wait longer or
            // shorter, never unbounded: the deadline is checked after every wake-up.
            if rustix::net::sockopt::set_socket_timeout(&*self.stream, Timeout::Recv, timeout)
                .is_ok()
            {
                self.recv_timeout = timeout;
            }
        }
    }

    /// One `recvmsg` into the session's read space, retried on EINTR.
    fn receive(&mut self, flags: RecvFlags) -> io::Result<Received> {
        let Step::Read(buffer) = self.session.next() else {
            return Err(io::ErrorKind::InvalidInput.into());
        };
        loop {
            match recv_with_fds(self.stream.as_fd(), buffer, flags) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

/// One `send`, retried on EINTR; blocks up to the socket's send timeout.
fn send(stream: &UnixStream, bytes: &[u8]) -> io::Result<usize> {
    loop {
        match rustix::net::send(stream, bytes, SendFlags::NOSIGNAL) {
            Ok(0) if !bytes.is_empty() => return Err(io::ErrorKind::WriteZero.into()),
            Ok(sent) => return Ok(sent),
            Err(Errno::INTR) => continue,
            Err(error) => return Err(error.into()),
        }
    }
}

/// What a socket timeout looks like: EAGAIN / EWOULDBLOCK.
fn is_timeout(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock || error.kind() == io::ErrorKind::TimedOut
}

/// A zero socket timeout means "wait forever" to the kernel.
fn at_least_a_microsecond(timeout: Duration) -> Duration {
    timeout.max(Duration::from_micros(1))
}

/// One `recvmsg` of at most `buffer.len()` bytes with room for a few descriptors,
/// received close-on-exec.
fn recv_with_fds(stream: impl AsFd, buffer: &mut [u8], flags: RecvFlags) -> io::Result<Received> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_READ))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(buffer)];
    let message = rustix::net::recvmsg(
        stream,
        &mut iov,
        &mut control,
        RecvFlags::CMSG_CLOEXEC | flags,
    )?;
    let mut fds = Vec::new();
    for ancillary in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = ancillary {
            fds.extend(received);
        }
    }
    Ok(Received {
        bytes: message.bytes,
        fds,
        control_truncated: message.flags.contains(ReturnFlags::CTRUNC),
    })
}
