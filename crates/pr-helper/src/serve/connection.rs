//! The driver: runs one connection's [`Session`] on the calling thread with plain
//! blocking calls, until the connection waits on its socket or is over.
//!
//! It only waits and moves bytes: a blocking `recvmsg` (with `MSG_CMSG_CLOEXEC`) of
//! at most what the session asks for, a blocking `send`, the backend call, and the
//! clock. The socket's own timeouts bound each wait to the idle time (20 ms), or less
//! when the session's deadline is nearer: `SO_SNDTIMEO` is set once, `SO_RCVTIMEO`
//! only when the wait changes. A wait that runs out before the deadline hands the
//! connection back to the caller, which sets it aside until its socket is ready
//! (`hub.rs`), so a slow or stalled peer that dribbles a request or leaves its reply
//! unread never holds a thread. One wait has no limit: an answered connection waiting
//! for its next command may keep its thread, up to half of the thread cap
//! ([`Connection::try_keep_thread`]). At shutdown the socket's reading side has been shut
//! (`shutdown(SHUT_RD)`), so the peer can add nothing and every wait ends; the session
//! is told how many bytes were still waiting and reads only those.

use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::sockopt::Timeout;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendFlags};

use super::descriptor::PeerFd;
use super::session::{CloseReason, Received, Session, Step};
use super::shutdown::Shutdown;
use crate::backend::{Backends, DescriptorMemo};

/// Descriptors one read makes room for: one is allowed, more are a violation the
/// decoder must see (closed at once), and beyond this the kernel truncates.
const FDS_PER_READ: usize = 4;

/// What a connection's driver shares with the others.
#[derive(Debug)]
pub(super) struct Drive {
    pub backends: Arc<Backends>,
    pub shutdown: Arc<Shutdown>,
    /// How long a wait on the socket keeps the thread before the connection is set
    /// aside (except a kept thread's wait for the next command).
    pub idle: Duration,
    /// How long to poll for the next request before blocking (0: never poll).
    pub busy_poll: Duration,
    /// Commands answered, all connections together, added when a connection leaves
    /// its thread.
    pub commands: AtomicU64,
    /// Threads that may still be kept by connections between their commands (see
    /// [`Connection::try_keep_thread`]).
    pub kept_threads_left: AtomicUsize,
}

/// A connection: its protocol state and its socket.
#[derive(Debug)]
pub(super) struct Connection {
    pub session: Session,
    /// Shared with the hub's list of live sockets, which shuts it at shutdown.
    pub stream: Arc<UnixStream>,
    /// The receive timeout set on the socket now (`None`: waits have no limit, as on
    /// a new socket).
    recv_timeout: Option<Duration>,
    /// Whether the connection holds one of [`Drive::kept_threads_left`].
    keeps_thread: bool,
    /// Whether the peer's last request came within the busy-poll time of our reply,
    /// i.e. polling for the next one is likely to pay.
    peer_is_quick: bool,
    /// The descriptor of its last command, as the backends classified and routed it.
    memo: DescriptorMemo,
}

/// What the session asked for, without its borrow.
enum Action {
    Write,
    Read,
    Execute,
}

/// What a connection set aside waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Interest {
    Readable,
    Writable,
}

/// How a connection left its thread.
#[derive(Debug)]
pub(super) enum Left {
    /// Waiting on its socket: set it aside until it is ready.
    Waiting(Connection, Interest),
    /// Over, for this reason; the socket closes when the value drops.
    Closed(Connection, CloseReason),
}

