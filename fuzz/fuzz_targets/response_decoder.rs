//! Response decoder: first byte = CDB length (mod 17), then that many CDB
//! bytes (the request the client sent), one byte = read size, then the
//! server's bytes, read in pieces of that size capped at what is wanted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pr_protocol::{MAX_TRANSFER, ResponseDecoder, ResponseProgress, STATUS_GOOD};

fuzz_target!(|input: &[u8]| {
    let Some((&cdb_len, rest)) = input.split_first() else {
        return;
    };
    let cdb_len = usize::from(cdb_len % 17).min(rest.len());
    let (cdb, rest) = rest.split_at(cdb_len);
    let Some((&piece, mut stream)) = rest.split_first() else {
        return;
    };
    let piece = usize::from(piece).max(1);
    let mut decoder = ResponseDecoder::new(cdb);
    loop {
        let len = piece.min(decoder.bytes_wanted()).min(stream.len());
        let (now, later) = stream.split_at(len);
        stream = later;
        match decoder.feed(now) {
            Ok(ResponseProgress::NeedMore) if len == 0 => break,
            Ok(ResponseProgress::NeedMore) => {}
            Ok(ResponseProgress::Complete(response)) => {
                assert!(response.data.len() <= MAX_TRANSFER);
                assert!(response.data.is_empty() || response.status == STATUS_GOOD);
                break;
            }
            Err(error) => {
                let _ = error.to_string();
                break;
            }
        }
    }
    let _ = decoder.end_of_stream();
});
