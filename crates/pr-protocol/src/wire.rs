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
