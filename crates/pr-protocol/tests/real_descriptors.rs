//! The decoders driven the way the daemon drives them: `recvmsg` on a real
//! Unix stream socket, reading only `bytes_wanted()` bytes, with real
//! descriptors passed as SCM_RIGHTS.
//!
//! The point of `bytes_wanted`: Linux lets one `recvmsg` on a stream socket
//! run from a message without descriptors into the next one that has some,
//! so a reader that asked for more than the current request needs could
//! pick up the descriptor of the next request.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use pr_protocol::{
    Decoded, Direction, HandshakeDecoder, Negotiation, Request, RequestDecoder, Violation,
    encode_request,
};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};

/// Writes all of `bytes` in one `sendmsg`, `fds` attached.
fn send(stream: &UnixStream, bytes: &[u8], fds: &[BorrowedFd<'_>]) {
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
    }
    let sent = sendmsg(
        stream,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .unwrap();
    assert_eq!(sent, bytes.len(), "socket buffer holds a whole request");
}

/// One `recvmsg` of at most `want` bytes: the bytes and the descriptors.
fn receive(stream: &UnixStream, want: usize) -> (Vec<u8>, Vec<OwnedFd>) {
    let mut buf = vec![0u8; want];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(8))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = recvmsg(
        stream,
        &mut [IoSliceMut::new(&mut buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .unwrap();
    buf.truncate(got.bytes);
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    (buf, fds)
}

/// Reads one request as the daemon does.
fn next_request(
    stream: &UnixStream,
    decoder: &mut RequestDecoder<OwnedFd>,
) -> Result<Request<OwnedFd>, Violation> {
    loop {
        let (bytes, fds) = receive(stream, decoder.bytes_wanted());
        if bytes.is_empty() {
            decoder.end_of_stream()?;
            panic!("peer closed between requests");
        }
        if let Decoded::Request(request) = decoder.feed(&bytes, fds)? {
            return Ok(request);
        }
    }
}

fn proc_fd(raw: RawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{raw}"))
}

/// What a descriptor refers to ("/dev/null", "pipe:[1234]", ...).
fn target_of(fd: BorrowedFd<'_>) -> PathBuf {
    std::fs::read_link(proc_fd(fd.as_raw_fd())).unwrap()
}

/// True if descriptor number `raw` no longer refers to `target`.
fn is_closed(raw: RawFd, target: &PathBuf) -> bool {
    std::fs::read_link(proc_fd(raw)).map_or(true, |now| &now != target)
}

fn cdb(opcode: u8, length: u16) -> [u8; 10] {
    let mut cdb = [0u8; 10];
    cdb[0] = opcode;
    cdb[7..9].copy_from_slice(&length.to_be_bytes());
    cdb
}

#[test]
fn each_request_gets_the_descriptor_sent_with_it() {
    let (client, server) = UnixStream::pair().unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let (pipe_read, pipe_write) = rustix::pipe::pipe().unwrap();

    // A: PR OUT, the CDB with /dev/null, then the parameter list alone.
    let list: Vec<u8> = (1..=24).collect();
    let mut a = Vec::new();
    encode_request(&cdb(0x5F, 24), &list, &mut a).unwrap();
    send(&client, &a[..16], &[null.as_fd()]);
    send(&client, &a[16..], &[]);
    // B: PR IN with the pipe's read end.
    let mut b = Vec::new();
    encode_request(&cdb(0x5E, 8192), &[], &mut b).unwrap();
    send(&client, &b, &[pipe_read.as_fd()]);
    // C: PR IN in two messages, the descriptor (write end) on the second.
    let mut c = Vec::new();
    encode_request(&cdb(0x5E, 16), &[], &mut c).unwrap();
    send(&client, &c[..7], &[]);
    send(&client, &c[7..], &[pipe_write.as_fd()]);

    let mut decoder = RequestDecoder::new();
    let first = next_request(&server, &mut decoder).unwrap();
    assert_eq!(first.direction(), Direction::Out);
    assert_eq!(first.data_out, list);
    assert_eq!(target_of(first.fd.as_fd()), target_of(null.as_fd()));

    let second = next_request(&server, &mut decoder).unwrap();
    assert_eq!(second.direction(), Direction::In);
    assert_eq!(second.transfer_length(), 8192);
    assert_eq!(target_of(second.fd.as_fd()), target_of(pipe_read.as_fd()));

    let third = next_request(&server, &mut decoder).unwrap();
    assert_eq!(third.transfer_length(), 16);
    assert_eq!(target_of(third.fd.as_fd()), target_of(pipe_write.as_fd()));
    assert!(decoder.is_idle());
}

#[test]
fn violation_closes_every_received_descriptor() {
    let (client, server) = UnixStream::pair().unwrap();
    let (pipe_read, pipe_write) = rustix::pipe::pipe().unwrap();
    let mut request = Vec::new();
    encode_request(&cdb(0x5E, 8), &[], &mut request).unwrap();
    send(&client, &request, &[pipe_read.as_fd(), pipe_write.as_fd()]);

    let (bytes, fds) = receive(&server, 16);
    assert_eq!(fds.len(), 2);
    let received: Vec<(RawFd, PathBuf)> = fds
        .iter()
        .map(|fd| (fd.as_raw_fd(), target_of(fd.as_fd())))
        .collect();

    let mut decoder = RequestDecoder::new();
    assert_eq!(
        decoder.feed(&bytes, fds).err(),
        Some(Violation::ExtraDescriptors { count: 2 })
    );
    for (raw, target) in &received {
        assert!(is_closed(*raw, target), "descriptor {raw} still open");
    }
    // The sender's own copies are untouched.
    assert_eq!(target_of(pipe_read.as_fd()), received[0].1);
}

#[test]
fn partial_request_descriptor_is_closed_on_a_later_violation() {
    let (client, server) = UnixStream::pair().unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let mut request = Vec::new();
    encode_request(&cdb(0x5F, 4), &[1, 2, 3, 4], &mut request).unwrap();
    send(&client, &request[..16], &[null.as_fd()]);
    // A descriptor with the parameter list is a violation.
    send(&client, &request[16..], &[null.as_fd()]);

    let mut decoder = RequestDecoder::new();
    let (bytes, fds) = receive(&server, decoder.bytes_wanted());
    let held = (fds[0].as_raw_fd(), target_of(fds[0].as_fd()));
    assert!(matches!(decoder.feed(&bytes, fds), Ok(Decoded::NeedMore)));
    let (bytes, fds) = receive(&server, decoder.bytes_wanted());
    let extra = (fds[0].as_raw_fd(), target_of(fds[0].as_fd()));
    assert_eq!(
        decoder.feed(&bytes, fds).err(),
        Some(Violation::DescriptorWithParameterList { count: 1 })
    );
    assert!(is_closed(held.0, &held.1), "request's descriptor closed");
    assert!(is_closed(extra.0, &extra.1), "extra descriptor closed");
}

#[test]
fn descriptor_during_handshake_is_closed() {
    let (client, server) = UnixStream::pair().unwrap();
    let (pipe_read, _pipe_write) = rustix::pipe::pipe().unwrap();
    let mut handshake = HandshakeDecoder::default();
    send(&server, &handshake.greeting(), &[]);

    let (greeting, _) = receive(&client, 4);
    let answer = pr_protocol::client_handshake(greeting.try_into().unwrap(), 0);
    send(&client, &answer.reply[..2], &[]);
    send(&client, &answer.reply[2..], &[pipe_read.as_fd()]);

    // One read may return both messages (the kernel merges a message
    // without descriptors with the next one), or just the first: either way
    // the word ends up arriving with a descriptor.
    let mut held = Vec::new();
    let violation = loop {
        let (bytes, fds) = receive(&server, handshake.bytes_wanted());
        held.extend(fds.iter().map(|fd| (fd.as_raw_fd(), target_of(fd.as_fd()))));
        match handshake.feed(&bytes, fds) {
            Ok(Negotiation::NeedMore) => continue,
            Ok(done) => panic!("handshake accepted a descriptor: {done:?}"),
            Err(violation) => break violation,
        }
    };
    assert_eq!(violation, Violation::DescriptorDuringHandshake { count: 1 });
    assert_eq!(held.len(), 1);
    for (raw, target) in &held {
        assert!(is_closed(*raw, target));
    }
}

/// Why the decoder sizes every read: the same stream read greedily hands
/// the next request's descriptor over together with this one's parameter
/// list.
#[test]
fn greedy_read_would_take_the_next_requests_descriptor() {
    let (client, server) = UnixStream::pair().unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let mut a = Vec::new();
    encode_request(&cdb(0x5F, 24), &[7; 24], &mut a).unwrap();
    send(&client, &a[..16], &[null.as_fd()]);
    send(&client, &a[16..], &[]);
    let mut b = Vec::new();
    encode_request(&cdb(0x5E, 8), &[], &mut b).unwrap();
    send(&client, &b, &[null.as_fd()]);

    let (cdb_a, fds) = receive(&server, 16);
    assert_eq!((cdb_a.len(), fds.len()), (16, 1));
    let (greedy, fds) = receive(&server, 4096);
    assert_eq!(greedy.len(), 24 + 16, "list of A and CDB of B in one read");
    assert_eq!(fds.len(), 1, "B's descriptor came with A's parameter list");

    // The decoder would have refused that read rather than misplace it.
    let mut decoder = RequestDecoder::new();
    assert!(matches!(
        decoder.feed(&cdb_a, [null.try_clone().unwrap().into()]),
        Ok(Decoded::NeedMore)
    ));
    assert_eq!(
        decoder.feed(&greedy, fds).err(),
        Some(Violation::Overfed {
            wanted: 24,
            given: 40
        })
    );
}
