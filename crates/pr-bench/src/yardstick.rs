//! The yardstick: the least server the helper protocol allows, to measure
//! daemons against.
//!
//! One thread per connection, blocking calls only: write the feature word,
//! read the client's, then per request `recvmsg` the CDB with its
//! descriptor (and the PR OUT parameter list, if any), one `SG_IO` on the
//! descriptor on the same thread, the 104-byte reply (+ payload), close the
//! descriptor. No connection cap, no deadlines, no descriptor
//! classification, no privilege drop: it is a measuring stick, never a
//! helper to deploy.
//!
//! The protocol rules come from `pr_protocol`'s decoders and the outcome
//! mapping from `scsi::sgio`, so its replies are the bytes the real helpers
//! send; with a loop device (SG_IO refused with EINVAL) they are those of
//! Debian's `qemu-pr-helper`: CHECK CONDITION 05/24/00.

use std::io::{self, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use pr_protocol::{
    Decoded, Direction, HandshakeDecoder, MAX_TRANSFER, Negotiation, Request, RequestDecoder,
    Response, STATUS_GOOD, Violation,
};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, recvmsg};
use scsi::sense::Sense;

/// Stack of a connection thread: enough for the calls it makes (the data
/// buffers are on the heap), small so an idle connection costs little.
const CONNECTION_STACK: usize = 128 * 1024;

/// Pause after `accept` fails (a full descriptor table is transient; a
/// busy loop would make it worse).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Descriptors one `recvmsg` makes room for: the one a request may carry,
/// plus a few so that a peer sending too many is seen (and refused by the
/// decoder) rather than cut off by the kernel.
const DESCRIPTOR_ROOM: usize = 4;

/// How the yardstick is run.
#[derive(Debug, Clone)]
pub struct YardstickConfig {
    /// The socket to listen on (must not exist yet).
    pub socket: PathBuf,
    /// Timeout of each `SG_IO`.
    pub sg_io_timeout: Duration,
    /// One `fstat` of each request's descriptor before its `SG_IO`.
    pub identity_check: bool,
}

/// How each request is executed.
#[derive(Debug, Clone, Copy)]
struct Execution {
    timeout: Duration,
    identity_check: bool,
}

/// Why the yardstick could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum YardstickError {
    #[error("cannot listen on {0}")]
    Bind(PathBuf, #[source] io::Error),
}

