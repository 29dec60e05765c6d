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
/// errno (EDOM, EBADE, ENOMEM/EREMOTEIO/ENODEV, ENODATA, ENOMEDIUM, EINVAL, ENOSPC,
/// other; QEMU 10.1 and later's table, see [`map_errno`]), then host
/// status (connect/busy/timeout and driver timeout => BUSY, any other non-zero =>
/// I_T NEXUS LOSS, never GOOD), then a non-zero SCSI status as is, then the driver
/// SENSE flag, else GOOD.
///
/// The driver status is read as the kernel header defines it: the low nibble is a
/// driver code (TIMEOUT is the code 6), the high nibble suggestion flags. Kernels
/// only report the codes 0, TIMEOUT and SENSE there.
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

/// The errno table of QEMU's `scsi_sense_from_errno` (scsi/utils.c) as it stands
/// since 10.1, checked row by row against a copy of that file with 10.1's ENODEV
/// case. Since 10.1 ENODEV (a device that went away, e.g. a hot-removed
/// LUN) is a HARDWARE ERROR, not the generic ABORTED COMMAND that tells a guest to
/// retry; ENOMEDIUM has been NOT READY / MEDIUM NOT PRESENT since the table appeared.
fn map_errno(err: i32) -> CommandResult {
    match err {
        errno::EDOM => CommandResult::plain(Status::TASK_SET_FULL),
        errno::EBADE => CommandResult::plain(Status::RESERVATION_CONFLICT),
        errno::ENOMEM | errno::EREMOTEIO | errno::ENODEV => {
            CommandResult::check_condition(Sense::TARGET_FAILURE)
        }
        errno::ENODATA => CommandResult::check_condition(Sense::READ_ERROR),
        errno::ENOMEDIUM => CommandResult::check_condition(Sense::NO_MEDIUM),
        errno::EINVAL => CommandResult::check_condition(Sense::INVALID_FIELD),
        errno::ENOSPC => CommandResult::check_condition(Sense::SPACE_ALLOC_FAILED),
        _ => CommandResult::check_condition(Sense::IO_ERROR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(err: i32) -> SgIoOutcome {
        SgIoOutcome {
            errno: Some(err),
            ..SgIoOutcome::default()
        }
    }

    fn completed(host_status: u16, driver_status: u16, scsi_status: u8) -> SgIoOutcome {
        SgIoOutcome {
            errno: None,
            host_status,
            driver_status,
            scsi_status,
        }
    }

    fn check(sense: Sense) -> CommandResult {
        CommandResult {
            status: Status::CHECK_CONDITION,
            synthesized_sense: Some(sense),
        }
    }

    fn plain(status: Status) -> CommandResult {
        CommandResult {
            status,
            synthesized_sense: None,
        }
    }

    /// One test per row of QEMU's errno table since 10.1 (`scsi_sense_from_errno` in
    /// its scsi/utils.c), checked against that source: the status, and the fixed
    /// sense bytes when the helper makes them up.
    fn assert_errno(err: i32, expected: CommandResult) {
        assert_eq!(
            map_sg_io_outcome(&failed(err)),
            expected,
            "errno {err} ({:?})",
            errno::name(err)
        );
    }

    #[test]
    fn edom_is_task_set_full() {
        assert_errno(errno::EDOM, plain(Status::TASK_SET_FULL));
        assert_eq!(Status::TASK_SET_FULL.0, 0x28);
    }

    #[test]
    fn ebade_is_reservation_conflict() {
        assert_errno(errno::EBADE, plain(Status::RESERVATION_CONFLICT));
        assert_eq!(Status::RESERVATION_CONFLICT.0, 0x18);
    }

    #[test]
    fn enodev_is_internal_target_failure_since_qemu_10_1() {
        assert_errno(errno::ENODEV, check(Sense::new(0x04, 0x44, 0x00)));
    }

    #[test]
    fn eremoteio_is_internal_target_failure() {
        assert_errno(errno::EREMOTEIO, check(Sense::new(0x04, 0x44, 0x00)));
    }

    #[test]
    fn enomem_is_internal_target_failure() {
        assert_errno(errno::ENOMEM, check(Sense::new(0x04, 0x44, 0x00)));
    }

    #[test]
    fn enodata_is_unrecovered_read_error() {
        assert_errno(errno::ENODATA, check(Sense::new(0x03, 0x11, 0x00)));
    }

    #[test]
    fn enomedium_is_medium_not_present() {
        assert_errno(errno::ENOMEDIUM, check(Sense::new(0x02, 0x3A, 0x00)));
    }

    #[test]
    fn einval_is_invalid_field_in_cdb() {
        assert_errno(errno::EINVAL, check(Sense::new(0x05, 0x24, 0x00)));
    }

    #[test]
    fn enospc_is_space_allocation_failed() {
        assert_errno(errno::ENOSPC, check(Sense::new(0x07, 0x27, 0x07)));
    }

    #[test]
    fn any_other_errno_is_io_process_terminated() {
        for err in [
            errno::ENOTTY,
            errno::EIO,
            errno::EPERM,
            errno::EACCES,
            errno::ENXIO,
            errno::EBUSY,
            errno::ETIMEDOUT,
            -1,
        ] {
            assert_errno(err, check(Sense::new(0x0B, 0x00, 0x06)));
        }
    }

    #[test]
    fn errno_wins_over_every_status_field() {
        let outcome = SgIoOutcome {
            errno: Some(errno::EBADE),
            host_status: host::DID_TIME_OUT,
            driver_status: driver::DRIVER_SENSE,
            scsi_status: Status::CHECK_CONDITION.0,
        };
        assert_eq!(
            map_sg_io_outcome(&outcome),
            plain(Status::RESERVATION_CONFLICT)
        );
    }

    #[test]
    fn errno_zero_counts_as_success() {
        let outcome = SgIoOutcome {
            errno: Some(0),
            ..SgIoOutcome::default()
        };
        assert_eq!(map_sg_io_outcome(&outcome), plain(Status::GOOD));
    }

    #[test]
    fn transport_trouble_is_busy() {
        for host_status in [host::DID_NO_CONNECT, host::DID_BUS_BUSY, host::DID_TIME_OUT] {
            let mapped = map_sg_io_outcome(&completed(host_status, 0, 0x02));
            assert_eq!(mapped, plain(Status::BUSY), "host {host_status}");
        }
        assert_eq!(
            map_sg_io_outcome(&completed(0, driver::DRIVER_TIMEOUT, 0)),
            plain(Status::BUSY)
        );
        // The suggestion bits of the high nibble do not hide the driver code.
        assert_eq!(
            map_sg_io_outcome(&completed(0, 0x26, 0)),
            plain(Status::BUSY)
        );
        // A driver timeout beats an unknown host status.
        let mapped = map_sg_io_outcome(&completed(host::DID_ERROR, driver::DRIVER_TIMEOUT, 0));
        assert_eq!(mapped, plain(Status::BUSY));
    }

    #[test]
    fn any_other_host_status_is_nexus_loss_never_good() {
        for host_status in [
            host::DID_BAD_TARGET,
            host::DID_ABORT,
            host::DID_ERROR,
            host::DID_RESET,
            0x0B,
            0xFFFF,
        ] {
            let mapped = map_sg_io_outcome(&completed(host_status, 0, 0));
            assert_eq!(
                mapped,
                check(Sense::new(0x0B, 0x29, 0x07)),
                "host {host_status}"
            );
        }
    }

    #[test]
    fn device_status_passes_through_with_its_sense() {
        let cases = [
            Status::CHECK_CONDITION,
            Status::RESERVATION_CONFLICT,
            Status::BUSY,
            Status(0x7E),
        ];
        for status in cases {
            assert_eq!(
                map_sg_io_outcome(&completed(0, driver::DRIVER_SENSE, status.0)),
                plain(status)
            );
        }
    }

    #[test]
    fn driver_sense_flag_alone_is_check_condition() {
        let mapped = map_sg_io_outcome(&completed(0, driver::DRIVER_SENSE, 0));
        assert_eq!(mapped, plain(Status::CHECK_CONDITION));
    }

    #[test]
    fn clean_completion_is_good() {
        assert_eq!(map_sg_io_outcome(&completed(0, 0, 0)), plain(Status::GOOD));
        assert_eq!(
            map_sg_io_outcome(&completed(0, 0x10, 0)),
            plain(Status::GOOD)
        );
    }
}
