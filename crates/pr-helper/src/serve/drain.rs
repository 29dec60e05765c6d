//! Ending a connection at shutdown: what is answered, and how a blocking thread notices.
//!
//! When a connection first observes the shutdown, it notes how many bytes are waiting
//! in its socket at that moment ([`Drain::begin`]). From then on it never waits for
//! input: it reads requests out of those bytes only ([`next_drained`]), answers each,
//! and closes when they are used up. A request that is not complete within them is
//! dropped, its descriptors closed. Bytes the peer sends later are never read, so a
//! peer that keeps sending cannot keep the connection alive.
//!
//! A connection's own thread blocks in `poll`, not in the runtime, so the shutdown
//! also rings a [`Bell`]: a flag checked before every request, and an eventfd polled
//! together with the socket.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pr_protocol::{Decoded, HandshakeDecoder, Negotiation, Request, RequestDecoder};
use rustix::event::{EventfdFlags, eventfd};

use super::connection::{CloseReason, buffer_for, feed_read, io_failure};
use super::recv::recv_now;

/// The shutdown as connection threads see it: a flag, and an eventfd that turns
/// readable for good once the daemon shuts down. Ringing it is async-signal-safe, so a
/// signal handler can ring it directly ([`Bell::ring_on_signals`]): busy connections
/// then stop reading new requests without waiting for the runtime to process the signal.
#[derive(Debug)]
pub struct Bell {
    fd: OwnedFd,
    rung: AtomicBool,
}

impl Bell {
    /// A bell not rung yet.
    pub fn new() -> io::Result<Self> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Self {
            fd,
            rung: AtomicBool::new(false),
        })
    }

    /// Marks the shutdown and wakes every thread polling the bell, now and later
    /// (nobody reads the counter, so it stays readable). Only an atomic swap and one
    /// `write(2)`: safe inside a signal handler.
    pub fn ring(&self) {
        if self.rung.swap(true, Ordering::AcqRel) {
            return;
        }
        // A failed write (the counter cannot overflow from one increment) would only
        // delay the threads until the shutdown handle reaches them: nothing to log
        // from a signal handler.
        let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
    }

    /// Rings the bell from the handler of each of `signals`, in addition to whatever
    /// else handles them (the runtime's handlers keep working).
    pub fn ring_on_signals(self: &Arc<Self>, signals: &[i32]) -> io::Result<()> {
        for &signal in signals {
            super::sys::ring_on_signal(signal, Arc::clone(self))?;
        }
        Ok(())
    }

    /// Whether [`Bell::ring`] was called.
    pub fn is_rung(&self) -> bool {
        self.rung.load(Ordering::Acquire)
    }

    pub(super) fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The input a connection may still read after it observed the shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Drain {
    /// Bytes left of those that were waiting when the shutdown was observed.
    left: usize,
}

impl Drain {
    /// Notes what is waiting in `socket` right now. If that cannot be told, nothing
    /// more is read: closing early is the safe side at shutdown.
    pub(super) fn begin(socket: BorrowedFd<'_>) -> Self {
        let waiting = rustix::io::ioctl_fionread(socket).unwrap_or(0);
        Self {
            left: usize::try_from(waiting).unwrap_or(usize::MAX),
        }
    }
}

/// Completes a handshake from the bytes `drain` still allows, read without waiting.
/// `ShuttingDown` when the feature word is not all there.
pub(super) fn drained_handshake(
    socket: BorrowedFd<'_>,
    decoder: &mut HandshakeDecoder,
    buffer: &mut Vec<u8>,
    drain: &mut Drain,
) -> Result<(), CloseReason> {
    loop {
        if drain.left == 0 {
            return Err(CloseReason::ShuttingDown);
        }
        let wanted = decoder.bytes_wanted().min(drain.left);
        let Some(space) = buffer_for(buffer, wanted) else {
            return Err(CloseReason::ShuttingDown);
        };
        let received = match recv_now(socket, space) {
            Ok(received) => received,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                return Err(CloseReason::ShuttingDown);
            }
            Err(error) => return Err(io_failure("reading the socket", error)),
        };
        if received.bytes == 0 {
            return Err(CloseReason::ShuttingDown);
        }
        drain.left = drain.left.saturating_sub(received.bytes);
        let bytes = buffer.get(..received.bytes).unwrap_or_default();
        match decoder.feed(bytes, received.fds) {
            Ok(Negotiation::NeedMore) => continue,
            Ok(Negotiation::Done { .. }) => return Ok(()),
            Err(violation) => return Err(CloseReason::Violation(violation)),
        }
    }
}

