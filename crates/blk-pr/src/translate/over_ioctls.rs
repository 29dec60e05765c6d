//! SCSI PR over the kernel's block-layer PR operations (`IOC_PR_*`), for block
//! devices that have them but where SG_IO is not the way (device-mapper devices
//! other than multipath maps, drivers with `pr_ops` but no SCSI).
//!
//! | SCSI | kernel |
//! |---|---|
//! | REGISTER, REGISTER AND IGNORE EXISTING KEY | `IOC_PR_REGISTER` (old key, new key, `PR_FL_IGNORE_KEY`) |
//! | RESERVE, RELEASE | `IOC_PR_RESERVE`, `IOC_PR_RELEASE` (key, type) |
//! | PREEMPT, PREEMPT AND ABORT | `IOC_PR_PREEMPT`, `IOC_PR_PREEMPT_ABORT` (own key, preempted key, type) |
//! | CLEAR | `IOC_PR_CLEAR` |
//! | READ KEYS, READ RESERVATION | `IOC_PR_READ_KEYS`, `IOC_PR_READ_RESERVATION` (Linux 6.19 and later) |
//!
//! What the operations cannot carry is refused as a SCSI device without the
//! capability refuses it: SPEC_I_PT and ALL_TG_PT (INVALID FIELD IN PARAMETER LIST),
//! REGISTER AND MOVE, REPLACE LOST RESERVATION, REPORT CAPABILITIES and READ FULL
//! STATUS (INVALID FIELD IN CDB), and READ KEYS / READ RESERVATION on kernels without
//! the read ioctls (INVALID FIELD IN CDB as well). APTPL is not passed on: the
//! kernel's drivers always ask the device to persist through power loss.

use scsi::errno;
use scsi::pr::{
    PrInAction, PrInCdb, PrOutAction, ReadKeys, ReadReservation, Reservation, Scope, ScopeType,
};
use scsi::sense::Sense;

use super::{Answer, decode_out_cdb, decode_params, dispatch, pr_in_data, requested_type};
use crate::block::{HeldReservation, Keys, PrType};
use crate::outcome::ScsiOutcome;

/// `PR_STS_RESERVATION_CONFLICT`, which is also the SCSI status byte older kernels
/// return for it.
pub const PR_STS_RESERVATION_CONFLICT: u32 = 0x18;
/// `PR_STS_IOERR`.
pub const PR_STS_IOERR: u32 = 0x2;
/// `PR_STS_PATH_FAILED`, `PR_STS_PATH_FAST_FAILED`, `PR_STS_RETRY_PATH_FAILURE`.
pub const PR_STS_PATH_FAILURES: [u32; 3] = [0x1_0000, 0xf_0000, 0xe_0000];

/// Why a PR operation did not succeed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PrOpError {
    /// The ioctl failed with this errno.
    Errno(i32),
    /// The ioctl returned this positive device status (`PR_STS_*`).
    Status(u32),
}

/// A block device's PR operations, as the kernel offers them.
pub trait BlockPrOps {
    fn register(
        &mut self,
        old_key: u64,
        new_key: u64,
        ignore_existing: bool,
    ) -> Result<(), PrOpError>;
    fn reserve(&mut self, key: u64, rtype: PrType) -> Result<(), PrOpError>;
    fn release(&mut self, key: u64, rtype: PrType) -> Result<(), PrOpError>;
    fn preempt(
        &mut self,
        own_key: u64,
        preempted_key: u64,
        rtype: PrType,
        abort: bool,
    ) -> Result<(), PrOpError>;
    fn clear(&mut self, key: u64) -> Result<(), PrOpError>;
    fn read_keys(&mut self) -> Result<Keys, PrOpError>;
    fn read_reservation(&mut self) -> Result<Option<HeldReservation>, PrOpError>;
}

/// Executes one SCSI PERSISTENT RESERVE IN or OUT command through the kernel's PR
/// operations.
pub fn execute_scsi_pr_over_ioctls(
    device: &mut impl BlockPrOps,
    cdb: &[u8],
    data_out: &[u8],
) -> ScsiOutcome {
    dispatch(device, cdb, data_out, pr_in, pr_out)
}

/// The SCSI answer to a failed operation; `invalid` is what EINVAL (the kernel's
/// word for ILLEGAL REQUEST with INVALID FIELD IN CDB or PARAMETER LIST from sd)
/// stands for in this command.
pub fn refused(error: PrOpError, invalid: Sense) -> ScsiOutcome {
    match error {
        PrOpError::Status(status) if status & 0xff == PR_STS_RESERVATION_CONFLICT => {
            ScsiOutcome::conflict()
        }
        PrOpError::Status(status) if PR_STS_PATH_FAILURES.contains(&status) => {
            ScsiOutcome::check(Sense::LOGICAL_UNIT_COMMUNICATION_FAILURE)
        }
        PrOpError::Status(_) => ScsiOutcome::check(Sense::INTERNAL_TARGET_FAILURE),
        PrOpError::Errno(errno::EINVAL) => ScsiOutcome::check(invalid),
        // No PR operations on this device (EOPNOTSUPP), or not a block device at all
        // (ENOTTY): the device has no PERSISTENT RESERVE commands.
        PrOpError::Errno(errno::EOPNOTSUPP | errno::ENOTTY) => {
            ScsiOutcome::check(Sense::INVALID_COMMAND_OPERATION_CODE)
        }
        PrOpError::Errno(errno) => ScsiOutcome::transport_failure(errno),
    }
}

