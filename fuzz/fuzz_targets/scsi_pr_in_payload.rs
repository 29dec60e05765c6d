//! PR IN payload decoders (READ KEYS, READ RESERVATION, REPORT CAPABILITIES,
//! READ FULL STATUS). The first byte picks the decoder; the rest is the data.
//! A complete (untruncated) decode must survive encode + decode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scsi::pr::{FullStatus, ReadKeys, ReadReservation, ReportCapabilities};

fuzz_target!(|input: &[u8]| {
    let Some((&which, data)) = input.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            if let Ok(decoded) = ReadKeys::decode(data) {
                if !decoded.truncated {
                    let again = ReadKeys::decode(&decoded.value.encode().unwrap()).unwrap();
                    assert_eq!(again.value, decoded.value);
                }
            }
        }
        1 => {
            if let Ok(decoded) = ReadReservation::decode(data) {
                if !decoded.truncated {
                    let again = ReadReservation::decode(&decoded.value.encode()).unwrap();
                    assert_eq!(again.value, decoded.value);
                }
            }
        }
        2 => {
            if let Ok(decoded) = ReportCapabilities::decode(data) {
                if !decoded.truncated {
                    let again = ReportCapabilities::decode(&decoded.value.encode()).unwrap();
                    assert_eq!(again.value, decoded.value);
                }
            }
        }
        _ => {
            if let Ok(decoded) = FullStatus::decode(data) {
                if !decoded.truncated {
                    let again = FullStatus::decode(&decoded.value.encode().unwrap()).unwrap();
                    assert_eq!(again.value, decoded.value);
                }
            }
        }
    }
});