/// Why one connection ended before the peer closed it between requests.
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("cannot write the feature word")]
    WriteGreeting(#[source] io::Error),
    #[error("cannot receive from the peer")]
    Receive(#[source] io::Error),
    #[error("the peer sent more descriptors than fit (control data truncated)")]
    ControlTruncated,
    #[error("protocol violation: {0}")]
    Violation(#[source] Violation),
    #[error("a reply could not be encoded")]
    Encode(#[source] pr_protocol::ResponseEncodeError),
    #[error("cannot write the reply")]
    WriteReply(#[source] io::Error),
}

/// Binds `config.socket` and serves every connection on a thread of its
/// own until the process is killed.
pub fn serve(config: &YardstickConfig) -> Result<(), YardstickError> {
    let listener = UnixListener::bind(&config.socket)
        .map_err(|error| YardstickError::Bind(config.socket.clone(), error))?;
    log(format_args!("listening on {}", config.socket.display()));
    serve_listener(
        &listener,
        Execution {
            timeout: config.sg_io_timeout,
            identity_check: config.identity_check,
        },
    );
    Ok(())
}

/// Accepts forever; each connection gets a thread of its own.
fn serve_listener(listener: &UnixListener, execution: Execution) {
    let mut accept_failing = false;
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => {
                accept_failing = false;
                stream
            }
            Err(error) => {
                // One line per run of failures, not one per retry.
                if !accept_failing {
                    log(format_args!("accept failed, backing off: {error}"));
                }
                accept_failing = true;
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        let spawned = thread::Builder::new()
            .name("yardstick-conn".to_owned())
            .stack_size(CONNECTION_STACK)
            .spawn(move || {
                if let Err(error) = serve_connection(&stream, execution) {
                    log(format_args!(
                        "connection closed: {}",
                        crate::report::error_chain(&error)
                    ));
                }
            });
        if let Err(error) = spawned {
            // The stream moved into the closure that was never run and is
            // dropped (closed) with it.
            log(format_args!(
                "cannot start a connection thread, closed it: {error}"
            ));
        }
    }
}

/// One line on standard error. A failed write is ignored (the reader may
/// be gone): logging must never stop the serving.
fn log(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "pr-bench yardstick: {message}");
}

/// Handshake, then requests until the peer closes between two of them.
fn serve_connection(stream: &UnixStream, execution: Execution) -> Result<(), ConnectionError> {
    // Grown on demand, so that an idle connection holds no buffers.
    let mut buffer = Vec::new();
    let mut handshake = HandshakeDecoder::default();
    (&*stream)
        .write_all(&handshake.greeting())
        .map_err(ConnectionError::WriteGreeting)?;
    loop {
        let wanted = handshake.bytes_wanted();
        let (bytes, fds) = receive(stream, room(&mut buffer, wanted))?;
        if bytes.is_empty() {
            return handshake
                .end_of_stream()
                .map_err(ConnectionError::Violation);
        }
        match handshake
            .feed(bytes, fds)
            .map_err(ConnectionError::Violation)?
        {
            Negotiation::NeedMore => continue,
            Negotiation::Done { .. } => break,
        }
    }

    let mut decoder = RequestDecoder::<OwnedFd>::new();
    let mut reply = Vec::new();
    loop {
        let wanted = decoder.bytes_wanted();
        let (bytes, fds) = receive(stream, room(&mut buffer, wanted))?;
        if bytes.is_empty() {
            return decoder.end_of_stream().map_err(ConnectionError::Violation);
        }
        let request = match decoder
            .feed(bytes, fds)
            .map_err(ConnectionError::Violation)?
        {
            Decoded::NeedMore => continue,
            Decoded::Request(request) => request,
        };
        let response = execute(&request, execution);
        reply.clear();
        response
            .encode(&request.cdb, &mut reply)
            .map_err(ConnectionError::Encode)?;
        (&*stream)
            .write_all(&reply)
            .map_err(ConnectionError::WriteReply)?;
        // `request` (and the descriptor it owns) is dropped here: closed
        // after its reply, as the protocol says.
    }
}

/// The first `wanted` bytes of `buffer` (at most the protocol's largest
/// transfer), growing it if needed.
fn room(buffer: &mut Vec<u8>, wanted: usize) -> &mut [u8] {
    let wanted = wanted.min(MAX_TRANSFER);
    if buffer.len() < wanted {
        buffer.resize(wanted, 0);
    }
    buffer.get_mut(..wanted).unwrap_or_default()
}

/// One `recvmsg` of at most `buffer.len()` bytes with any descriptors,
/// close-on-exec. The bytes received are returned as a prefix of `buffer`.
fn receive<'b>(
    stream: &UnixStream,
    buffer: &'b mut [u8],
) -> Result<(&'b [u8], Vec<OwnedFd>), ConnectionError> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(DESCRIPTOR_ROOM))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = loop {
        match recvmsg(
            stream.as_fd(),
            &mut [IoSliceMut::new(buffer)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(received) => break received,
            Err(rustix::io::Errno::INTR) => continue,
            Err(errno) => return Err(ConnectionError::Receive(errno.into())),
        }
    };
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received_fds) = message {
            fds.extend(received_fds);
        }
    }
    if received.flags.contains(ReturnFlags::CTRUNC) {
        // The descriptors that did arrive are closed with `fds`.
        return Err(ConnectionError::ControlTruncated);
    }
    let bytes = buffer.get(..received.bytes).unwrap_or_default();
    Ok((bytes, fds))
}

