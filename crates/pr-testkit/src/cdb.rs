//! CDBs as the protocol carries them: 16 bytes, zero-padded.

/// PERSISTENT RESERVE IN opcode.
pub const PR_IN: u8 = 0x5E;
/// PERSISTENT RESERVE OUT opcode.
pub const PR_OUT: u8 = 0x5F;

/// `cdb` (a 10-byte PR IN/OUT CDB, say, as `pr_target::build` makes them)
/// zero-padded to 16 bytes. Panics if it is longer.
pub fn padded(cdb: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..cdb.len()].copy_from_slice(cdb);
    out
}

/// PR IN READ KEYS with `allocation` bytes allowed for the answer.
pub fn read_keys(allocation: u16) -> [u8; 16] {
    pr_in(0x00, allocation)
}

/// PR IN with `service_action` and `allocation` bytes allowed for the answer.
pub fn pr_in(service_action: u8, allocation: u16) -> [u8; 16] {
    let mut cdb = [0u8; 16];
    cdb[0] = PR_IN;
    cdb[1] = service_action & 0x1f;
    cdb[7..9].copy_from_slice(&allocation.to_be_bytes());
    cdb
}

/// PR OUT REGISTER carrying a `length`-byte parameter list (`cdb[7..9]`).
pub fn register(length: u16) -> [u8; 16] {
    pr_out(0x00, length)
}

/// PR OUT with `service_action` and a `length`-byte parameter list.
pub fn pr_out(service_action: u8, length: u16) -> [u8; 16] {
    let mut cdb = [0u8; 16];
    cdb[0] = PR_OUT;
    cdb[1] = service_action & 0x1f;
    cdb[7..9].copy_from_slice(&length.to_be_bytes());
    cdb
}

/// A 24-byte REGISTER parameter list registering `key`.
pub fn register_params(key: u64) -> Vec<u8> {
    let mut list = vec![0u8; 24];
    list[8..16].copy_from_slice(&key.to_be_bytes());
    list
}
