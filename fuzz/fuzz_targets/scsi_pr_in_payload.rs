//! PR IN payload decoders (READ KEYS, READ RESERVATION, REPORT CAPABILITIES,
//! READ FULL STATUS). The first byte picks the decoder; the rest is the data.
//! A complete (untruncated) decode must survive encode + decode unchanged.
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use scsi::pr::{Decoded, FullStatus, PrDecodeError, ReadKeys, ReadReservation, ReportCapabilities};

/// Decodes `data`; if that gives the whole payload, re-encodes the value and
/// checks that decoding the encoding gives the value back.
fn check<T: PartialEq + Debug>(
    data: &[u8],
    decode: fn(&[u8]) -> Result<Decoded<T>, PrDecodeError>,
    encode: fn(&T) -> Vec<u8>,
) {
    if let Ok(decoded) = decode(data)
        && !decoded.truncated
    {
        let again = decode(&encode(&decoded.value)).expect("re-encoded payload decodes");
        assert_eq!(again.value, decoded.value);
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&which, data)) = input.split_first() else {
        return;
    };
    match which % 4 {
        0 => check(data, ReadKeys::decode, |v| v.encode().expect("encodes")),
        1 => check(data, ReadReservation::decode, ReadReservation::encode),
        2 => check(data, ReportCapabilities::decode, |v| v.encode().to_vec()),
        _ => check(data, FullStatus::decode, |v| v.encode().expect("encodes")),
    }
});