/// Runs one request: the CDB rule the protocol answers with CHECK
/// CONDITION, the read-only check for PR OUT (what `qemu-pr-helper` does
/// before any ioctl), with `--identity-check` one `fstat` of the descriptor
/// (its result only decides whether the descriptor can be examined at all,
/// as a helper's check needs), then one `SG_IO` and the mapping of its
/// outcome.
fn execute(request: &Request<OwnedFd>, execution: Execution) -> Response {
    let timeout = execution.timeout;
    if let Err(fault) = request.cdb_check() {
        let (key, asc, ascq) = fault.sense_code();
        return Response::check_condition(&Sense::new(key, asc, ascq).fixed_bytes());
    }
    let fd = request.fd.as_fd();
    if execution.identity_check && rustix::fs::fstat(fd).is_err() {
        return Response::check_condition(&Sense::IO_ERROR.fixed_bytes());
    }
    let transfer = usize::from(request.transfer_length());
    let (mut data, direction) = match request.direction() {
        Direction::In => (vec![0u8; transfer], sg_io::Direction::FromDevice),
        Direction::Out => {
            match sg_io::access_mode(fd) {
                Ok(mode) if mode.can_write() => {}
                Ok(_) => return Response::check_condition(&Sense::INVALID_OPCODE.fixed_bytes()),
                Err(_) => return Response::check_condition(&Sense::IO_ERROR.fixed_bytes()),
            }
            (request.data_out.clone(), sg_io::Direction::ToDevice)
        }
    };
    let direction = if data.is_empty() {
        sg_io::Direction::None
    } else {
        direction
    };
    let length = scsi::cdb::cdb_length(request.cdb[0]).unwrap_or(request.cdb.len());
    let command = request.cdb.get(..length).unwrap_or(&request.cdb);
    let mut sense = [0u8; sg_io::SENSE_BUFFER_SIZE];
    let report = match sg_io::send(fd, command, direction, &mut data, &mut sense, timeout) {
        Ok(report) => report,
        // Lengths are bounded by the protocol, so this is not reached;
        // answer as for a failed ioctl.
        Err(_) => return Response::check_condition(&Sense::IO_ERROR.fixed_bytes()),
    };
    let mapped = scsi::sgio::map_sg_io_outcome(&report.outcome);
    let status = mapped.status.as_u8();
    let mut response = match mapped.synthesized_sense {
        Some(synthesized) => Response::with_sense(status, &synthesized.fixed_bytes()),
        None => Response::with_sense(status, &sense),
    };
    if status == STATUS_GOOD && request.direction() == Direction::In {
        data.truncate(report.transferred(data.len()));
        response.data = data;
    }
    response
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::wire::{Connection, READ_KEYS, pr_in_cdb};

    /// A yardstick on a listening socket in a temporary directory; its
    /// thread ends with the test process.
    fn start() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("yardstick.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        thread::spawn(move || {
            serve_listener(
                &listener,
                Execution {
                    timeout: Duration::from_secs(30),
                    identity_check: true,
                },
            )
        });
        (dir, socket)
    }

    /// A regular file: SG_IO fails with ENOTTY, mapped to 0B/00/06, the
    /// bytes `qemu-pr-helper` sends (protocol.md, observed replies).
    #[test]
    fn read_keys_on_a_regular_file_is_io_process_terminated() {
        let (_dir, socket) = start();
        let file = tempfile::tempfile().unwrap();
        let mut connection = Connection::open(&socket).unwrap();
        let cdb = pr_in_cdb(READ_KEYS, 64);
        for _ in 0..3 {
            let reply = connection.call(&cdb, file.as_fd()).unwrap();
            assert_eq!((reply.status, reply.size), (2, 0));
            assert_eq!(reply.sense, [0x0B, 0x00, 0x06]);
        }
    }

    /// A request without a descriptor breaks the protocol: the connection
    /// is closed without a reply.
    #[test]
    fn a_request_without_a_descriptor_closes_the_connection() {
        let (_dir, socket) = start();
        let mut stream = UnixStream::connect(&socket).unwrap();
        let mut greeting = [0u8; 4];
        stream.read_exact(&mut greeting).unwrap();
        assert_eq!(greeting, [0; 4]);
        stream.write_all(&[0; 4]).unwrap();
        stream.write_all(&pr_in_cdb(READ_KEYS, 8)).unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{rest:?}");
    }

    /// PR OUT on a read-only descriptor: 05/20/00 before any ioctl, the
    /// parameter list read so the stream stays in step for the next request.
    #[test]
    fn pr_out_on_a_read_only_descriptor_is_invalid_opcode() {
        let (_dir, socket) = start();
        let file = tempfile::NamedTempFile::new().unwrap();
        let read_only = std::fs::File::open(file.path()).unwrap();
        let mut stream = UnixStream::connect(&socket).unwrap();
        let mut greeting = [0u8; 4];
        stream.read_exact(&mut greeting).unwrap();
        stream.write_all(&[0; 4]).unwrap();
        let mut register = [0u8; 16];
        register[0] = pr_protocol::PERSISTENT_RESERVE_OUT;
        register[8] = 24;
        let mut request = Vec::new();
        pr_protocol::encode_request(&register, &[0; 24], &mut request).unwrap();
        crate::wire::send_with_fd(&stream, &request, read_only.as_fd()).unwrap();
        let mut reply = [0u8; pr_protocol::RESPONSE_HEADER_SIZE];
        stream.read_exact(&mut reply).unwrap();
        assert_eq!(&reply[..8], &[0, 0, 0, 2, 0, 0, 0, 0]);
        assert_eq!(
            &reply[8..26],
            &[
                0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0
            ]
        );
        assert!(reply[26..].iter().all(|&b| b == 0));
        // Still in step: a PR IN on the same connection is answered.
        let mut connection = Connection::from_negotiated(stream);
        let reply = connection
            .call(&pr_in_cdb(READ_KEYS, 8), read_only.as_fd())
            .unwrap();
        assert_eq!(reply.sense, [0x0B, 0x00, 0x06]);
    }

    /// Requesting a feature the server does not support closes the
    /// connection after the greeting.
    #[test]
    fn an_unsupported_feature_closes_the_connection() {
        let (_dir, socket) = start();
        let mut stream = UnixStream::connect(&socket).unwrap();
        let mut greeting = [0u8; 4];
        stream.read_exact(&mut greeting).unwrap();
        stream.write_all(&1u32.to_be_bytes()).unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{rest:?}");
    }
}
