//! Decoding the PERSISTENT RESERVE OUT CDB and parameter lists into checked values.
//!
//! Every refusal here is the sense SPC-4 prescribes for that field.

use crate::nexus::Initiator;
use crate::outcome::Outcome;
use scsi::pr::{PrOutAction, PrOutCdb, ReservationType, Scope};
use scsi::sense::Sense;

/// Length of the basic PR OUT parameter list (and the header of REGISTER AND MOVE's).
pub(crate) const BASIC_LIST_LEN: usize = 24;
/// The basic list plus the TRANSPORTID PARAMETER DATA LENGTH field of SPEC_I_PT.
const SPEC_I_PT_HEADER_LEN: usize = 28;

/// The PR OUT CDB, decoded; every refusal is the sense SPC-4 prescribes.
pub(crate) fn decode_out_cdb(cdb: &[u8]) -> Result<PrOutCdb, Outcome> {
    let cdb = PrOutCdb::decode(cdb).map_err(|error| refuse(error.sense()))?;
    if cdb.action == PrOutAction::ReplaceLostReservation {
        // Not implemented: reservations are never lost here.
        return Err(refuse(Sense::INVALID_FIELD_IN_CDB));
    }
    Ok(cdb)
}

/// The reservation the SCOPE and TYPE fields ask for (RESERVE, PREEMPT).
pub(crate) fn requested_reservation(cdb: &PrOutCdb) -> Result<(Scope, ReservationType), Outcome> {
    let scope = cdb.scope_type.scope();
    let rtype = cdb.scope_type.rtype();
    scope.zip(rtype).ok_or(refuse(Sense::INVALID_FIELD_IN_CDB))
}

/// The basic parameter list (every service action but REGISTER AND MOVE).
#[derive(Clone, Debug)]
pub(crate) struct BasicParams {
    pub key: u64,
    pub sa_key: u64,
    pub spec_i_pt: bool,
    pub all_tg_pt: bool,
    pub aptpl: bool,
    /// The initiator ports named by SPEC_I_PT (empty without it).
    pub initiators: Vec<Initiator>,
}

impl BasicParams {
    pub fn decode(action: PrOutAction, list: &[u8]) -> Result<BasicParams, Outcome> {
        let header = list
            .get(..BASIC_LIST_LEN)
            .ok_or(refuse(Sense::PARAMETER_LIST_LENGTH_ERROR))?;
        let flags = header[20];
        let mut params = BasicParams {
            key: be_u64(&header[0..8]),
            sa_key: be_u64(&header[8..16]),
            spec_i_pt: flags & 0x08 != 0,
            all_tg_pt: flags & 0x04 != 0,
            aptpl: flags & 0x01 != 0,
            initiators: Vec::new(),
        };
        if params.spec_i_pt && action != PrOutAction::Register {
            return Err(refuse(Sense::INVALID_FIELD_IN_PARAMETER_LIST));
        }
        if !params.spec_i_pt {
            if list.len() != BASIC_LIST_LEN {
                return Err(refuse(Sense::PARAMETER_LIST_LENGTH_ERROR));
            }
            return Ok(params);
        }
        let length_field = list
            .get(BASIC_LIST_LEN..SPEC_I_PT_HEADER_LEN)
            .ok_or(refuse(Sense::PARAMETER_LIST_LENGTH_ERROR))?;
        let tid_len = usize::try_from(be_u32(length_field)).unwrap_or(usize::MAX);
        let tids = list
            .get(SPEC_I_PT_HEADER_LEN..)
            .filter(|rest| rest.len() == tid_len)
            .ok_or(refuse(Sense::PARAMETER_LIST_LENGTH_ERROR))?;
        params.initiators = Initiator::parse_list(tids)
            .map_err(|_| refuse(Sense::INVALID_FIELD_IN_PARAMETER_LIST))?;
        Ok(params)
    }
}

/// The REGISTER AND MOVE parameter list.
#[derive(Clone, Debug)]
pub(crate) struct MoveParams {
    pub key: u64,
    pub sa_key: u64,
    pub unreg: bool,
    pub aptpl: bool,
    pub target_port: u16,
    pub initiator: Initiator,
}

impl MoveParams {
    pub fn decode(list: &[u8]) -> Result<MoveParams, Outcome> {
        let header = list
            .get(..BASIC_LIST_LEN)
            .ok_or(refuse(Sense::PARAMETER_LIST_LENGTH_ERROR))?;
        let tid_len = usize::try_from(be_u32(&header[20..24])).unwrap_or(usize::MAX);
        let tid = list
            .get(BASIC_LIST_LEN..)
            .and_then(|rest| rest.get(..tid_len))
            .ok_or(refuse(Sense::PARAMETER_LIST_LENGTH_ERROR))?;
        let (initiator, _) =
            Initiator::parse(tid).map_err(|_| refuse(Sense::INVALID_FIELD_IN_PARAMETER_LIST))?;
        Ok(MoveParams {
            key: be_u64(&header[0..8]),
            sa_key: be_u64(&header[8..16]),
            unreg: header[17] & 0x02 != 0,
            aptpl: header[17] & 0x01 != 0,
            target_port: u16::from_be_bytes([header[18], header[19]]),
            initiator,
        })
    }
}

pub(crate) fn refuse(sense: Sense) -> Outcome {
    Outcome::CheckCondition(sense)
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut out = [0u8; 8];
    for (slot, byte) in out.iter_mut().zip(bytes) {
        *slot = *byte;
    }
    u64::from_be_bytes(out)
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut out = [0u8; 4];
    for (slot, byte) in out.iter_mut().zip(bytes) {
        *slot = *byte;
    }
    u32::from_be_bytes(out)
}
