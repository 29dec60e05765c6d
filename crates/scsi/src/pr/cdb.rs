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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pr_in_cdb_layout() {
        let cdb = pr_in_cdb(PrInAction::ReadFullStatus, 0x1234);
        assert_eq!(cdb, [0x5E, 0x03, 0, 0, 0, 0, 0, 0x12, 0x34, 0]);
        assert_eq!(crate::cdb::transfer_length(&cdb), Some(0x1234));
    }

    #[test]
    fn pr_out_cdb_layout() {
        let cdb = pr_out_cdb(
            PrOutAction::Reserve,
            Scope::LogicalUnit,
            Some(ReservationType::WriteExclusiveRegistrantsOnly),
            24,
        );
        assert_eq!(cdb, [0x5F, 0x01, 0x05, 0, 0, 0, 0, 0, 24, 0]);
        let big = pr_out_cdb(PrOutAction::Register, Scope::LogicalUnit, None, 0x0102_0304);
        assert_eq!(big, [0x5F, 0x00, 0x00, 0, 0, 0x01, 0x02, 0x03, 0x04, 0]);
        assert_eq!(
            crate::cdb::pr_out_parameter_list_length(&big),
            Some(0x0102_0304)
        );
    }

    #[test]
    fn cdbs_decode_what_they_encode() {
        for action in PrInAction::ALL {
            let cdb = PrInCdb {
                action,
                allocation_length: 8192,
            };
            assert_eq!(PrInCdb::decode(&cdb.encode()), Ok(cdb));
        }
        for action in PrOutAction::ALL {
            let cdb = PrOutCdb {
                action,
                scope_type: ScopeType(0x07),
                parameter_list_length: 40,
            };
            assert_eq!(PrOutCdb::decode(&cdb.encode()), Ok(cdb));
            let padded: Vec<u8> = cdb.encode().into_iter().chain([0; 6]).collect();
            assert_eq!(PrOutCdb::decode(&padded), Ok(cdb));
        }
    }

    #[test]
    fn cdb_decoders_refuse_what_is_not_theirs() {
        let out = pr_out_cdb(PrOutAction::Clear, Scope::LogicalUnit, None, 24);
        let inn = pr_in_cdb(PrInAction::ReadKeys, 8);
        assert_eq!(
            PrInCdb::decode(&out),
            Err(PrDecodeError::NotPrCommand(0x5F))
        );
        assert_eq!(
            PrOutCdb::decode(&inn),
            Err(PrDecodeError::NotPrCommand(0x5E))
        );
        assert_eq!(
            PrInCdb::decode(&inn[..8]),
            Err(PrDecodeError::CdbTooShort { got: 8 })
        );
        assert_eq!(
            PrOutCdb::decode(&out[..9]),
            Err(PrDecodeError::CdbTooShort { got: 9 })
        );
        assert_eq!(
            PrOutCdb::decode(&[]),
            Err(PrDecodeError::CdbTooShort { got: 0 })
        );
        let mut bad = inn;
        bad[1] = 0x04;
        assert_eq!(
            PrInCdb::decode(&bad),
            Err(PrDecodeError::UnknownPrInAction(4))
        );
        let mut bad = out;
        bad[1] = 0xE9;
        assert_eq!(
            PrOutCdb::decode(&bad),
            Err(PrDecodeError::UnknownPrOutAction(9))
        );
        assert_eq!(
            PrDecodeError::UnknownPrOutAction(9).sense(),
            crate::Sense::INVALID_FIELD_IN_CDB
        );
    }
}
