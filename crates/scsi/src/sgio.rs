//! Turning the outcome of one `SG_IO` ioctl into the SCSI status and sense a
//! persistent-reservation helper reports, exactly as `protocol.md` ("Mapping the
//! ioctl outcome to a status") lists it. Pure: the caller runs the ioctl.

use crate::errno;
use crate::sense::Sense;
use crate::status::Status;

/// `host_status` values of `sg_io_hdr` (the SCSI midlayer's DID_* codes).
pub mod host {
    pub const DID_OK: u16 = 0x00;
    pub const DID_NO_CONNECT: u16 = 0x01;
    pub const DID_BUS_BUSY: u16 = 0x02;
    pub const DID_TIME_OUT: u16 = 0x03;
    pub const DID_BAD_TARGET: u16 = 0x04;
    pub const DID_ABORT: u16 = 0x05;
    pub const DID_PARITY: u16 = 0x06;
    pub const DID_ERROR: u16 = 0x07;
    pub const DID_RESET: u16 = 0x08;
}

/// `driver_status` values of `sg_io_hdr`; the low nibble is the driver code and the
/// high nibble carries suggestion flags, hence the mask.
pub mod driver {
    pub const DRIVER_OK: u16 = 0x00;
    pub const DRIVER_TIMEOUT: u16 = 0x06;
    pub const DRIVER_SENSE: u16 = 0x08;
    pub const DRIVER_STATUS_MASK: u16 = 0x0f;
}

/// What one `SG_IO` call produced.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct SgIoOutcome {
    /// The errno of a failed ioctl, `None` when the ioctl returned 0 (`Some(0)` is
    /// treated the same way).
    pub errno: Option<i32>,
    /// `sg_io_hdr.host_status`.
    pub host_status: u16,
    /// `sg_io_hdr.driver_status`.
    pub driver_status: u16,
    /// `sg_io_hdr.status`, the device's SCSI status byte.
    pub scsi_status: u8,
}

/// The status to report and, when the helper must make sense up itself, that sense
/// (to be sent in fixed format, see [`Sense::fixed_bytes`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CommandResult {
    pub status: Status,
    /// `Some`: send this sense. `None`: pass through whatever sense the device
    /// returned (possibly none, e.g. for GOOD or BUSY).
    pub synthesized_sense: Option<Sense>,
}

impl CommandResult {
    const fn plain(status: Status) -> CommandResult {
        CommandResult {
            status,
            synthesized_sense: None,
        }
    }

    const fn check_condition(sense: Sense) -> CommandResult {
        CommandResult {
            status: Status::CHECK_CONDITION,
            synthesized_sense: Some(sense),
        }
    }
}

/// Maps an ioctl outcome to a status, first matching rule wins:
/// errno (EDOM, EBADE, ENOMEM/EREMOTEIO, ENODATA, EINVAL, ENOSPC, other), then host
/// status (connect/busy/timeout and driver timeout => BUSY, any other non-zero =>
/// I_T NEXUS LOSS, never GOOD), then a non-zero SCSI status as is, then the driver
/// SENSE flag, else GOOD.
pub fn map_sg_io_outcome(outcome: &SgIoOutcome) -> CommandResult {
    if let Some(err) = outcome.errno.filter(|&e| e != 0) {
        return map_errno(err);
    }
    let driver_code = outcome.driver_status & driver::DRIVER_STATUS_MASK;
    match outcome.host_status {
        host::DID_NO_CONNECT | host::DID_BUS_BUSY | host::DID_TIME_OUT => {
            return CommandResult::plain(Status::BUSY);
        }
        _ if driver_code == driver::DRIVER_TIMEOUT => {
            return CommandResult::plain(Status::BUSY);
        }
        host::DID_OK => {}
        _ => return CommandResult::check_condition(Sense::I_T_NEXUS_LOSS),
    }
    if outcome.scsi_status != 0 {
        return CommandResult::plain(Status(outcome.scsi_status));
    }
    if driver_code & driver::DRIVER_SENSE != 0 {
        return CommandResult::plain(Status::CHECK_CONDITION);
    }
    CommandResult::plain(Status::GOOD)
}

fn map_errno(err: i32) -> CommandResult {
    match err {
        errno::EDOM => CommandResult::plain(Status::TASK_SET_FULL),
        errno::EBADE => CommandResult::plain(Status::RESERVATION_CONFLICT),
        errno::ENOMEM | errno::EREMOTEIO => CommandResult::check_condition(Sense::TARGET_FAILURE),
        errno::ENODATA => CommandResult::check_condition(Sense::READ_ERROR),
        errno::EINVAL => CommandResult::check_condition(Sense::INVALID_FIELD),
        errno::ENOSPC => CommandResult::check_condition(Sense::SPACE_ALLOC_FAILED),
        _ => CommandResult::check_condition(Sense::IO_ERROR),
    }
}