impl Connection {
    /// A connection with its socket. The socket must be blocking.
    pub(super) fn new(session: Session, stream: UnixStream, idle: Duration) -> io::Result<Self> {
        rustix::net::sockopt::set_socket_timeout(
            &stream,
            Timeout::Send,
            Some(at_least_a_microsecond(idle)),
        )?;
        Ok(Self {
            session,
            stream: Arc::new(stream),
            recv_timeout: None,
            keeps_thread: false,
            peer_is_quick: false,
            memo: DescriptorMemo::default(),
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
            _ => return Left::Waiting(self, Interest::Readable),
        };
        match sent {
            Ok(written) => self.session.wrote(written),
            Err(error) => self.session.write_failed(error.into()),
        }
        match self.session.next() {
            Step::Close(reason) => Left::Closed(self, reason),
            _ => Left::Waiting(self, Interest::Readable),
        }
    }

    /// Serves the connection until it waits on its socket (idle, or a peer that is
    /// slow to send or to read) or is over. No socket wait on the thread lasts
    /// longer than [`Drive::idle`], and a longer one sets the connection aside, except
    /// a kept thread's wait for the next command (see [`Self::try_keep_thread`]).
    pub(super) fn run(self, drive: &Drive) -> Left {
        let answered_before = self.session.answered();
        let mut left = self.serve(drive);
        let (Left::Waiting(connection, _) | Left::Closed(connection, _)) = &mut left;
        connection.release_thread(drive);
        // Counted once per turn on a thread, not per command: the shared counter's
        // cache line then does not move between CPUs with every reply.
        let answered = connection
            .session
            .answered()
            .saturating_sub(answered_before);
        drive.commands.fetch_add(answered, Ordering::Relaxed);
        left
    }

    fn serve(mut self, drive: &Drive) -> Left {
        loop {
            if drive.shutdown.is_triggered() && !self.session.draining() {
                let waiting = rustix::io::ioctl_fionread(self.stream.as_fd()).unwrap_or(0);
                self.session
                    .begin_drain(usize::try_from(waiting).unwrap_or(usize::MAX));
            }
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
                    match sent {
                        Ok(written) => self.session.wrote(written),
                        Err(error) if is_timeout(&error) => {
                            if !self.expire_if_due(deadline) {
                                return Left::Waiting(self, Interest::Writable);
                            }
                        }
                        Err(error) => self.session.write_failed(error),
                    }
                }
                Action::Read if draining => match self.receive(RecvFlags::DONTWAIT) {
                    // Only what is already there counts; nothing is waited for.
                    Ok(received) => self.deliver(received, drive),
                    Err(error) if is_timeout(&error) => {
                        self.session
                            .received(Received::end_of_stream(), Instant::now());
                    }
                    Err(error) => self.session.read_failed(error),
                },
                Action::Read => {
                    if self.poll_briefly(drive) {
                        continue;
                    }
                    let wait = match deadline {
                        Some(due) => Some(
                            due.saturating_duration_since(Instant::now())
                                .min(drive.idle),
                        ),
                        None if self.try_keep_thread(drive) => None,
                        None => Some(drive.idle),
                    };
                    self.set_recv_timeout(wait);
                    // Timed only when polling is on: the clock is not free.
                    let started = (!drive.busy_poll.is_zero()).then(Instant::now);
                    match self.receive(RecvFlags::empty()) {
                        Ok(received) => {
                            self.peer_is_quick =
                                started.is_some_and(|at| at.elapsed() <= drive.busy_poll);
                            self.deliver(received, drive);
                        }
                        Err(error) if is_timeout(&error) => {
                            self.peer_is_quick = false;
                            if !self.expire_if_due(deadline) {
                                return Left::Waiting(self, Interest::Readable);
                            }
                        }
                        Err(error) => self.session.read_failed(error),
                    }
                }
                Action::Execute => {
                    let peer = *self.session.peer();
                    let executed = match self.session.next() {
                        Step::Execute(request) => {
                            std::panic::catch_unwind(AssertUnwindSafe(|| {
                                drive.backends.execute(request, &peer, &mut self.memo)
                            }))
                        }
                        _ => continue,
                    };
                    match executed {
                        Ok(execution) => self.session.executed(execution, Instant::now()),
                        Err(_) => {
                            tracing::error!(
                                conn = self.session.id(),
                                peer_pid = peer.pid,
                                peer_uid = peer.uid,
                                peer_gid = peer.gid,
                                "backend call panicked"
                            );
                            return Left::Closed(self, CloseReason::BackendFailed);
                        }
                    }
                }
            }
        }
    }

    /// Closes the session for its deadline if `deadline` has passed.
    fn expire_if_due(&mut self, deadline: Option<Instant>) -> bool {
        let now = Instant::now();
        if deadline.is_some_and(|due| now >= due) {
            self.session.expired(now);
            true
        } else {
            false
        }
    }

    /// Between requests, polls for the next one for up to the busy-poll time if the
    /// peer has been that quick; `true` if something came (and was delivered).
    fn poll_briefly(&mut self, drive: &Drive) -> bool {
        if drive.busy_poll.is_zero() || !self.peer_is_quick || !self.session.is_idle() {
            return false;
        }
        let until = Instant::now() + drive.busy_poll;
        loop {
            match self.receive(RecvFlags::DONTWAIT) {
                Err(error) if is_timeout(&error) => {}
                Ok(received) => {
                    self.deliver(received, drive);
                    return true;
                }
                Err(error) => {
                    self.session.read_failed(error);
                    return true;
                }
            }
            if Instant::now() >= until {
                return false;
            }
            std::hint::spin_loop();
        }
    }

    /// Hands a receive to the session. If the shutdown began while the read was
    /// waiting (its socket was shut, which may be what ended the wait), the drain
    /// starts first: what this read brought and what is still waiting are the
    /// budget, so an end of stream caused by the shutdown is not the peer's.
    fn deliver(&mut self, received: Received, drive: &Drive) {
        if drive.shutdown.is_triggered() && !self.session.draining() {
            let waiting = rustix::io::ioctl_fionread(self.stream.as_fd()).unwrap_or(0);
            let waiting = usize::try_from(waiting).unwrap_or(usize::MAX);
            self.session
                .begin_drain(waiting.saturating_add(received.bytes));
        }
        self.session.received(received, Instant::now());
    }

    /// Whether the thread waits for the next command with no time limit instead of
    /// setting the connection aside after [`Drive::idle`]. A connection that has
    /// been answered and sits between commands may keep its thread while fewer than
    /// half of the thread cap are kept that way: its next command is then served
    /// with no epoll round trip, and its waits arm no timer (one per wait otherwise,
    /// a measurable part of a command's cost). The other half of the cap is always
    /// there for the other connections; the shutdown's `shutdown(SHUT_RD)` ends
    /// these waits like any other.
    fn try_keep_thread(&mut self, drive: &Drive) -> bool {
        if !self.keeps_thread && self.session.answered() > 0 && self.session.is_idle() {
            self.keeps_thread = drive
                .kept_threads_left
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                    left.checked_sub(1)
                })
                .is_ok();
        }
        self.keeps_thread
    }

    /// Gives back a kept thread when the connection leaves its thread.
    fn release_thread(&mut self, drive: &Drive) {
        if std::mem::take(&mut self.keeps_thread) {
            drive.kept_threads_left.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Sets `SO_RCVTIMEO` (`None`: no limit) unless it already has that value.
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
            fds.extend(received.map(PeerFd::new));
        }
    }
    Ok(Received {
        bytes: message.bytes,
        fds,
        control_truncated: message.flags.contains(ReturnFlags::CTRUNC),
    })
}
