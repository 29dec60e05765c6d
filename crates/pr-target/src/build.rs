//! Builders for the CDBs and parameter lists of PR commands (tests, drivers, examples).

use scsi::pr::{
    PrInAction, PrOutAction, PrOutCdb, PrOutParams, RegisterMoveParams, ScopeType, TransportId,
    pr_in_cdb,
};

/// A 10-byte PR IN CDB.
pub fn pr_in(action: PrInAction, allocation_length: u16) -> [u8; 10] {
    pr_in_cdb(action, allocation_length)
}

/// A 10-byte PR OUT CDB with SCOPE 0 and this TYPE (any nibble, so that tests can
/// send the reserved ones).
pub fn pr_out(action: PrOutAction, type_code: u8, param_len: u32) -> [u8; 10] {
    PrOutCdb {
        action,
        scope_type: ScopeType(type_code & 0x0F),
        parameter_list_length: param_len,
    }
    .encode()
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

/// A basic (24-byte) parameter list, plus TransportIDs when SPEC_I_PT is set (an ID
/// that cannot be encoded, e.g. an iSCSI name with a NUL, is left out).
pub fn basic_list(key: u64, sa_key: u64, flags: Flags, tids: &[TransportId]) -> Vec<u8> {
    let transport_ids = if flags.spec_i_pt {
        tids.iter()
            .filter(|id| id.to_bytes().is_ok())
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let params = PrOutParams {
        reservation_key: key,
        service_action_key: sa_key,
        spec_i_pt: flags.spec_i_pt,
        all_tg_pt: flags.all_tg_pt,
        aptpl: flags.aptpl,
        transport_ids,
    };
    // Cannot fail: the IDs encode and their list is far below 4 GiB.
    params.encode().unwrap_or_default()
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

/// The REGISTER AND MOVE parameter list (empty if `destination` cannot be encoded).
pub fn move_list(
    key: u64,
    sa_key: u64,
    unreg: bool,
    aptpl: bool,
    target_port: u16,
    destination: &TransportId,
) -> Vec<u8> {
    let params = RegisterMoveParams {
        reservation_key: key,
        service_action_key: sa_key,
        unreg,
        aptpl,
        relative_target_port: target_port,
        transport_id: destination.clone(),
    };
    params.encode().unwrap_or_default()
}

/// READ KEYS with this allocation length.
pub fn read_keys(allocation_length: u16) -> [u8; 10] {
    pr_in(PrInAction::ReadKeys, allocation_length)
}