/// The next complete request among the bytes `drain` still allows, read without
/// waiting. Once they are used up (or, unexpectedly, not there) the connection is over:
/// `ShuttingDown`, and a partial request left in `decoder` is dropped with it.
pub(super) fn next_drained(
    socket: BorrowedFd<'_>,
    decoder: &mut RequestDecoder<OwnedFd>,
    buffer: &mut Vec<u8>,
    drain: &mut Drain,
) -> Result<Request<OwnedFd>, CloseReason> {
    loop {
        if drain.left == 0 {
            return Err(CloseReason::ShuttingDown);
        }
        let wanted = decoder.bytes_wanted().min(drain.left);
        let Some(space) = buffer_for(buffer, wanted) else {
            return Err(CloseReason::ShuttingDown);
        };
        let received = match recv_now(socket, space) {
            Ok(received) => received,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                return Err(CloseReason::ShuttingDown);
            }
            Err(error) => return Err(io_failure("reading the socket", error)),
        };
        drain.left = drain.left.saturating_sub(received.bytes);
        match feed_read(decoder, buffer, received)? {
            Decoded::NeedMore => continue,
            Decoded::Request(request) => return Ok(request),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    use super::*;

    fn request_bytes() -> Vec<u8> {
        let mut cdb = [0u8; 16];
        cdb[0] = pr_protocol::PERSISTENT_RESERVE_IN;
        cdb[8] = 64;
        cdb.to_vec()
    }

    fn send_with_fd(stream: &UnixStream, bytes: &[u8]) {
        let file = std::fs::File::open("/dev/null").expect("/dev/null");
        let fds = [file.as_fd()];
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
        assert!(control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds)));
        let sent = rustix::net::sendmsg(
            stream,
            &[io::IoSlice::new(bytes)],
            &mut control,
            rustix::net::SendFlags::empty(),
        )
        .expect("sendmsg");
        assert_eq!(sent, bytes.len());
    }

    #[test]
    fn only_the_requests_waiting_when_the_drain_began_are_read() {
        let (mut peer, ours) = UnixStream::pair().expect("socket pair");
        let request = request_bytes();
        send_with_fd(&peer, &request);
        send_with_fd(&peer, &request);
        let mut drain = Drain::begin(ours.as_fd());
        assert_eq!(drain.left, 2 * request.len());
        // Sent after the drain began: must stay unread.
        send_with_fd(&peer, &request);
        peer.flush().expect("flush");

        let mut decoder = RequestDecoder::new();
        let mut buffer = Vec::new();
        for _ in 0..2 {
            let drained = next_drained(ours.as_fd(), &mut decoder, &mut buffer, &mut drain)
                .expect("a waiting request");
            assert_eq!(drained.cdb.to_vec(), request);
        }
        let end = next_drained(ours.as_fd(), &mut decoder, &mut buffer, &mut drain);
        assert!(matches!(end, Err(CloseReason::ShuttingDown)), "{end:?}");
        let unread = rustix::io::ioctl_fionread(ours.as_fd()).expect("FIONREAD");
        assert_eq!(unread, request.len() as u64);
    }

    #[test]
    fn a_feature_word_waiting_at_shutdown_completes_the_handshake_and_the_drain_goes_on() {
        let (mut peer, ours) = UnixStream::pair().expect("socket pair");
        peer.write_all(&0u32.to_be_bytes()).expect("feature word");
        let request = request_bytes();
        send_with_fd(&peer, &request);
        let mut drain = Drain::begin(ours.as_fd());
        let mut handshake = HandshakeDecoder::default();
        let mut buffer = Vec::new();
        drained_handshake(ours.as_fd(), &mut handshake, &mut buffer, &mut drain)
            .expect("handshake from the waiting bytes");
        let mut decoder = RequestDecoder::new();
        let drained = next_drained(ours.as_fd(), &mut decoder, &mut buffer, &mut drain)
            .expect("the request behind it");
        assert_eq!(drained.cdb.to_vec(), request);
    }

    #[test]
    fn half_a_feature_word_at_shutdown_closes() {
        let (mut peer, ours) = UnixStream::pair().expect("socket pair");
        peer.write_all(&[0, 0]).expect("half a word");
        let mut drain = Drain::begin(ours.as_fd());
        let mut handshake = HandshakeDecoder::default();
        let mut buffer = Vec::new();
        let end = drained_handshake(ours.as_fd(), &mut handshake, &mut buffer, &mut drain);
        assert!(matches!(end, Err(CloseReason::ShuttingDown)), "{end:?}");
    }

    #[test]
    fn a_partial_request_is_dropped() {
        let (peer, ours) = UnixStream::pair().expect("socket pair");
        let request = request_bytes();
        send_with_fd(&peer, &request[..5]);
        let mut drain = Drain::begin(ours.as_fd());
        let mut decoder = RequestDecoder::new();
        let mut buffer = Vec::new();
        let end = next_drained(ours.as_fd(), &mut decoder, &mut buffer, &mut drain);
        assert!(matches!(end, Err(CloseReason::ShuttingDown)), "{end:?}");
        assert!(!decoder.is_idle(), "the partial request was not read");
    }

    #[test]
    fn an_idle_socket_ends_at_once() {
        let (_peer, ours) = UnixStream::pair().expect("socket pair");
        let mut drain = Drain::begin(ours.as_fd());
        let mut decoder = RequestDecoder::new();
        let mut buffer = Vec::new();
        let end = next_drained(ours.as_fd(), &mut decoder, &mut buffer, &mut drain);
        assert!(matches!(end, Err(CloseReason::ShuttingDown)), "{end:?}");
    }

    /// Polls the bell; `None` waits without a limit.
    fn bell_readable(bell: &Bell, wait: Option<&rustix::event::Timespec>) -> bool {
        let mut fds = [rustix::event::PollFd::new(
            &bell.fd,
            rustix::event::PollFlags::IN,
        )];
        rustix::event::poll(&mut fds, wait).expect("poll") == 1
    }

    #[test]
    fn a_signal_rings_the_bell_from_its_handler() {
        let bell = Arc::new(Bell::new().expect("bell"));
        bell.ring_on_signals(&[libc::SIGUSR2]).expect("handler");
        assert!(!bell.is_rung());
        rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::USR2)
            .expect("kill");
        // The handler may run on another thread of this process: wait for it.
        assert!(bell_readable(&bell, None));
        assert!(bell.is_rung());
    }

    #[test]
    fn the_bell_stays_readable_once_rung() {
        let bell = Bell::new().expect("bell");
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let readable = |bell: &Bell| bell_readable(bell, Some(&zero));
        assert!(!readable(&bell));
        bell.ring();
        bell.ring();
        assert!(readable(&bell));
        assert!(readable(&bell));
    }
}
