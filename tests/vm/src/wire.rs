//! The helper socket protocol, client side, as small blocking functions
//! over a `UnixStream`: enough for the guest tools, independent of the
//! crates under test (a bug there must not hide in both ends).

use std::io::{self, IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};

pub const CDB_SIZE: usize = 16;
pub const SENSE_SIZE: usize = 96;
pub const MAX_TRANSFER: usize = 8192;
/// status (4) + size (4) + sense (96)
pub const REPLY_HEADER_SIZE: usize = 8 + SENSE_SIZE;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connecting")]
    Connect(#[source] io::Error),
    #[error("handshake")]
    Handshake(#[source] io::Error),
    #[error("sending the CDB")]
    SendCdb(#[source] io::Error),
    #[error("sent {0} of 16 CDB bytes")]
    ShortCdb(usize),
    #[error("sending the parameter list")]
    SendParameters(#[source] io::Error),
    #[error("reading the reply")]
    ReadReply(#[source] io::Error),
    #[error("reply announces {0} payload bytes")]
    BadSize(i32),
}

/// One complete reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The header as received: status, size, sense.
    pub header: [u8; REPLY_HEADER_SIZE],
    pub payload: Vec<u8>,
}

impl Reply {
    pub fn status(&self) -> u8 {
        self.header[3]
    }
}

/// Connects and negotiates no features (reads the helper's word, writes 0).
pub fn connect(path: &Path) -> Result<UnixStream, WireError> {
    let mut stream = UnixStream::connect(path).map_err(WireError::Connect)?;
    let mut supported = [0u8; 4];
    stream
        .read_exact(&mut supported)
        .map_err(WireError::Handshake)?;
    stream.write_all(&[0u8; 4]).map_err(WireError::Handshake)?;
    Ok(stream)
}

/// Sends the 16 CDB bytes with `fd` (if any) as SCM_RIGHTS, then the
/// parameter list.
pub fn send_request(
    stream: &mut UnixStream,
    cdb: &[u8; CDB_SIZE],
    fd: Option<BorrowedFd<'_>>,
    parameters: &[u8],
) -> Result<(), WireError> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds;
    if let Some(fd) = fd {
        fds = [fd];
        control.push(SendAncillaryMessage::ScmRights(&fds));
    }
    let sent = sendmsg(
        stream.as_fd(),
        &[IoSlice::new(cdb)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .map_err(|errno| WireError::SendCdb(errno.into()))?;
    if sent != CDB_SIZE {
        return Err(WireError::ShortCdb(sent));
    }
    if !parameters.is_empty() {
        stream
            .write_all(parameters)
            .map_err(WireError::SendParameters)?;
    }
    Ok(())
}

/// Reads one reply: the fixed header, then as many payload bytes as it
/// announces (at most 8192).
pub fn read_reply(stream: &mut UnixStream) -> Result<Reply, WireError> {
    let mut header = [0u8; REPLY_HEADER_SIZE];
    stream
        .read_exact(&mut header)
        .map_err(WireError::ReadReply)?;
    let size = i32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let length = usize::try_from(size)
        .ok()
        .filter(|length| *length <= MAX_TRANSFER)
        .ok_or(WireError::BadSize(size))?;
    let mut payload = vec![0u8; length];
    stream
        .read_exact(&mut payload)
        .map_err(WireError::ReadReply)?;
    Ok(Reply { header, payload })
}

/// PERSISTENT RESERVE IN, READ KEYS, with the given allocation length.
pub fn read_keys_cdb(allocation_length: u16) -> [u8; CDB_SIZE] {
    let mut cdb = [0u8; CDB_SIZE];
    cdb[0] = 0x5e;
    cdb[7..9].copy_from_slice(&allocation_length.to_be_bytes());
    cdb
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn request_and_reply_over_a_socket_pair() {
        let (mut client, mut server) = UnixStream::pair().unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        let cdb = read_keys_cdb(8);
        send_request(&mut client, &cdb, Some(file.as_fd()), &[1, 2]).unwrap();
        let mut received = [0u8; CDB_SIZE + 2];
        server.read_exact(&mut received).unwrap();
        assert_eq!(&received[..CDB_SIZE], &cdb);
        assert_eq!(&received[CDB_SIZE..], &[1, 2]);

        let mut reply = vec![0u8; REPLY_HEADER_SIZE + 3];
        reply[3] = 0x18;
        reply[7] = 3;
        reply[REPLY_HEADER_SIZE..].copy_from_slice(&[7, 8, 9]);
        server.write_all(&reply).unwrap();
        let parsed = read_reply(&mut client).unwrap();
        assert_eq!(parsed.status(), 0x18);
        assert_eq!(parsed.payload, vec![7, 8, 9]);
    }

    #[test]
    fn an_oversized_reply_is_an_error() {
        let (mut client, mut server) = UnixStream::pair().unwrap();
        let mut reply = vec![0u8; REPLY_HEADER_SIZE];
        reply[4..8].copy_from_slice(&8193i32.to_be_bytes());
        server.write_all(&reply).unwrap();
        assert!(matches!(
            read_reply(&mut client),
            Err(WireError::BadSize(8193))
        ));
    }

    #[test]
    fn a_closed_peer_is_an_error_not_a_panic() {
        let (mut client, server) = UnixStream::pair().unwrap();
        drop(server);
        assert!(matches!(
            read_reply(&mut client),
            Err(WireError::ReadReply(_))
        ));
    }
}
