//! TransportID decoders: one entry of a list (`decode`, which reports the
//! bytes it used) and a sized one (`decode_exact`). What decodes must
//! survive encode + decode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scsi::pr::TransportId;

fuzz_target!(|input: &[u8]| {
    if let Ok((id, used)) = TransportId::decode(input) {
        assert!(used <= input.len());
        let bytes = id.to_bytes().unwrap();
        assert_eq!(TransportId::decode(&bytes).unwrap().0, id);
    }
    if let Ok(id) = TransportId::decode_exact(input)
        && let Ok(bytes) = id.to_bytes()
    {
        assert_eq!(TransportId::decode_exact(&bytes).unwrap(), id);
    }
});
