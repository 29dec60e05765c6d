//! One blocking connection to the helper: connect and negotiate, send a
//! request with its descriptor, read the reply.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustix::net::{
    RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, Shutdown, recv, send, sendmsg,
};

use crate::error::{ConnectError, ProtocolError, TransportError};
use pr_protocol::{ResponseDecoder, ResponseProgress, SENSE_SIZE, client_handshake};
use scsi::status::Status;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Status, sense and payload length of one reply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplyHeader {
    pub(crate) status: Status,
    pub(crate) sense: [u8; SENSE_SIZE],
    pub(crate) data_len: usize,
}

/// A negotiated connection. Shared (`Arc`) between the pool and the idle
/// watcher; only one command uses it at a time.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: u64,
    stream: UnixStream,
}

impl Conn {
    /// Connects to `path` and performs the client side of the handshake.
    pub(crate) fn connect(
        path: &Path,
        requested_features: u32,
        io_timeout: Option<Duration>,
    ) -> Result<Self, ConnectError> {
        let stream = UnixStream::connect(path).map_err(ConnectError::Socket)?;
        stream
            .set_read_timeout(io_timeout)
            .and_then(|()| stream.set_write_timeout(io_timeout))
            .map_err(ConnectError::Socket)?;
        let conn = Self {
            id: next_id(),
            stream,
        };
        let mut supported = [0u8; pr_protocol::HANDSHAKE_SIZE];
        conn.read_full(&mut supported)
            .map_err(ConnectError::ReadFeatures)?;
        let negotiation = client_handshake(supported, requested_features);
        conn.write_all(&negotiation.reply, None)
            .map_err(ConnectError::WriteFeatures)?;
        Ok(conn)
    }

    /// Sends the encoded request; the descriptor travels with its first bytes.
    pub(crate) fn send_request(&self, bytes: &[u8], fd: BorrowedFd<'_>) -> io::Result<()> {
        self.write_all(bytes, Some(fd))
    }

    /// Reads the reply to the request whose (sent) CDB is `cdb`, copying
    /// its payload into the start of `data_in`.
    pub(crate) fn read_reply(
        &self,
        cdb: &[u8; pr_protocol::CDB_SIZE],
        data_in: &mut [u8],
    ) -> Result<ReplyHeader, crate::Error> {
        let mut reader = ReplyReader::new(cdb);
        let mut chunk = [0u8; CHUNK];
        loop {
            let buf = reader.next_buffer(&mut chunk);
            let n = match recv(&self.stream, &mut *buf, RecvFlags::empty()) {
                Ok((n, _)) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(TransportError::Receive(e.into()).into()),
            };
            if let Some(header) = reader.received(&chunk, n, data_in)? {
                return Ok(header);
            }
        }
    }

    /// Closes both directions now, even while the watcher holds a reference.
    pub(crate) fn shut_down(&self) {
        // Failure means it is already shut or closed: nothing left to do.
        let _ = rustix::net::shutdown(&self.stream, Shutdown::Both);
    }

    /// See [`idle_alive`].
    pub(crate) fn idle_check_alive(&self) -> bool {
        idle_alive(self.stream.as_fd())
    }

