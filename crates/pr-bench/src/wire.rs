//! One benchmark connection: handshake, one PR IN request with its
//! descriptor, the reply. Framing and checks come from `pr_protocol`'s
//! client codec, so a helper that answers out of protocol fails the run
//! instead of being timed.

use std::io::{self, IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use pr_protocol::{
    CDB_SIZE, HANDSHAKE_SIZE, MAX_TRANSFER, PERSISTENT_RESERVE_IN, RESPONSE_HEADER_SIZE,
    RequestEncodeError, ResponseError, STATUS_GOOD, client_handshake, encode_request,
};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};

/// PR IN service action READ KEYS.
pub const READ_KEYS: u8 = 0x00;

/// What failed while talking to a helper.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("cannot connect")]
    Connect(#[source] io::Error),
    #[error("cannot read the helper's feature word")]
    ReadFeatures(#[source] io::Error),
    #[error("cannot send the requested feature word")]
    WriteFeatures(#[source] io::Error),
    #[error("the request cannot be encoded")]
    Encode(#[source] RequestEncodeError),
    #[error("cannot send the CDB with its descriptor")]
    SendCdb(#[source] io::Error),
    #[error("cannot read the reply")]
    ReadReply(#[source] io::Error),
    #[error("the helper closed the connection instead of replying")]
    Closed(#[source] ResponseError),
    #[error("the reply breaks the protocol")]
    BadReply(#[source] ResponseError),
    #[error("the lean client sends PR IN requests only")]
    NotPrIn,
}

/// A PR IN CDB for `service_action` with allocation length `alloc_len`.
pub fn pr_in_cdb(service_action: u8, alloc_len: u16) -> [u8; CDB_SIZE] {
    let mut cdb = [0u8; CDB_SIZE];
    cdb[0] = PERSISTENT_RESERVE_IN;
    cdb[1] = service_action & 0x1f;
    cdb[7..9].copy_from_slice(&alloc_len.to_be_bytes());
    cdb
}

/// What the benchmark keeps of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    /// SCSI status.
    pub status: u8,
    /// Payload bytes received.
    pub size: usize,
    /// Sense key, ASC, ASCQ from fixed-format sense (zeros otherwise).
    pub sense: [u8; 3],
}

/// Sense key, ASC and ASCQ of fixed-format sense (0x70/0x71); zeros for
/// anything else.
pub fn sense_code(sense: &[u8]) -> [u8; 3] {
    match (sense.first(), sense.get(2), sense.get(12), sense.get(13)) {
        (Some(code), Some(key), Some(asc), Some(ascq)) if matches!(code & 0x7f, 0x70 | 0x71) => {
            [key & 0x0f, *asc, *ascq]
        }
        _ => [0; 3],
    }
}

/// One negotiated connection to a helper.
#[derive(Debug)]
pub struct Connection {
    stream: UnixStream,
    buffer: Vec<u8>,
}

impl Connection {
    /// Connects and negotiates (requests no features).
    pub fn open(socket: &Path) -> Result<Self, WireError> {
        let mut stream = UnixStream::connect(socket).map_err(WireError::Connect)?;
        let mut greeting = [0u8; HANDSHAKE_SIZE];
        stream
            .read_exact(&mut greeting)
            .map_err(WireError::ReadFeatures)?;
        let negotiation = client_handshake(greeting, 0);
        stream
            .write_all(&negotiation.reply)
            .map_err(WireError::WriteFeatures)?;
        Ok(Self {
            stream,
            buffer: vec![0; RESPONSE_HEADER_SIZE + MAX_TRANSFER],
        })
    }

    /// Bounds each wait for a reply (`None`: no bound).
    pub fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)
    }

    /// Wraps a stream whose handshake is already done.
    #[cfg(test)]
    pub(crate) fn from_negotiated(stream: UnixStream) -> Self {
        Self {
            stream,
            buffer: vec![0; RESPONSE_HEADER_SIZE + MAX_TRANSFER],
        }
    }

    /// Sends `cdb` (PR IN) with `fd` and reads the whole reply through
    /// `pr_protocol`'s client decoder (the reference the lean path is tested
    /// against).
    #[cfg(test)]
    pub fn call(
        &mut self,
        cdb: &[u8; CDB_SIZE],
        fd: BorrowedFd<'_>,
    ) -> Result<ReplyHeader, WireError> {
        use pr_protocol::{ResponseDecoder, ResponseProgress};
        let mut request = Vec::with_capacity(CDB_SIZE);
        encode_request(cdb, &[], &mut request).map_err(WireError::Encode)?;
        send_with_fd(&self.stream, &request, fd).map_err(WireError::SendCdb)?;
        let mut decoder = ResponseDecoder::new(cdb);
        loop {
            let wanted = decoder.bytes_wanted().min(self.buffer.len());
            let chunk = self.buffer.get_mut(..wanted).unwrap_or_default();
            let read = self.stream.read(chunk).map_err(WireError::ReadReply)?;
            if read == 0 {
                return Err(decoder.end_of_stream().err().map_or(
                    WireError::ReadReply(io::ErrorKind::UnexpectedEof.into()),
                    WireError::Closed,
                ));
            }
            let bytes = self.buffer.get(..read).unwrap_or_default();
            match decoder.feed(bytes).map_err(WireError::BadReply)? {
                ResponseProgress::NeedMore => continue,
                ResponseProgress::Complete(response) => {
                    return Ok(ReplyHeader {
                        status: response.status,
                        size: response.data.len(),
                        sense: sense_code(&response.sense),
                    });
                }
            }
        }
    }
}

/// The lean client path: one PR IN request, encoded once, sent again and again
/// with a descriptor, and its replies read into a fixed buffer. Nothing is
/// allocated or formatted per request; the reply is checked against the same
/// rules as `pr_protocol::ResponseDecoder`'s (status byte, size within the allocation
/// length and the protocol's limit, a payload only with GOOD).
#[derive(Debug)]
pub struct LeanRequest {
    cdb: [u8; CDB_SIZE],
    allocation: usize,
}

impl LeanRequest {
    /// A request for `cdb`, which must be a PR IN (no parameter list to send).
    pub fn new(cdb: &[u8; CDB_SIZE]) -> Result<Self, WireError> {
        let mut encoded = Vec::with_capacity(CDB_SIZE);
        encode_request(cdb, &[], &mut encoded).map_err(WireError::Encode)?;
        if cdb[0] != PERSISTENT_RESERVE_IN || encoded.len() != CDB_SIZE {
            return Err(WireError::NotPrIn);
        }
        Ok(Self {
            cdb: *cdb,
            allocation: usize::from(u16::from_be_bytes([cdb[7], cdb[8]])),
        })
    }
}

impl Connection {
    /// [`Connection::call`] without allocating: sends `request` with `fd`, reads
    /// the reply into the connection's buffer, returns its status, size and sense.
    pub fn call_lean(
        &mut self,
        request: &LeanRequest,
        fd: BorrowedFd<'_>,
    ) -> Result<ReplyHeader, WireError> {
        send_with_fd(&self.stream, &request.cdb, fd).map_err(WireError::SendCdb)?;
        let header = self
            .buffer
            .get_mut(..RESPONSE_HEADER_SIZE)
            .unwrap_or_default();
        read_full(&mut self.stream, header, "header")?;
        let reply = check_header(header, request.allocation)?;
        if reply.size > 0 {
            let payload = self.buffer.get_mut(..reply.size).unwrap_or_default();
            read_full(&mut self.stream, payload, "payload")?;
        }
        Ok(reply)
    }
}

/// Fills `buffer` from `stream`; an end of stream first is [`WireError::Closed`].
fn read_full(
    stream: &mut UnixStream,
    buffer: &mut [u8],
    stage: &'static str,
) -> Result<(), WireError> {
    let mut filled = 0;
    while filled < buffer.len() {
        let rest = buffer.get_mut(filled..).unwrap_or_default();
        match stream.read(rest) {
            Ok(0) => {
                return Err(WireError::Closed(ResponseError::Truncated {
                    stage,
                    received: filled,
                    expected: buffer.len(),
                }));
            }
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(WireError::ReadReply(error)),
        }
    }
    Ok(())
}

/// The checks of `pr_protocol::ResponseDecoder` on a PR IN reply's 104-byte header.
fn check_header(header: &[u8], allocation: usize) -> Result<ReplyHeader, WireError> {
    let word = |at: usize| {
        header
            .get(at..at + 4)
            .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
            .map_or(0, i32::from_be_bytes)
    };
    let (result, size) = (word(0), word(4));
    let status = u8::try_from(result)
        .map_err(|_| WireError::BadReply(ResponseError::StatusOutOfRange { result }))?;
    let len = usize::try_from(size)
        .map_err(|_| WireError::BadReply(ResponseError::NegativeSize { size }))?;
    if len > MAX_TRANSFER {
        return Err(WireError::BadReply(ResponseError::SizeAboveLimit { size }));
    }
    if len > 0 && status != STATUS_GOOD {
        return Err(WireError::BadReply(ResponseError::PayloadWithoutGood {
            size,
            status,
        }));
    }
    if len > allocation {
        return Err(WireError::BadReply(ResponseError::SizeAboveAllocation {
            size,
            allocation: u16::try_from(allocation).unwrap_or(u16::MAX),
        }));
    }
    Ok(ReplyHeader {
        status,
        size: len,
        sense: sense_code(header.get(8..).unwrap_or_default()),
    })
}

/// Sends `bytes` with `fd` attached to the first chunk; the rest, if the
/// kernel took only part, goes without it.
pub(crate) fn send_with_fd(
    stream: &UnixStream,
    bytes: &[u8],
    fd: BorrowedFd<'_>,
) -> io::Result<()> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("control buffer too small"));
    }
    let sent = sendmsg(
        stream.as_fd(),
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    let rest = bytes.get(sent..).unwrap_or_default();
    (&*stream).write_all(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_keys_cdb_carries_length_in_bytes_7_and_8() {
        let cdb = pr_in_cdb(READ_KEYS, 0x1234);
        assert_eq!(cdb[0], 0x5E);
        assert_eq!(cdb[1], 0);
        assert_eq!(&cdb[7..9], &[0x12, 0x34]);
        assert!(cdb[2..7].iter().chain(&cdb[9..]).all(|b| *b == 0));
    }

    #[test]
    fn fixed_sense_gives_key_asc_ascq() {
        let mut sense = [0u8; 96];
        sense[0] = 0x70;
        sense[2] = 0x0B;
        sense[13] = 0x06;
        assert_eq!(sense_code(&sense), [0x0B, 0x00, 0x06]);
        assert_eq!(sense_code(&[0u8; 96]), [0; 3]);
        assert_eq!(sense_code(&[0x70]), [0; 3]);
    }

    /// A fake helper on a socket pair: greets, checks the request and the
    /// descriptor, answers CHECK CONDITION 0B/00/06, then a bad reply.
    #[test]
    fn call_reads_a_reply_and_refuses_a_malformed_one() {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
        let (client, mut server) = UnixStream::pair().unwrap();
        let helper = std::thread::spawn(move || {
            server.write_all(&0u32.to_be_bytes()).unwrap();
            let mut features = [0u8; 4];
            server.read_exact(&mut features).unwrap();
            let mut cdb = [0u8; CDB_SIZE];
            let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let got = recvmsg(
                &server,
                &mut [io::IoSliceMut::new(&mut cdb)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )
            .unwrap();
            let fds: usize = control
                .drain()
                .map(|msg| match msg {
                    RecvAncillaryMessage::ScmRights(fds) => fds.count(),
                    _ => 0,
                })
                .sum();
            assert_eq!((got.bytes, fds), (CDB_SIZE, 1));
            let mut reply = [0u8; RESPONSE_HEADER_SIZE];
            reply[3] = 2;
            reply[8] = 0x70;
            reply[10] = 0x0B;
            reply[21] = 0x06;
            server.write_all(&reply).unwrap();
            // Second request: a payload with CHECK CONDITION is out of protocol.
            server.read_exact(&mut cdb).unwrap();
            reply[7] = 8;
            server.write_all(&reply).unwrap();
            server.write_all(&[0u8; 8]).unwrap();
        });
        let mut connection = Connection {
            stream: client,
            buffer: vec![0; RESPONSE_HEADER_SIZE + MAX_TRANSFER],
        };
        let mut greeting = [0u8; 4];
        connection.stream.read_exact(&mut greeting).unwrap();
        connection
            .stream
            .write_all(&client_handshake(greeting, 0).reply)
            .unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        let cdb = pr_in_cdb(READ_KEYS, 8);
        let reply = connection.call(&cdb, null.as_fd()).unwrap();
        assert_eq!(
            reply,
            ReplyHeader {
                status: 2,
                size: 0,
                sense: [0x0B, 0x00, 0x06]
            }
        );
        assert!(matches!(
            connection.call(&cdb, null.as_fd()),
            Err(WireError::BadReply(_))
        ));
        helper.join().unwrap();
    }

    /// The lean path reads the same replies and refuses the same bad ones, and
    /// takes PR IN only.
    #[test]
    fn lean_call_reads_replies_and_refuses_malformed_ones() {
        let (client, mut server) = UnixStream::pair().unwrap();
        let helper = std::thread::spawn(move || {
            let mut cdb = [0u8; CDB_SIZE];
            let mut reply = [0u8; RESPONSE_HEADER_SIZE];
            // CHECK CONDITION 05/24/00.
            server.read_exact(&mut cdb).unwrap();
            reply[3] = 2;
            reply[8] = 0x70;
            reply[10] = 0x05;
            reply[20] = 0x24;
            server.write_all(&reply).unwrap();
            // GOOD with 8 bytes of payload, written in two pieces.
            server.read_exact(&mut cdb).unwrap();
            let mut good = [0u8; RESPONSE_HEADER_SIZE];
            good[7] = 8;
            server.write_all(&good[..50]).unwrap();
            server.write_all(&good[50..]).unwrap();
            server.write_all(&[7u8; 8]).unwrap();
            // More payload than the allocation length (16): out of protocol.
            server.read_exact(&mut cdb).unwrap();
            good[7] = 32;
            server.write_all(&good).unwrap();
        });
        let mut connection = Connection::from_negotiated(client);
        let null = std::fs::File::open("/dev/null").unwrap();
        let request = LeanRequest::new(&pr_in_cdb(READ_KEYS, 16)).unwrap();
        let reply = connection.call_lean(&request, null.as_fd()).unwrap();
        assert_eq!(
            (reply.status, reply.size, reply.sense),
            (2, 0, [5, 0x24, 0])
        );
        let reply = connection.call_lean(&request, null.as_fd()).unwrap();
        assert_eq!((reply.status, reply.size), (0, 8));
        assert!(matches!(
            connection.call_lean(&request, null.as_fd()),
            Err(WireError::BadReply(
                ResponseError::SizeAboveAllocation { .. }
            ))
        ));
        helper.join().unwrap();
        // The helper is gone: an end of stream, not a reply.
        assert!(matches!(
            connection.call_lean(&request, null.as_fd()),
            Err(WireError::Closed(_) | WireError::SendCdb(_))
        ));
        let mut pr_out = pr_in_cdb(READ_KEYS, 0);
        pr_out[0] = pr_protocol::PERSISTENT_RESERVE_OUT;
        assert!(matches!(LeanRequest::new(&pr_out), Err(WireError::NotPrIn)));
    }
}
