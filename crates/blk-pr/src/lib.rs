#![doc = include_str!("../README.md")]
// Only `sys` may hold `unsafe` (its ioctls); everything else is checked safe code.
#![deny(unsafe_code)]

mod block;
mod error;
pub mod model;
mod namespace;
pub mod nvme;
mod outcome;
#[allow(unsafe_code)]
mod sys;
pub mod translate;

use std::os::fd::BorrowedFd;

pub use block::{BlockDevice, HeldReservation, Keys, PR_KEYS_MAX, PrType};
pub use error::BlkPrError;
pub use namespace::NvmeNamespace;
pub use outcome::ScsiOutcome;
pub use sys::numbers as ioctl_numbers;
pub use translate::over_ioctls::{BlockPrOps, PrOpError, execute_scsi_pr_over_ioctls};
pub use translate::over_nvme::{NvmeError, NvmeReservations, execute_scsi_pr_over_nvme};

/// Which way a descriptor's persistent reservations go.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PrPath {
    /// An NVMe namespace: NVMe reservation commands through the passthrough.
    Nvme { nsid: u32 },
    /// Anything else: the kernel's block-layer PR ioctls.
    BlockIoctls,
}

/// Tells an NVMe namespace (`NVME_IOCTL_ID` answers) from any other descriptor. One
/// ioctl, no I/O to the device.
pub fn probe(fd: BorrowedFd<'_>) -> PrPath {
    match NvmeNamespace::open(fd) {
        Ok(namespace) => PrPath::Nvme {
            nsid: namespace.nsid(),
        },
        Err(_) => PrPath::BlockIoctls,
    }
}

/// Executes one SCSI PERSISTENT RESERVE IN or OUT command (`cdb` as received, 10
/// bytes or zero-padded to 16; `data_out` the PR OUT parameter list, empty for PR IN)
/// on `fd`, and answers as a SCSI device would. Never fails: refusals and ioctl
/// failures are a status and sense.
pub fn execute_scsi_pr(fd: BorrowedFd<'_>, cdb: &[u8], data_out: &[u8]) -> ScsiOutcome {
    execute_scsi_pr_on(fd, probe(fd), cdb, data_out)
}

/// [`execute_scsi_pr`] with the path already known (e.g. cached per descriptor).
///
/// A descriptor that is neither an NVMe namespace nor a block device (a regular
/// file, a pipe) gets no ioctl: ABORTED COMMAND, I/O PROCESS TERMINATED (0B/00/06),
/// the answer of a PR helper whose ioctl fails with ENOTTY there.
pub fn execute_scsi_pr_on(
    fd: BorrowedFd<'_>,
    path: PrPath,
    cdb: &[u8],
    data_out: &[u8],
) -> ScsiOutcome {
    if path == PrPath::BlockIoctls && !block::is_block_device(fd) {
        return ScsiOutcome::transport_failure(scsi::errno::ENOTTY);
    }
    match path {
        PrPath::Nvme { .. } => match NvmeNamespace::open(fd) {
            Ok(mut namespace) => execute_scsi_pr_over_nvme(&mut namespace, cdb, data_out),
            // The descriptor is no NVMe namespace after all: the block path answers.
            Err(_) => execute_scsi_pr_over_ioctls(&mut BlockDevice::new(fd), cdb, data_out),
        },
        PrPath::BlockIoctls => {
            execute_scsi_pr_over_ioctls(&mut BlockDevice::new(fd), cdb, data_out)
        }
    }
}

/// Every registered key, by whichever read path the device and kernel have:
/// `IOC_PR_READ_KEYS` (Linux 6.19 and later), else, on an NVMe namespace, the
/// Reservation Report. Neither: [`BlkPrError::NoReadPath`].
pub fn read_keys(fd: BorrowedFd<'_>) -> Result<Keys, BlkPrError> {
    match BlockDevice::new(fd).read_keys() {
        Err(BlkPrError::NoReadPath { op, errno }) => {
            let Ok(namespace) = NvmeNamespace::open(fd) else {
                return Err(BlkPrError::NoReadPath { op, errno });
            };
            let status = namespace.report()?;
            Ok(Keys {
                generation: status.generation,
                keys: status.hosts().iter().map(|r| r.key).collect(),
            })
        }
        other => other,
    }
}

/// The reservation, by whichever read path the device and kernel have (see
/// [`read_keys`]). `rtype` is `None` when none is held (the generation then comes
/// from `IOC_PR_READ_KEYS`: the read-reservation ioctl reports 0 without a
/// reservation).
pub fn read_reservation(fd: BorrowedFd<'_>) -> Result<HeldReservation, BlkPrError> {
    match BlockDevice::new(fd).read_reservation() {
        // No reservation: the kernel's drivers leave the generation 0; READ KEYS has it.
        Ok(held) if held.rtype.is_none() => Ok(HeldReservation {
            generation: BlockDevice::new(fd)
                .read_keys()
                .map_or(held.generation, |keys| keys.generation),
            ..held
        }),
        Err(BlkPrError::NoReadPath { op, errno }) => {
            let Ok(namespace) = NvmeNamespace::open(fd) else {
                return Err(BlkPrError::NoReadPath { op, errno });
            };
            let status = namespace.report()?;
            let data = translate::over_nvme::read_reservation(&status);
            Ok(HeldReservation {
                generation: status.generation,
                key: data.reservation.map_or(0, |r| r.key),
                rtype: status
                    .rtype
                    .and_then(|t| PrType::from_code(u32::from(t.code()))),
            })
        }
        other => other,
    }
}
