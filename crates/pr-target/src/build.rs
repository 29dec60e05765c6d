//! Builders for the CDBs and parameter lists of PR commands (tests, drivers, examples).

use crate::nexus::Initiator;
use crate::unit::PERSISTENT_RESERVE_OUT;
use scsi::pr::{PrInAction, PrOutAction, pr_in_cdb};

/// A 10-byte PR IN CDB.
pub fn pr_in(action: PrInAction, allocation_length: u16) -> [u8; 10] {
    pr_in_cdb(action, allocation_length)
}

/// A 10-byte PR OUT CDB with SCOPE 0 and this TYPE (any nibble, so that tests can
/// send the reserved ones).
pub fn pr_out(action: PrOutAction, type_code: u8, param_len: u32) -> [u8; 10] {
    let mut cdb = [0u8; 10];
    cdb[0] = PERSISTENT_RESERVE_OUT;
    cdb[1] = action.code();
    cdb[2] = type_code & 0x0F;
    cdb[5..9].copy_from_slice(&param_len.to_be_bytes());
    cdb
}

/// Flags of the basic parameter list (byte 20).
#[derive(Clone, Copy, Debug, Default)]
pub struct Flags {
    /// SPEC_I_PT: TransportIDs follow.
    pub spec_i_pt: bool,
    /// ALL_TG_PT: register through every target port.
    pub all_tg_pt: bool,
    /// APTPL: persist through power loss.
    pub aptpl: bool,
}

/// A basic (24-byte) parameter list, plus TransportIDs when SPEC_I_PT is set.
pub fn basic_list(key: u64, sa_key: u64, flags: Flags, tids: &[Initiator]) -> Vec<u8> {
    let mut list = vec![0u8; 24];
    list[0..8].copy_from_slice(&key.to_be_bytes());
    list[8..16].copy_from_slice(&sa_key.to_be_bytes());
    list[20] =
        u8::from(flags.spec_i_pt) << 3 | u8::from(flags.all_tg_pt) << 2 | u8::from(flags.aptpl);
    if flags.spec_i_pt {
        let bytes: Vec<u8> = tids.iter().flat_map(|t| t.transport_id()).collect();
        list.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(0).to_be_bytes());
        list.extend_from_slice(&bytes);
    }
    list
}

/// A complete PR OUT command with a basic parameter list.
pub fn out_command(
    action: PrOutAction,
    type_code: u8,
    key: u64,
    sa_key: u64,
    flags: Flags,
) -> ([u8; 10], Vec<u8>) {
    let list = basic_list(key, sa_key, flags, &[]);
    let cdb = pr_out(action, type_code, u32::try_from(list.len()).unwrap_or(0));
    (cdb, list)
}

/// REGISTER: change `key` to `sa_key` (0 unregisters).
pub fn register(key: u64, sa_key: u64, aptpl: bool) -> ([u8; 10], Vec<u8>) {
    let flags = Flags {
        aptpl,
        ..Flags::default()
    };
    out_command(PrOutAction::Register, 0, key, sa_key, flags)
}

/// RESERVE with this TYPE.
pub fn reserve(key: u64, type_code: u8) -> ([u8; 10], Vec<u8>) {
    out_command(PrOutAction::Reserve, type_code, key, 0, Flags::default())
}

/// The REGISTER AND MOVE parameter list.
pub fn move_list(
    key: u64,
    sa_key: u64,
    unreg: bool,
    aptpl: bool,
    target_port: u16,
    destination: &Initiator,
) -> Vec<u8> {
    let tid = destination.transport_id();
    let mut list = vec![0u8; 24];
    list[0..8].copy_from_slice(&key.to_be_bytes());
    list[8..16].copy_from_slice(&sa_key.to_be_bytes());
    list[17] = u8::from(unreg) << 1 | u8::from(aptpl);
    list[18..20].copy_from_slice(&target_port.to_be_bytes());
    list[20..24].copy_from_slice(&u32::try_from(tid.len()).unwrap_or(0).to_be_bytes());
    list.extend_from_slice(&tid);
    list
}

/// READ KEYS with this allocation length.
pub fn read_keys(allocation_length: u16) -> [u8; 10] {
    pr_in(PrInAction::ReadKeys, allocation_length)
}
