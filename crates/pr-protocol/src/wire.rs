//! Small byte helpers shared by the encoders and decoders.

use crate::{CDB_SIZE, MAX_TRANSFER, PERSISTENT_RESERVE_IN, PERSISTENT_RESERVE_OUT};

/// The transfer length both QEMU peers use: the big-endian u16 at `cdb[7..9]`
/// (the generic rule for group-2 opcodes). Missing bytes count as zero,
/// matching the client's zero padding of short CDBs.
pub(crate) fn transfer_length(cdb: &[u8]) -> u16 {
    let hi = cdb.get(7).copied().unwrap_or(0);
    let lo = cdb.get(8).copied().unwrap_or(0);
    u16::from_be_bytes([hi, lo])
}

/// Whether `opcode` is one of the two the protocol carries.
pub(crate) fn is_pr_opcode(opcode: u8) -> bool {
    opcode == PERSISTENT_RESERVE_IN || opcode == PERSISTENT_RESERVE_OUT
}

/// Whether a transfer length is within the protocol's limit.
pub(crate) fn transfer_allowed(length: u16) -> bool {
    usize::from(length) <= MAX_TRANSFER
}

/// Copies `cdb` into a zero-padded 16-byte array; `None` if it is longer.
pub(crate) fn pad_cdb(cdb: &[u8]) -> Option<[u8; CDB_SIZE]> {
    let mut padded = [0u8; CDB_SIZE];
    padded.get_mut(..cdb.len())?.copy_from_slice(cdb);
    Some(padded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_length_is_big_endian_at_7_and_8() {
        let mut cdb = [0u8; 16];
        cdb[7] = 0x12;
        cdb[8] = 0x34;
        assert_eq!(transfer_length(&cdb), 0x1234);
    }

    #[test]
    fn transfer_length_of_short_cdb_counts_missing_bytes_as_zero() {
        assert_eq!(transfer_length(&[0x5E; 8]), 0x5E00);
        assert_eq!(transfer_length(&[0x5E; 6]), 0);
        assert_eq!(transfer_length(&[]), 0);
    }

    #[test]
    fn only_the_two_pr_opcodes_are_accepted() {
        let accepted: Vec<u8> = (0..=u8::MAX).filter(|&op| is_pr_opcode(op)).collect();
        assert_eq!(accepted, [0x5E, 0x5F]);
    }

    #[test]
    fn transfer_limit_is_8192_inclusive() {
        assert!(transfer_allowed(0));
        assert!(transfer_allowed(8192));
        assert!(!transfer_allowed(8193));
    }

    #[test]
    fn pad_cdb_zero_fills_and_refuses_long_input() {
        let padded = pad_cdb(&[0x5E, 1, 2]).unwrap();
        assert_eq!(&padded[..3], &[0x5E, 1, 2]);
        assert!(padded[3..].iter().all(|&b| b == 0));
        assert_eq!(pad_cdb(&[7; 16]), Some([7; 16]));
        assert_eq!(pad_cdb(&[7; 17]), None);
        assert_eq!(pad_cdb(&[]), Some([0; 16]));
    }
}
