//! Sense decoding: any bytes parse to some sense (short ones to ABORTED
//! COMMAND / I/O PROCESS TERMINATED), and re-encoding then parsing again
//! gives the same key/ASC/ASCQ in both formats.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scsi::sense::{self, Sense, SenseFormat};

fuzz_target!(|input: &[u8]| {
    let parsed = Sense::parse(input);
    let _ = parsed.to_string();
    let _ = parsed.to_errno();
    let _ = parsed.is_guest_recoverable();
    let _ = sense::format_of(input);
    let _ = sense::is_deferred(input);
    assert_eq!(Sense::parse(&parsed.fixed_bytes()), parsed);
    assert_eq!(Sense::parse(&parsed.descriptor_bytes()), parsed);
    // Conversion into a caller's buffer of any size truncates, never panics.
    let out_len = input.first().map_or(0, |&b| usize::from(b % 32));
    let mut out = vec![0u8; out_len];
    for format in [SenseFormat::Fixed, SenseFormat::Descriptor] {
        let written = sense::convert(input, format, &mut out);
        assert!(written <= out_len);
    }
});
