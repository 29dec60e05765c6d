//! A raw protocol peer: sends exactly what a test asks for, descriptors included, and
//! reads responses byte by byte as QEMU's client would.

use std::io::{self, IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

/// Bounds every blocking read and write so a broken daemon fails a test instead of
/// hanging it. It measures nothing.
pub const IO_LIMIT: Duration = Duration::from_secs(60);

/// Bytes of a response before its payload.
const HEADER_LEN: usize = 4 + 4 + 96;
/// The protocol's largest payload.
const MAX_PAYLOAD: usize = 8192;

/// One response as it came off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireResponse {
    /// `result`: the SCSI status.
    pub status: i32,
    /// `sz`: the payload size.
    pub size: i32,
    /// The 96 sense bytes.
    pub sense: [u8; 96],
    /// The payload.
    pub data: Vec<u8>,
}

impl WireResponse {
    /// Sense key, ASC and ASCQ of fixed-format sense.
    pub fn sense_code(&self) -> (u8, u8, u8) {
        (self.sense[2] & 0x0f, self.sense[12], self.sense[13])
    }

    /// Whether this is CHECK CONDITION with the given key/ASC/ASCQ and no payload.
    pub fn is_check_condition(&self, key: u8, asc: u8, ascq: u8) -> bool {
        self.status == 2 && self.size == 0 && self.sense_code() == (key, asc, ascq)
    }
}

/// A client connection that follows the protocol only as far as the test wants.
#[derive(Debug)]
pub struct RawClient {
    stream: UnixStream,
}

impl RawClient {
    /// Connects to `path`; nothing is read or written yet.
    pub fn connect(path: &Path) -> io::Result<Self> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(IO_LIMIT))?;
        stream.set_write_timeout(Some(IO_LIMIT))?;
        Ok(Self { stream })
    }

    /// Wraps a connected socket (a clone of another client's, say) with the same
    /// read and write limits.
    pub fn from_stream(stream: UnixStream) -> io::Result<Self> {
        stream.set_read_timeout(Some(IO_LIMIT))?;
        stream.set_write_timeout(Some(IO_LIMIT))?;
        Ok(Self { stream })
    }

    /// The underlying socket.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Reads the server's supported-features word.
    pub fn read_features(&mut self) -> io::Result<u32> {
        let mut word = [0u8; 4];
        self.stream.read_exact(&mut word)?;
        Ok(u32::from_be_bytes(word))
    }

    /// Writes a requested-features word.
    pub fn send_features(&mut self, requested: u32) -> io::Result<()> {
        self.stream.write_all(&requested.to_be_bytes())
    }

    /// The normal handshake: reads the server's word, requests nothing. Returns the
    /// server's word.
    pub fn handshake(&mut self) -> io::Result<u32> {
        let supported = self.read_features()?;
        self.send_features(0)?;
        Ok(supported)
    }

    /// Writes `bytes` without descriptors.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Writes `bytes` with `fds` attached (SCM_RIGHTS) to the first byte(s). `bytes`
    /// must not be empty: a stream socket carries descriptors only with data.
    pub fn send_with_fds(&mut self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        if fds.is_empty() {
            return self.send(bytes);
        }
        let mut space =
            vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(io::Error::other(
                "control buffer too small for the descriptors",
            ));
        }
        let sent = rustix::net::sendmsg(
            &self.stream,
            &[IoSlice::new(bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        )
        .map_err(io::Error::from)?;
        let rest = bytes.get(sent..).unwrap_or_default();
        self.stream.write_all(rest)
    }

    /// Sends one well-formed request: the CDB with `fd`, then the parameter list.
    pub fn send_request(
        &mut self,
        cdb: &[u8; 16],
        fd: BorrowedFd<'_>,
        data_out: &[u8],
    ) -> io::Result<()> {
        self.send_with_fds(cdb, &[fd])?;
        self.send(data_out)
    }

    /// Reads one complete response.
    pub fn read_response(&mut self) -> io::Result<WireResponse> {
        let mut header = [0u8; HEADER_LEN];
        self.stream.read_exact(&mut header)?;
        let status = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let size = i32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let mut sense = [0u8; 96];
        sense.copy_from_slice(&header[8..]);
        let len = usize::try_from(size)
            .ok()
            .filter(|&len| len <= MAX_PAYLOAD)
            .ok_or_else(|| io::Error::other(format!("response size {size} out of range")))?;
        let mut data = vec![0u8; len];
        self.stream.read_exact(&mut data)?;
        Ok(WireResponse {
            status,
            size,
            sense,
            data,
        })
    }

    /// Sends a request and reads its response.
    pub fn call(
        &mut self,
        cdb: &[u8; 16],
        fd: BorrowedFd<'_>,
        data_out: &[u8],
    ) -> io::Result<WireResponse> {
        self.send_request(cdb, fd, data_out)?;
        self.read_response()
    }

    /// Half-closes the connection (no more bytes from us).
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.stream.shutdown(std::net::Shutdown::Write)
    }

    /// Waits for the server to close the connection. Fails if it sends anything instead,
    /// or if nothing happens within [`IO_LIMIT`].
    pub fn expect_closed(&mut self) -> io::Result<()> {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => Ok(()),
            Ok(_) => Err(io::Error::other(
                "expected the server to close, it sent data",
            )),
            Err(error) if error.kind() == io::ErrorKind::ConnectionReset => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Waits for the server to close the connection after reading zero or more
    /// responses' worth of bytes; returns how many bytes came before the close.
    pub fn drain_until_closed(&mut self) -> io::Result<usize> {
        let mut total = 0usize;
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(total),
                Ok(n) => total = total.saturating_add(n),
                Err(error) if error.kind() == io::ErrorKind::ConnectionReset => return Ok(total),
                Err(error) => return Err(error),
            }
        }
    }
}