    fn read_full(&self, buf: &mut [u8]) -> io::Result<()> {
        let mut received = 0usize;
        while let Some(rest) = buf.get_mut(received..) {
            if rest.is_empty() {
                break;
            }
            match recv(&self.stream, rest, RecvFlags::empty()) {
                Ok((0, _)) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok((n, _)) => received = received.saturating_add(n),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Writes everything; `MSG_NOSIGNAL` so a closed peer is EPIPE, never
    /// SIGPIPE in the embedding process.
    fn write_all(&self, bytes: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
        let mut sent = 0usize;
        let mut fd = fd;
        while let Some(rest) = bytes.get(sent..) {
            if rest.is_empty() {
                break;
            }
            let result = match fd {
                Some(fd) => send_with_fd(&self.stream, rest, fd),
                None => send(&self.stream, rest, SendFlags::NOSIGNAL),
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    sent = sent.saturating_add(n);
                    // The descriptor went with the first chunk.
                    fd = None;
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

/// After the watcher saw an idle connection close: is the helper still
/// there (it closed only that connection) or gone? One connect and
/// handshake, bounded in time, then closed again.
pub(crate) fn probe(path: &Path, requested_features: u32) -> Result<(), ConnectError> {
    Conn::connect(path, requested_features, Some(PROBE_TIMEOUT)).map(drop)
}

/// Bounds a probe of a helper that accepts but never greets.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Room for the largest reply: header and payload.
pub(crate) const CHUNK: usize = pr_protocol::RESPONSE_HEADER_SIZE + pr_protocol::MAX_TRANSFER;

/// Drives `pr-protocol`'s response decoder from whatever reads the socket
/// (the blocking and the async front end share it).
#[derive(Debug)]
pub(crate) struct ReplyReader {
    decoder: ResponseDecoder,
}

impl ReplyReader {
    pub(crate) fn new(cdb: &[u8; pr_protocol::CDB_SIZE]) -> Self {
        Self {
            decoder: ResponseDecoder::new(cdb),
        }
    }

    /// The part of `chunk` the next read should fill.
    pub(crate) fn next_buffer<'c>(&self, chunk: &'c mut [u8; CHUNK]) -> &'c mut [u8] {
        let wanted = self.decoder.bytes_wanted().clamp(1, CHUNK);
        let (head, _) = chunk.split_at_mut(wanted);
        head
    }

    /// Accounts for `n` bytes read into the start of `chunk` (0: end of
    /// stream); the reply once complete, with its payload in `data_in`.
    pub(crate) fn received(
        &mut self,
        chunk: &[u8; CHUNK],
        n: usize,
        data_in: &mut [u8],
    ) -> Result<Option<ReplyHeader>, crate::Error> {
        if n == 0 {
            let (received, expected) = match self.decoder.end_of_stream() {
                Err(pr_protocol::ResponseError::Truncated {
                    received, expected, ..
                }) => (received, expected),
                _ => (0, 0),
            };
            return Err(ProtocolError::PeerClosed { received, expected }.into());
        }
        let fed = self
            .decoder
            .feed(chunk.get(..n).unwrap_or(&[]))
            .map_err(ProtocolError::MalformedReply)?;
        let ResponseProgress::Complete(response) = fed else {
            return Ok(None);
        };
        let data_len = response.data.len();
        // The decoder bounds the payload by the allocation length, which the
        // caller's buffer was checked to hold.
        let buffer = data_in.len();
        let dst = data_in
            .get_mut(..data_len)
            .ok_or(ProtocolError::PayloadTooLong {
                size: data_len,
                buffer,
            })?;
        dst.copy_from_slice(&response.data);
        Ok(Some(ReplyHeader {
            status: Status(response.status),
            sense: response.sense,
            data_len,
        }))
    }
}

/// What the idle watcher checks after `poll` flagged a socket: true when
/// the connection is still usable (nothing to read, no end of stream).
pub(crate) fn idle_alive(socket: BorrowedFd<'_>) -> bool {
    let mut byte = [0u8; 1];
    match recv(socket, &mut byte, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
        // Unsolicited bytes on an idle connection are as bad as EOF.
        Ok(_) => false,
        Err(e) => e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR,
    }
}

impl crate::watcher::IdleConn for Conn {
    fn id(&self) -> u64 {
        self.id
    }
}

/// A fresh connection identifier (for the watcher).
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// `sendmsg` with one descriptor as `SCM_RIGHTS`.
pub(crate) fn send_with_fd(
    socket: impl AsFd,
    bytes: &[u8],
    fd: BorrowedFd<'_>,
) -> rustix::io::Result<usize> {
    let fds = [fd];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        // The buffer is sized for exactly this message.
        return Err(rustix::io::Errno::NOBUFS);
    }
    sendmsg(
        socket,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
}
