//! Property tests: random streams never panic the decoders, descriptors are
//! never leaked, and every encoder round-trips through its decoder.

use std::rc::Rc;

use pr_protocol::{
    CDB_SIZE, Decoded, Direction, HandshakeDecoder, MAX_TRANSFER, Negotiation, Request,
    RequestDecoder, Response, ResponseDecoder, ResponseError, ResponseProgress, SENSE_SIZE,
    Violation, encode_request,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// A stand-in descriptor: its strong count shows whether it was closed.
type Fd = Rc<()>;

/// One read as a well-behaved daemon does it: at most `bytes_wanted` bytes.
#[derive(Debug, Clone)]
struct Piece {
    len: usize,
    fds: usize,
}

fn pieces() -> impl Strategy<Value = Vec<Piece>> {
    vec(
        (
            1usize..40,
            prop_oneof![6 => Just(0usize), 3 => Just(1), 1 => 2usize..4],
        )
            .prop_map(|(len, fds)| Piece { len, fds }),
        1..200,
    )
}

/// Feeds `stream` in `pieces`, capped at what the decoder wants unless
/// `overfeed`; returns the requests and the violation that stopped it, if any.
fn drive(
    stream: &[u8],
    pieces: &[Piece],
    token: &Fd,
    overfeed: bool,
) -> (Vec<Request<Fd>>, Option<Violation>) {
    let mut decoder = RequestDecoder::new();
    let mut requests = Vec::new();
    let mut rest = stream;
    for piece in pieces
        .iter()
        .cycle()
        .take(stream.len().saturating_add(pieces.len()))
    {
        let cap = if overfeed {
            piece.len
        } else {
            piece.len.min(decoder.bytes_wanted())
        };
        let len = cap.min(rest.len());
        let (now, later) = rest.split_at(len);
        rest = later;
        let fds = (0..piece.fds).map(|_| token.clone());
        match decoder.feed(now, fds) {
            Ok(Decoded::NeedMore) => {}
            Ok(Decoded::Request(request)) => requests.push(request),
            Err(violation) => return (requests, Some(violation)),
        }
        if rest.is_empty() {
            break;
        }
    }
    (requests, None)
}

fn check_request(request: &Request<Fd>) {
    let opcode = request.cdb[0];
    assert!(opcode == 0x5E || opcode == 0x5F);
    let length = usize::from(request.transfer_length());
    assert!(length <= MAX_TRANSFER);
    match request.direction() {
        Direction::In => assert!(request.data_out.is_empty()),
        Direction::Out => assert_eq!(request.data_out.len(), length),
    }
}

/// Bytes biased towards valid requests so the deep states get exercised.
fn request_like_stream() -> impl Strategy<Value = Vec<u8>> {
    vec(
        (
            prop_oneof![Just(0x5Eu8), Just(0x5F), any::<u8>()],
            vec(any::<u8>(), 15),
            prop_oneof![0u16..64, 8190u16..8194, any::<u16>()],
            vec(any::<u8>(), 0..80),
        )
            .prop_map(|(opcode, mut cdb, length, tail)| {
                cdb.insert(0, opcode);
                cdb[7..9].copy_from_slice(&length.to_be_bytes());
                cdb.extend_from_slice(&tail);
                cdb
            }),
        1..6,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn request_decoder_never_panics_nor_leaks(
        stream in prop_oneof![vec(any::<u8>(), 0..600), request_like_stream()],
        pieces in pieces(),
        overfeed in any::<bool>(),
    ) {
        let token = Rc::new(());
        let (requests, violation) = drive(&stream, &pieces, &token, overfeed);
        for request in &requests {
            check_request(request);
        }
        if let Some(violation) = violation {
            prop_assert!(!violation.to_string().contains('\n'));
        }
        // Every descriptor fed is either inside a request or closed.
        prop_assert_eq!(Rc::strong_count(&token), 1 + requests.len());
    }

    #[test]
    fn handshake_decoder_never_panics(
        stream in vec(any::<u8>(), 0..12),
        pieces in pieces(),
        supported in any::<u32>(),
    ) {
        let token = Rc::new(());
        let mut decoder = HandshakeDecoder::new(supported);
        let mut rest = stream.as_slice();
        for piece in &pieces {
            let len = piece.len.min(rest.len());
            let (now, later) = rest.split_at(len);
            rest = later;
            match decoder.feed(now, (0..piece.fds).map(|_| token.clone())) {
                Ok(Negotiation::Done { enabled }) => prop_assert_eq!(enabled & !supported, 0),
                Ok(Negotiation::NeedMore) => {}
                Err(_) => break,
            }
        }
        prop_assert_eq!(Rc::strong_count(&token), 1);
    }

    #[test]
    fn response_decoder_never_panics(
        cdb in vec(any::<u8>(), 0..17),
        stream in prop_oneof![
            vec(any::<u8>(), 0..400),
            (0i32..3, -2i32..40, vec(any::<u8>(), 96..200)).prop_map(|(r, s, rest)| {
                let mut bytes = r.to_be_bytes().to_vec();
                bytes.extend_from_slice(&s.to_be_bytes());
                bytes.extend_from_slice(&rest);
                bytes
            }),
        ],
        pieces in pieces(),
    ) {
        let mut decoder = ResponseDecoder::new(&cdb);
        let mut rest = stream.as_slice();
        for piece in &pieces {
            let len = piece.len.min(rest.len()).min(decoder.bytes_wanted());
            let (now, later) = rest.split_at(len);
            rest = later;
            match decoder.feed(now) {
                Ok(ResponseProgress::NeedMore) => {}
                Ok(ResponseProgress::Complete(response)) => {
                    prop_assert!(response.data.is_empty() || response.status == 0);
                    break;
                }
                Err(ResponseError::Overfed { .. }) | Err(ResponseError::Finished) => {
                    prop_assert!(false, "caller capped reads; decoder must not complain");
                }
                Err(_) => break,
            }
        }
    }
}

/// A valid request: CDB of 1..=16 bytes, transfer length within the limit,
/// a parameter list of exactly that length for PR OUT.
fn valid_request() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (
        prop_oneof![Just(0x5Eu8), Just(0x5F)],
        vec(any::<u8>(), CDB_SIZE - 1),
        0u16..=8192,
        1usize..=CDB_SIZE,
    )
        .prop_flat_map(|(opcode, mut body, length, len)| {
            body.insert(0, opcode);
            body[7..9].copy_from_slice(&length.to_be_bytes());
            body.truncate(len);
            let mut padded = body.clone();
            padded.resize(CDB_SIZE, 0);
            let effective = usize::from(u16::from_be_bytes([padded[7], padded[8]]));
            let data_len = if opcode == 0x5F { effective } else { 0 };
            (Just(body), vec(any::<u8>(), data_len))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn requests_round_trip(
        requests in vec(valid_request(), 1..4),
        pieces in vec(1usize..64, 1..50),
        fd_piece in any::<prop::sample::Index>(),
    ) {
        let mut stream = Vec::new();
        let mut fd_at = Vec::new();
        for (cdb, data) in &requests {
            fd_at.push(stream.len());
            encode_request(cdb, data, &mut stream).unwrap();
        }
        let token = Rc::new(());
        let mut decoder = RequestDecoder::new();
        let mut decoded = Vec::new();
        let mut offset = 0;
        let mut step = 0;
        // Each request's descriptor goes with one of its CDB pieces; which
        // one is drawn from `fd_piece` (0 = the first).
        let mut fd_pending = false;
        let mut cdb_piece = 0usize;
        while offset < stream.len() {
            if fd_at.contains(&offset) {
                fd_pending = true;
                cdb_piece = 0;
            }
            let len = pieces[step % pieces.len()].min(decoder.bytes_wanted());
            step += 1;
            let in_cdb = decoder.bytes_wanted() <= CDB_SIZE && fd_pending;
            let last_cdb_piece = in_cdb && len == decoder.bytes_wanted();
            let send_fd = in_cdb
                && (last_cdb_piece || cdb_piece == fd_piece.index(4));
            cdb_piece += 1;
            let fds: Vec<Fd> = if send_fd {
                fd_pending = false;
                vec![token.clone()]
            } else {
                Vec::new()
            };
            match decoder.feed(&stream[offset..offset + len], fds) {
                Ok(Decoded::NeedMore) => {}
                Ok(Decoded::Request(request)) => decoded.push(request),
                Err(violation) => prop_assert!(false, "violation {violation}"),
            }
            offset += len;
        }
        prop_assert!(decoder.is_idle());
        prop_assert_eq!(decoded.len(), requests.len());
        for ((cdb, data), request) in requests.iter().zip(&decoded) {
            let mut padded = cdb.clone();
            padded.resize(CDB_SIZE, 0);
            prop_assert_eq!(&request.cdb[..], &padded[..]);
            prop_assert_eq!(&request.data_out, data);
            prop_assert_eq!(request.cdb_check().is_err(),
                cdb[0] == 0x5F && padded[5..7] != [0, 0]);
        }
        drop(decoded);
        prop_assert_eq!(Rc::strong_count(&token), 1);
    }

    #[test]
    fn responses_round_trip(
        (cdb, _) in valid_request(),
        status in prop_oneof![Just(0u8), any::<u8>()],
        sense in vec(any::<u8>(), 0..=SENSE_SIZE),
        data_seed in vec(any::<u8>(), 0..=8192),
        pieces in vec(1usize..300, 1..50),
    ) {
        let mut padded = cdb.clone();
        padded.resize(CDB_SIZE, 0);
        let allocation = usize::from(u16::from_be_bytes([padded[7], padded[8]]));
        let data = if cdb[0] == 0x5E && status == 0 {
            data_seed[..data_seed.len().min(allocation)].to_vec()
        } else {
            Vec::new()
        };
        let response = Response { data, ..Response::with_sense(status, &sense) };
        let mut wire = Vec::new();
        response.encode(&cdb, &mut wire).unwrap();
        prop_assert_eq!(wire.len(), response.encoded_len());

        let mut decoder = ResponseDecoder::new(&cdb);
        let mut offset = 0;
        let mut step = 0;
        let decoded = loop {
            let len = pieces[step % pieces.len()].min(decoder.bytes_wanted());
            step += 1;
            match decoder.feed(&wire[offset..offset + len]).unwrap() {
                ResponseProgress::NeedMore => offset += len,
                ResponseProgress::Complete(decoded) => {
                    offset += len;
                    break decoded;
                }
            }
        };
        prop_assert_eq!(offset, wire.len());
        prop_assert_eq!(decoded, response);
    }
}

proptest! {
    #[test]
    fn handshake_round_trips(supported in any::<u32>(), wanted in any::<u32>(), split in 0usize..=4) {
        let mut server = HandshakeDecoder::new(supported);
        let answer = pr_protocol::client_handshake(server.greeting(), wanted);
        prop_assert_eq!(answer.supported, supported);
        let (first, second) = answer.reply.split_at(split);
        let no_fds = std::iter::empty::<Fd>;
        let progress = server.feed(first, no_fds()).unwrap();
        if split < 4 {
            prop_assert_eq!(progress, Negotiation::NeedMore);
            let done = server.feed(second, no_fds()).unwrap();
            prop_assert_eq!(done, Negotiation::Done { enabled: wanted & supported });
        } else {
            prop_assert_eq!(progress, Negotiation::Done { enabled: wanted & supported });
        }
    }
}
