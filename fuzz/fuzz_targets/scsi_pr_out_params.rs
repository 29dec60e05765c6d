//! PR OUT parameter lists (basic and REGISTER AND MOVE) and the PR IN/OUT
//! CDB decoders. The first byte picks the decoder. What decodes must
//! survive encode + decode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scsi::pr::{PrInCdb, PrOutCdb, PrOutParams, RegisterMoveParams};

fuzz_target!(|input: &[u8]| {
    let Some((&which, data)) = input.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            if let Ok(params) = PrOutParams::decode(data) {
                let again = PrOutParams::decode(&params.encode().unwrap()).unwrap();
                assert_eq!(again, params);
            }
        }
        1 => {
            if let Ok(params) = RegisterMoveParams::decode(data) {
                let again = RegisterMoveParams::decode(&params.encode().unwrap()).unwrap();
                assert_eq!(again, params);
            }
        }
        2 => {
            if let Ok(cdb) = PrInCdb::decode(data) {
                assert_eq!(PrInCdb::decode(&cdb.encode()).unwrap(), cdb);
            }
        }
        _ => {
            if let Ok(cdb) = PrOutCdb::decode(data) {
                assert_eq!(PrOutCdb::decode(&cdb.encode()).unwrap(), cdb);
            }
        }
    }
});
