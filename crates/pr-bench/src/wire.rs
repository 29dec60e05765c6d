//! The client half of the helper socket protocol, just what the benchmark
//! needs: handshake, one PR IN request with its descriptor, the reply.
//! Layout (all big-endian): helper sends u32 features, client answers u32;
//! request = 16-byte CDB with one descriptor as SCM_RIGHTS; reply = i32
//! status, i32 payload size, 96 bytes of sense, then the payload.

use std::io::{self, IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};

/// Bytes of a CDB on the wire.
pub const CDB_SIZE: usize = 16;
/// Bytes of sense data in every reply.
pub const SENSE_SIZE: usize = 96;
/// Status + size + sense.
pub const REPLY_HEADER_SIZE: usize = 8 + SENSE_SIZE;
/// Largest transfer either side accepts.
pub const MAX_TRANSFER: u16 = 8192;
/// PERSISTENT RESERVE IN.
pub const PR_IN: u8 = 0x5E;
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
    #[error("cannot send the CDB with its descriptor")]
    SendCdb(#[source] io::Error),
    #[error("cannot read the reply header")]
    ReadHeader(#[source] io::Error),
    #[error("reply announces an impossible payload size {0}")]
    BadSize(i32),
    #[error("cannot read the reply payload")]
    ReadPayload(#[source] io::Error),
}

/// A PR IN CDB for `service_action` with allocation length `alloc_len`.
pub fn pr_in_cdb(service_action: u8, alloc_len: u16) -> [u8; CDB_SIZE] {
    let mut cdb = [0u8; CDB_SIZE];
    cdb[0] = PR_IN;
    cdb[1] = service_action & 0x1f;
    cdb[7..9].copy_from_slice(&alloc_len.to_be_bytes());
    cdb
}

/// The decoded fixed part of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    /// SCSI status.
    pub status: i32,
    /// Payload bytes that follow.
    pub size: usize,
    /// Sense key, ASC, ASCQ from fixed-format sense (zeros otherwise).
    pub sense: [u8; 3],
}

/// One negotiated connection to a helper.
#[derive(Debug)]
pub struct Connection {
    stream: UnixStream,
    payload: Vec<u8>,
}

impl Connection {
    /// Connects and negotiates (requests no features).
    pub fn open(socket: &Path) -> Result<Self, WireError> {
        let mut stream = UnixStream::connect(socket).map_err(WireError::Connect)?;
        let mut features = [0u8; 4];
        stream
            .read_exact(&mut features)
            .map_err(WireError::ReadFeatures)?;
        stream
            .write_all(&0u32.to_be_bytes())
            .map_err(WireError::WriteFeatures)?;
        Ok(Self {
            stream,
            payload: vec![0; usize::from(MAX_TRANSFER)],
        })
    }

    /// Sends `cdb` with `fd` and reads the whole reply; returns its header.
    pub fn call(
        &mut self,
        cdb: &[u8; CDB_SIZE],
        fd: BorrowedFd<'_>,
    ) -> Result<ReplyHeader, WireError> {
        send_with_fd(&self.stream, cdb, fd).map_err(WireError::SendCdb)?;
        let mut header = [0u8; REPLY_HEADER_SIZE];
        self.stream
            .read_exact(&mut header)
            .map_err(WireError::ReadHeader)?;
        let reply = parse_header(&header)?;
        let payload = self
            .payload
            .get_mut(..reply.size)
            .ok_or(WireError::BadSize(
                i32::try_from(reply.size).unwrap_or(i32::MAX),
            ))?;
        self.stream
            .read_exact(payload)
            .map_err(WireError::ReadPayload)?;
        Ok(reply)
    }
}

fn parse_header(header: &[u8; REPLY_HEADER_SIZE]) -> Result<ReplyHeader, WireError> {
    let status = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let raw_size = i32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let size = usize::try_from(raw_size)
        .ok()
        .filter(|size| *size <= usize::from(MAX_TRANSFER))
        .ok_or(WireError::BadSize(raw_size))?;
    let sense = &header[8..];
    // Fixed format (0x70/0x71): key in byte 2, ASC/ASCQ in bytes 12/13.
    let sense = if matches!(sense[0] & 0x7f, 0x70 | 0x71) {
        [sense[2] & 0x0f, sense[12], sense[13]]
    } else {
        [0; 3]
    };
    Ok(ReplyHeader {
        status,
        size,
        sense,
    })
}

/// Sends `bytes` with `fd` attached to the first chunk; the rest, if the
/// kernel took only part, goes without it.
fn send_with_fd(stream: &UnixStream, bytes: &[u8], fd: BorrowedFd<'_>) -> io::Result<()> {
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
    fn header_decodes_status_size_and_fixed_sense() {
        let mut header = [0u8; REPLY_HEADER_SIZE];
        header[3] = 2;
        header[8] = 0x70;
        header[10] = 0x0B;
        header[21] = 0x06;
        let reply = parse_header(&header).unwrap();
        assert_eq!(
            reply,
            ReplyHeader {
                status: 2,
                size: 0,
                sense: [0x0B, 0x00, 0x06]
            }
        );
    }

    #[test]
    fn header_refuses_negative_and_oversized_payloads() {
        let mut header = [0u8; REPLY_HEADER_SIZE];
        header[4..8].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(matches!(parse_header(&header), Err(WireError::BadSize(-1))));
        header[4..8].copy_from_slice(&8193i32.to_be_bytes());
        assert!(matches!(
            parse_header(&header),
            Err(WireError::BadSize(8193))
        ));
    }

    #[test]
    fn descriptor_and_cdb_arrive_together() {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
        let (a, b) = UnixStream::pair().unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        let cdb = pr_in_cdb(READ_KEYS, 8);
        send_with_fd(&a, &cdb, file.as_fd()).unwrap();
        let mut buf = [0u8; CDB_SIZE];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = recvmsg(
            &b,
            &mut [io::IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )
        .unwrap();
        assert_eq!(got.bytes, CDB_SIZE);
        assert_eq!(buf, cdb);
        let fds: Vec<_> = control
            .drain()
            .filter_map(|msg| match msg {
                RecvAncillaryMessage::ScmRights(fds) => Some(fds.count()),
                _ => None,
            })
            .collect();
        assert_eq!(fds, vec![1]);
    }
}
