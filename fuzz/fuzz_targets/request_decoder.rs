//! Request decoder: the input is a script of reads. Each read starts with a
//! control byte: low 5 bits + 1 = how many bytes to take (capped at what the
//! decoder wants, as the daemon does), top 2 bits = descriptors received
//! with them. Bit 5 set means "ignore the cap" (a buggy caller), which must
//! give a typed error, never a panic.
#![no_main]

use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use pr_protocol::{Decoded, Direction, MAX_TRANSFER, RequestDecoder};

fuzz_target!(|input: &[u8]| {
    let token = Rc::new(());
    let mut decoder = RequestDecoder::new();
    let mut requests = Vec::new();
    let mut rest = input;
    while let Some((&control, tail)) = rest.split_first() {
        let asked = usize::from(control & 0x1F) + 1;
        let ignore_cap = control & 0x20 != 0;
        let fds = usize::from(control >> 6);
        let len = if ignore_cap {
            asked
        } else {
            asked.min(decoder.bytes_wanted())
        };
        let (now, later) = tail.split_at(len.min(tail.len()));
        rest = later;
        match decoder.feed(now, (0..fds).map(|_| token.clone())) {
            Ok(Decoded::NeedMore) => {}
            Ok(Decoded::Request(request)) => {
                let length = usize::from(request.transfer_length());
                assert!(length <= MAX_TRANSFER);
                match request.direction() {
                    Direction::In => assert!(request.data_out.is_empty()),
                    Direction::Out => assert_eq!(request.data_out.len(), length),
                }
                let _ = request.cdb_check();
                requests.push(request);
            }
            Err(violation) => {
                let _ = violation.to_string();
                break;
            }
        }
    }
    let _ = decoder.end_of_stream();
    drop(decoder);
    // Every descriptor fed is inside a request or has been closed.
    assert_eq!(Rc::strong_count(&token), 1 + requests.len());
});
