//! Decoding the PERSISTENT RESERVE OUT CDB and parameter lists into checked values.
//!
//! Every refusal here is the sense SPC-4 prescribes for that field.

use crate::outcome::Outcome;
use scsi::pr::{
    PrOutAction, PrOutCdb, PrOutParams, RegisterMoveParams, ReservationType, Scope, TransportId,
};
use scsi::sense::Sense;

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

/// The basic parameter list (every service action but REGISTER AND MOVE), with the
/// target's own rules on top of the wire format: SPEC_I_PT only with REGISTER (checked
/// before the length of the rest), and only TransportIDs a registration can hold.
pub(crate) fn decode_basic(action: PrOutAction, list: &[u8]) -> Result<PrOutParams, Outcome> {
    let header = PrOutParams::decode_header(list).map_err(|error| refuse(error.sense()))?;
    if header.spec_i_pt && action != PrOutAction::Register {
        return Err(refuse(Sense::INVALID_FIELD_IN_PARAMETER_LIST));
    }
    let params = PrOutParams::decode(list).map_err(|error| refuse(error.sense()))?;
    if !params.transport_ids.iter().all(registrable) {
        return Err(refuse(Sense::INVALID_FIELD_IN_PARAMETER_LIST));
    }
    Ok(params)
}

/// The REGISTER AND MOVE parameter list; its TransportID must name a registrable port.
pub(crate) fn decode_move(list: &[u8]) -> Result<RegisterMoveParams, Outcome> {
    let params = RegisterMoveParams::decode(list).map_err(|error| refuse(error.sense()))?;
    if !registrable(&params.transport_id) {
        return Err(refuse(Sense::INVALID_FIELD_IN_PARAMETER_LIST));
    }
    Ok(params)
}

/// An initiator port a registration can name: an iSCSI name is never empty, and the
/// TransportID can be written back (READ FULL STATUS reports it).
fn registrable(id: &TransportId) -> bool {
    let named = !matches!(id, TransportId::Iscsi { name, .. } if name.is_empty());
    named && id.to_bytes().is_ok()
}

pub(crate) fn refuse(sense: Sense) -> Outcome {
    Outcome::CheckCondition(sense)
}
