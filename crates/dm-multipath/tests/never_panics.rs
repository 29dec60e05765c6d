//! Whatever the kernel (or a forged uevent) hands us, the parsers answer with a
//! value or an error, never a panic.

use dm_multipath::{ioctl_data, table, uevent};
use proptest::prelude::*;

/// Words that look like multipath lines: numbers, device numbers, states.
fn line() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        (0u32..6).prop_map(|n| n.to_string()),
        Just("4294967295".to_owned()),
        (0u32..300, 0u32..300).prop_map(|(a, b)| format!("{a}:{b}")),
        Just("A".to_owned()),
        Just("E".to_owned()),
        Just("F".to_owned()),
        Just("round-robin".to_owned()),
        "[ -~]{0,6}",
    ];
    proptest::collection::vec(word, 0..40).prop_map(|words| words.join(" "))
}

proptest! {
    #[test]
    fn table_and_status_lines(text in line()) {
        let _ = table::Table::parse(&text);
        let _ = table::Status::parse(&text);
    }

    #[test]
    fn uevent_messages(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = uevent::parse(&bytes);
    }

    #[test]
    fn uevent_like_messages(fields in proptest::collection::vec("(ACTION|SUBSYSTEM|MAJOR|MINOR|DM_ACTION|DM_PATH|DM_NAME)=[a-zA-Z0-9:_]{0,8}", 0..10)) {
        let mut bytes = b"change@/devices/virtual/block/dm-0\0".to_vec();
        for field in fields {
            bytes.extend_from_slice(field.as_bytes());
            bytes.push(0);
        }
        let _ = uevent::parse(&bytes);
    }

    #[test]
    fn ioctl_replies(mut bytes in proptest::collection::vec(any::<u8>(), 0..1200), count in 0u32..4, start in 0u32..1300, size in 0u32..1300) {
        if bytes.len() >= 24 {
            bytes[12..16].copy_from_slice(&size.to_ne_bytes());
            bytes[16..20].copy_from_slice(&start.to_ne_bytes());
            bytes[20..24].copy_from_slice(&count.to_ne_bytes());
        }
        let _ = ioctl_data::decode_targets(&bytes);
        let _ = ioctl_data::buffer_full(&bytes);
    }
}
