//! Reading bytes together with the descriptors that travel with them.
//!
//! Every read is a `recvmsg` with `MSG_CMSG_CLOEXEC`, so a received descriptor is never
//! inherited by anything we might start, and never asks for more bytes than the caller
//! wants: a descriptor that belongs to the peer's next request stays in the socket.

use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags};
use tokio::io::Interest;
use tokio::net::UnixStream;

/// Room for this many descriptors in one read. A well-behaved peer sends one; a few
/// more are received (and then refused by the decoder) so that "two descriptors" is
/// reported as such rather than as a truncated control message.
const FDS_PER_READ: usize = 4;

/// One completed read.
#[derive(Debug)]
pub(crate) struct Received {
    /// Bytes placed at the start of the caller's buffer (0: the peer closed).
    pub bytes: usize,
    /// Descriptors that came with them, already close-on-exec.
    pub fds: Vec<OwnedFd>,
    /// The kernel dropped part of the control message (too many descriptors, or a
    /// message kind we did not make room for). Whatever did arrive is in `fds`.
    pub control_truncated: bool,
}

/// Waits until the socket is readable, then reads at most `buf.len()` bytes.
pub(crate) async fn recv_with_fds(stream: &UnixStream, buf: &mut [u8]) -> io::Result<Received> {
    loop {
        stream.readable().await?;
        match stream.try_io(Interest::READABLE, || recv_once(stream.as_fd(), buf)) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Reads what is already in the socket without waiting and without consulting the
/// runtime's readiness flags (which may lag behind): `WouldBlock` means nothing is there.
pub(crate) fn recv_now(stream: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    loop {
        match recv_once(stream, buf) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn recv_once(stream: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_READ))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(buf)];
    let message = rustix::net::recvmsg(
        stream,
        &mut iov,
        &mut control,
        RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
    )
    .map_err(io::Error::from)?;

    let mut fds = Vec::new();
    for ancillary in control.drain() {
        // Only SCM_RIGHTS carries descriptors; credentials are not requested, and
        // dropping any other message kind closes nothing.
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
