//! SCSI persistent-reservation semantics over what a non-SCSI device offers: NVMe
//! reservations ([`over_nvme`]) and the kernel's block-layer PR operations
//! ([`over_ioctls`]). Pure: the device is a trait the caller implements (the ioctl
//! wrappers of this crate, or a model in tests), so every answer here can be checked
//! without a device.
//!
//! Both answer a SCSI CDB and parameter list the way a SCSI device server would:
//! status, the exact sense of every refusal, and the PR IN data cut to the allocation
//! length. What a path cannot express is refused as a SCSI device that lacks the
//! capability refuses it (see the crate README's table).

pub mod over_ioctls;
pub mod over_nvme;

use scsi::pr::{PrOutAction, PrOutCdb, PrOutParams, ReservationType, Scope};
use scsi::sense::Sense;

use crate::outcome::ScsiOutcome;

/// Opcode of PERSISTENT RESERVE IN.
pub const PERSISTENT_RESERVE_IN: u8 = 0x5E;
/// Opcode of PERSISTENT RESERVE OUT.
pub const PERSISTENT_RESERVE_OUT: u8 = 0x5F;

type Refusal = ScsiOutcome;
/// A command's answer: `Err` holds a refusal, which is an answer too.
type Answer = Result<ScsiOutcome, ScsiOutcome>;

/// Sends a PR IN CDB to `pr_in`, a PR OUT CDB to `pr_out`; anything else is INVALID
/// COMMAND OPERATION CODE.
fn dispatch<D>(
    device: &mut D,
    cdb: &[u8],
    data_out: &[u8],
    pr_in: fn(&mut D, &[u8]) -> Answer,
    pr_out: fn(&mut D, &[u8], &[u8]) -> Answer,
) -> ScsiOutcome {
    let answer = match cdb.first() {
        Some(&PERSISTENT_RESERVE_IN) => pr_in(device, cdb),
        Some(&PERSISTENT_RESERVE_OUT) => pr_out(device, cdb, data_out),
        _ => Err(ScsiOutcome::check(Sense::INVALID_COMMAND_OPERATION_CODE)),
    };
    answer.unwrap_or_else(|refusal| refusal)
}

/// The PR OUT CDB; service actions no translation supports (REGISTER AND MOVE needs a
/// TransportID for another initiator, REPLACE LOST RESERVATION a lost reservation,
/// neither of which NVMe or the kernel's operations have) are refused as a device
/// refuses an unsupported service action: INVALID FIELD IN CDB.
fn decode_out_cdb(cdb: &[u8]) -> Result<PrOutCdb, Refusal> {
    let cdb = PrOutCdb::decode(cdb).map_err(|error| ScsiOutcome::check(error.sense()))?;
    match cdb.action {
        PrOutAction::RegisterAndMove | PrOutAction::ReplaceLostReservation => {
            Err(ScsiOutcome::check(Sense::INVALID_FIELD_IN_CDB))
        }
        _ => Ok(cdb),
    }
}

/// The parameter list the CDB's PARAMETER LIST LENGTH names, decoded: too few bytes,
/// PARAMETER LIST LENGTH ERROR; SPEC_I_PT (these paths cannot register another
/// initiator: SIP_C is 0), INVALID FIELD IN PARAMETER LIST, checked before the length
/// of what would follow; then the exact length SPC requires.
fn decode_params(cdb: &PrOutCdb, data_out: &[u8]) -> Result<PrOutParams, Refusal> {
    let len = usize::try_from(cdb.parameter_list_length).unwrap_or(usize::MAX);
    let list = data_out
        .get(..len)
        .ok_or(ScsiOutcome::check(Sense::PARAMETER_LIST_LENGTH_ERROR))?;
    let header = PrOutParams::decode_header(list).map_err(|e| ScsiOutcome::check(e.sense()))?;
    if header.spec_i_pt {
        return Err(ScsiOutcome::check(Sense::INVALID_FIELD_IN_PARAMETER_LIST));
    }
    PrOutParams::decode(list).map_err(|e| ScsiOutcome::check(e.sense()))
}

/// The reservation the SCOPE and TYPE fields ask for: an unknown scope or type is
/// INVALID FIELD IN CDB.
fn requested_type(cdb: &PrOutCdb) -> Result<ReservationType, Refusal> {
    match (cdb.scope_type.scope(), cdb.scope_type.rtype()) {
        (Some(Scope::LogicalUnit), Some(rtype)) => Ok(rtype),
        _ => Err(ScsiOutcome::check(Sense::INVALID_FIELD_IN_CDB)),
    }
}

/// PR IN data cut to the allocation length.
fn pr_in_data(mut data: Vec<u8>, allocation_length: u16) -> ScsiOutcome {
    data.truncate(usize::from(allocation_length));
    ScsiOutcome::good(data)
}

fn is_register(action: PrOutAction) -> bool {
    matches!(
        action,
        PrOutAction::Register | PrOutAction::RegisterAndIgnoreExistingKey
    )
}
