//! PERSISTENT RESERVE IN (0x5E) and OUT (0x5F) CDBs, both 10 bytes.

use super::error::PrDecodeError;
use super::types::{PrInAction, PrOutAction, ReservationType, Scope, ScopeType};
use crate::cdb::opcode;
use crate::wire::{be_u16, be_u32};

/// Length of both PR CDBs.
pub const PR_CDB_LEN: usize = 10;

/// A decoded PERSISTENT RESERVE IN CDB.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PrInCdb {
    pub action: PrInAction,
    pub allocation_length: u16,
}

/// A decoded PERSISTENT RESERVE OUT CDB.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PrOutCdb {
    pub action: PrOutAction,
    pub scope_type: ScopeType,
    /// SPC's PARAMETER LIST LENGTH, the u32 at bytes 5..9. The helper protocol
    /// transfers only the low 16 bits (bytes 7..9), see protocol.md.
    pub parameter_list_length: u32,
}

/// PERSISTENT RESERVE IN: service action in byte 1, ALLOCATION LENGTH at 7..9.
pub fn pr_in_cdb(action: PrInAction, alloc_len: u16) -> [u8; PR_CDB_LEN] {
    let mut cdb = [0u8; PR_CDB_LEN];
    cdb[0] = opcode::PERSISTENT_RESERVE_IN;
    cdb[1] = action.code();
    cdb[7..9].copy_from_slice(&alloc_len.to_be_bytes());
    cdb
}

/// PERSISTENT RESERVE OUT: service action in byte 1, scope/type in byte 2,
/// PARAMETER LIST LENGTH at 5..9. A `param_len` above 0xFFFF sets bytes 5..7,
/// which the helper protocol refuses; keep it to 16 bits when going through it.
pub fn pr_out_cdb(
    action: PrOutAction,
    scope: Scope,
    rtype: Option<ReservationType>,
    param_len: u32,
) -> [u8; PR_CDB_LEN] {
    let mut cdb = [0u8; PR_CDB_LEN];
    cdb[0] = opcode::PERSISTENT_RESERVE_OUT;
    cdb[1] = action.code();
    cdb[2] = ScopeType::new(scope, rtype).0;
    cdb[5..9].copy_from_slice(&param_len.to_be_bytes());
    cdb
}

impl PrInCdb {
    pub fn encode(&self) -> [u8; PR_CDB_LEN] {
        pr_in_cdb(self.action, self.allocation_length)
    }

    /// Decodes a PERSISTENT RESERVE IN CDB (at least 10 bytes; the helper protocol
    /// pads to 16).
    pub fn decode(cdb: &[u8]) -> Result<PrInCdb, PrDecodeError> {
        let (Some(&op), Some(&sa), Some(allocation_length)) =
            (cdb.first(), cdb.get(1), be_u16(cdb, 7))
        else {
            return Err(PrDecodeError::CdbTooShort { got: cdb.len() });
        };
        if op != opcode::PERSISTENT_RESERVE_IN {
            return Err(PrDecodeError::NotPrCommand(op));
        }
        let code = sa & 0x1f;
        let action = PrInAction::from_code(code).ok_or(PrDecodeError::UnknownPrInAction(code))?;
        Ok(PrInCdb {
            action,
            allocation_length,
        })
    }
}

impl PrOutCdb {
    pub fn encode(&self) -> [u8; PR_CDB_LEN] {
        let mut cdb = [0u8; PR_CDB_LEN];
        cdb[0] = opcode::PERSISTENT_RESERVE_OUT;
        cdb[1] = self.action.code();
        cdb[2] = self.scope_type.0;
        cdb[5..9].copy_from_slice(&self.parameter_list_length.to_be_bytes());
        cdb
    }

    /// Decodes a PERSISTENT RESERVE OUT CDB (at least 10 bytes).
    pub fn decode(cdb: &[u8]) -> Result<PrOutCdb, PrDecodeError> {
        let (Some(&op), Some(&sa), Some(&scope_type), Some(parameter_list_length)) =
            (cdb.first(), cdb.get(1), cdb.get(2), be_u32(cdb, 5))
        else {
            return Err(PrDecodeError::CdbTooShort { got: cdb.len() });
        };
        if cdb.len() < PR_CDB_LEN {
            return Err(PrDecodeError::CdbTooShort { got: cdb.len() });
        }
        if op != opcode::PERSISTENT_RESERVE_OUT {
            return Err(PrDecodeError::NotPrCommand(op));
        }
        let code = sa & 0x1f;
        let action = PrOutAction::from_code(code).ok_or(PrDecodeError::UnknownPrOutAction(code))?;
        Ok(PrOutCdb {
            action,
            scope_type: ScopeType(scope_type),
            parameter_list_length,
        })
    }
}
