//! Handshake decoder: first 4 bytes are the server's supported word, then a
//! script of reads as in `request_decoder` (length, descriptor count).
#![no_main]

use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use pr_protocol::{HandshakeDecoder, Negotiation};

fuzz_target!(|input: &[u8]| {
    let Some((supported, mut rest)) = input.split_first_chunk::<4>() else {
        return;
    };
    let supported = u32::from_be_bytes(*supported);
    let token = Rc::new(());
    let mut decoder = HandshakeDecoder::new(supported);
    while let Some((&control, tail)) = rest.split_first() {
        let len = usize::from(control & 0x07).min(tail.len());
        let fds = usize::from(control >> 6);
        let (now, later) = tail.split_at(len);
        rest = later;
        match decoder.feed(now, (0..fds).map(|_| token.clone())) {
            Ok(Negotiation::Done { enabled }) => assert_eq!(enabled & !supported, 0),
            Ok(Negotiation::NeedMore) => {}
            Err(violation) => {
                let _ = violation.to_string();
                break;
            }
        }
    }
    let _ = decoder.end_of_stream();
    assert_eq!(Rc::strong_count(&token), 1);
});
