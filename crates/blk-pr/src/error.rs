//! Errors of the typed ioctl API: each names the step that failed and what to do.

use scsi::errno;
use thiserror::Error;

use crate::nvme::{NvmeStatus, ReportDecodeError};
use crate::translate::over_ioctls::{PR_STS_RESERVATION_CONFLICT, PrOpError};
use crate::translate::over_nvme::NvmeError;

/// Why a PR ioctl or NVMe passthrough command failed.
#[derive(Debug, Error)]
pub enum BlkPrError {
    #[error(
        "{op}: the device's driver has no persistent reservation operations (EOPNOTSUPP); \
         use a SCSI disk, a device-mapper map over one, or an NVMe namespace"
    )]
    NotSupported { op: &'static str },
    #[error(
        "{op}: not a block device (ENOTTY); give the disk's block device (/dev/sdX, \
         /dev/dm-N, /dev/nvmeXnY)"
    )]
    NotABlockDevice { op: &'static str },
    #[error(
        "{op}: this kernel cannot read reservations through the block layer \
         ({errno_name}); Linux 6.19 added IOC_PR_READ_KEYS and IOC_PR_READ_RESERVATION. \
         On an NVMe namespace the Reservation Report passthrough answers instead; on a \
         SCSI disk use SG_IO",
        errno_name = errno::name(*errno).unwrap_or("unknown errno")
    )]
    NoReadPath { op: &'static str, errno: i32 },
    #[error(
        "{op}: not an NVMe namespace (NVME_IOCTL_ID failed: {source}); the NVMe \
         passthrough needs /dev/nvmeXnY or /dev/ngXnY"
    )]
    NotNvme {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{op}: permission denied ({errno_name}); the kernel allows PR operations on \
         whole devices only (not partitions), opened read-write or by a CAP_SYS_ADMIN \
         process",
        errno_name = errno::name(*errno).unwrap_or("unknown errno")
    )]
    PermissionDenied { op: &'static str, errno: i32 },
    #[error(
        "{op}: RESERVATION CONFLICT (another initiator holds the reservation, or the key is not this one's)"
    )]
    ReservationConflict { op: &'static str },
    #[error("{op}: the device answered with status 0x{status:x}")]
    DeviceStatus { op: &'static str, status: u32 },
    #[error("{op}: the NVMe controller answered {status}")]
    Nvme {
        op: &'static str,
        status: NvmeStatus,
    },
    #[error("{op}: the device's data does not decode")]
    Malformed {
        op: &'static str,
        #[source]
        source: ReportDecodeError,
    },
    #[error("{op} failed")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl BlkPrError {
    /// The error of a PR ioctl named `op`.
    pub(crate) fn from_op(op: &'static str, error: PrOpError) -> BlkPrError {
        match error {
            PrOpError::Status(status) if status & 0xff == PR_STS_RESERVATION_CONFLICT => {
                BlkPrError::ReservationConflict { op }
            }
            PrOpError::Status(status) => BlkPrError::DeviceStatus { op, status },
            PrOpError::Errno(code) => BlkPrError::from_errno(op, code),
        }
    }

    /// The error of an NVMe command named `op`.
    pub(crate) fn from_nvme(op: &'static str, error: NvmeError) -> BlkPrError {
        match error {
            NvmeError::Status(status) if status.code() == NvmeStatus::RESERVATION_CONFLICT => {
                BlkPrError::ReservationConflict { op }
            }
            NvmeError::Status(status) => BlkPrError::Nvme { op, status },
            NvmeError::Errno(code) => BlkPrError::from_errno(op, code),
            NvmeError::Malformed(source) => BlkPrError::Malformed { op, source },
        }
    }

    pub(crate) fn from_errno(op: &'static str, code: i32) -> BlkPrError {
        match code {
            errno::EOPNOTSUPP => BlkPrError::NotSupported { op },
            errno::ENOTTY => BlkPrError::NotABlockDevice { op },
            errno::EPERM | errno::EACCES => BlkPrError::PermissionDenied { op, errno: code },
            _ => BlkPrError::Io {
                op,
                source: std::io::Error::from_raw_os_error(code),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_step_and_the_fix() {
        let missing = BlkPrError::NoReadPath {
            op: "IOC_PR_READ_KEYS",
            errno: errno::ENOTTY,
        };
        let text = missing.to_string();
        assert!(text.starts_with("IOC_PR_READ_KEYS: "), "{text}");
        assert!(
            text.contains("ENOTTY") && text.contains("Linux 6.19"),
            "{text}"
        );
        let unsupported = BlkPrError::from_errno("IOC_PR_REGISTER", errno::EOPNOTSUPP);
        assert!(
            unsupported
                .to_string()
                .contains("no persistent reservation operations")
        );
        let denied = BlkPrError::from_errno("IOC_PR_RESERVE", errno::EPERM);
        assert!(denied.to_string().contains("CAP_SYS_ADMIN"));
        let conflict = BlkPrError::from_op("IOC_PR_RESERVE", PrOpError::Status(0x18));
        assert!(matches!(conflict, BlkPrError::ReservationConflict { .. }));
        let nvme = BlkPrError::from_nvme(
            "Reservation Acquire",
            NvmeError::Status(NvmeStatus::INVALID_FIELD),
        );
        assert!(nvme.to_string().contains("Invalid Field in Command"));
    }
}