/// A read ioctl the kernel does not know (ENOTTY, or EINVAL from kernels that
/// reject unknown block ioctls that way) means the service action is not there.
fn read_refused(error: PrOpError) -> ScsiOutcome {
    match error {
        PrOpError::Errno(errno::ENOTTY | errno::EINVAL) => {
            ScsiOutcome::check(Sense::INVALID_FIELD_IN_CDB)
        }
        other => refused(other, Sense::INVALID_FIELD_IN_CDB),
    }
}

fn pr_in(device: &mut impl BlockPrOps, cdb: &[u8]) -> Answer {
    let cdb = PrInCdb::decode(cdb).map_err(|error| ScsiOutcome::check(error.sense()))?;
    let data = match cdb.action {
        PrInAction::ReadKeys => {
            let keys = device.read_keys().map_err(read_refused)?;
            ReadKeys {
                generation: keys.generation,
                keys: keys.keys,
            }
            .encode()
            .map_err(|_| ScsiOutcome::check(Sense::INTERNAL_TARGET_FAILURE))?
        }
        PrInAction::ReadReservation => {
            let mut data = read_reservation(device.read_reservation().map_err(read_refused)?);
            if data.reservation.is_none() {
                // Without a reservation the kernel's drivers leave the generation 0
                // (sd reads it only from a reservation descriptor); READ KEYS has it.
                if let Ok(keys) = device.read_keys() {
                    data.generation = keys.generation;
                }
            }
            data.encode()
        }
        PrInAction::ReportCapabilities | PrInAction::ReadFullStatus => {
            return Err(ScsiOutcome::check(Sense::INVALID_FIELD_IN_CDB));
        }
    };
    Ok(pr_in_data(data, cdb.allocation_length))
}

/// READ RESERVATION data from what `IOC_PR_READ_RESERVATION` returned.
pub fn read_reservation(held: Option<HeldReservation>) -> ReadReservation {
    match held {
        None => ReadReservation::default(),
        Some(held) => ReadReservation {
            generation: held.generation,
            reservation: held.rtype.map(|rtype| Reservation {
                key: held.key,
                scope_type: ScopeType::new(Scope::LogicalUnit, Some(rtype.into())),
            }),
        },
    }
}

fn pr_out(device: &mut impl BlockPrOps, cdb: &[u8], data_out: &[u8]) -> Answer {
    let cdb = decode_out_cdb(cdb)?;
    let params = decode_params(&cdb, data_out)?;
    if params.all_tg_pt && super::is_register(cdb.action) {
        // The kernel's REGISTER cannot set ALL_TG_PT.
        return Err(ScsiOutcome::check(Sense::INVALID_FIELD_IN_PARAMETER_LIST));
    }
    let done = match cdb.action {
        PrOutAction::Register | PrOutAction::RegisterAndIgnoreExistingKey => device
            .register(
                params.reservation_key,
                params.service_action_key,
                cdb.action == PrOutAction::RegisterAndIgnoreExistingKey,
            )
            .map_err(|e| refused(e, Sense::INVALID_FIELD_IN_PARAMETER_LIST)),
        PrOutAction::Reserve => {
            let rtype = PrType::from(requested_type(&cdb)?);
            device
                .reserve(params.reservation_key, rtype)
                .map_err(|e| refused(e, Sense::INVALID_FIELD_IN_CDB))
        }
        PrOutAction::Release => {
            let rtype = PrType::from(requested_type(&cdb)?);
            device
                .release(params.reservation_key, rtype)
                .map_err(|e| refused(e, Sense::INVALID_RELEASE_OF_PERSISTENT_RESERVATION))
        }
        PrOutAction::Clear => device
            .clear(params.reservation_key)
            .map_err(|e| refused(e, Sense::INVALID_FIELD_IN_PARAMETER_LIST)),
        PrOutAction::Preempt | PrOutAction::PreemptAndAbort => {
            let rtype = PrType::from(requested_type(&cdb)?);
            device
                .preempt(
                    params.reservation_key,
                    params.service_action_key,
                    rtype,
                    cdb.action == PrOutAction::PreemptAndAbort,
                )
                .map_err(|e| refused(e, Sense::INVALID_FIELD_IN_PARAMETER_LIST))
        }
        PrOutAction::RegisterAndMove | PrOutAction::ReplaceLostReservation => {
            Err(ScsiOutcome::check(Sense::INVALID_FIELD_IN_CDB))
        }
    };
    done.map(|()| ScsiOutcome::good(Vec::new()))
}
