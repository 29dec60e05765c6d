//! The kernel's block-layer persistent-reservation ioctls, typed: any block device
//! whose driver has PR operations (sd, device-mapper, nvme).

use std::io;
use std::os::fd::BorrowedFd;

use scsi::errno;
use scsi::pr::ReservationType;

use crate::error::BlkPrError;
use crate::nvme::NvmeReservationType;
use crate::sys;
use crate::translate::over_ioctls::{BlockPrOps, PrOpError};

/// Most keys `IOC_PR_READ_KEYS` returns (`PR_KEYS_MAX`): a larger capacity is
/// refused with EINVAL.
pub const PR_KEYS_MAX: u32 = 1 << 16;

/// `PR_FL_IGNORE_KEY`.
const PR_FL_IGNORE_KEY: u32 = 1;

/// The kernel's reservation types (`enum pr_type`), numbered as NVMe numbers them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PrType {
    WriteExclusive = 1,
    ExclusiveAccess = 2,
    WriteExclusiveRegOnly = 3,
    ExclusiveAccessRegOnly = 4,
    WriteExclusiveAllRegs = 5,
    ExclusiveAccessAllRegs = 6,
}

impl PrType {
    pub const fn code(self) -> u32 {
        self as u32
    }

    pub const fn from_code(code: u32) -> Option<PrType> {
        Some(match code {
            1 => PrType::WriteExclusive,
            2 => PrType::ExclusiveAccess,
            3 => PrType::WriteExclusiveRegOnly,
            4 => PrType::ExclusiveAccessRegOnly,
            5 => PrType::WriteExclusiveAllRegs,
            6 => PrType::ExclusiveAccessAllRegs,
            _ => return None,
        })
    }
}

/// The kernel numbers the types as NVMe does: through [`NvmeReservationType`].
impl From<ReservationType> for PrType {
    fn from(rtype: ReservationType) -> PrType {
        let code = NvmeReservationType::from(rtype).code();
        PrType::from_code(u32::from(code)).unwrap_or(PrType::WriteExclusive)
    }
}

impl From<PrType> for ReservationType {
    fn from(rtype: PrType) -> ReservationType {
        let code = u8::try_from(rtype.code()).unwrap_or(1);
        NvmeReservationType::from_code(code).map_or(ReservationType::WriteExclusive, Into::into)
    }
}

/// What `IOC_PR_READ_KEYS` returned.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Keys {
    pub generation: u32,
    pub keys: Vec<u64>,
}

/// What `IOC_PR_READ_RESERVATION` returned.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HeldReservation {
    pub generation: u32,
    /// The holder's key (0 under the all-registrants types on SCSI devices).
    pub key: u64,
    /// `None` when no reservation is held (type 0).
    pub rtype: Option<PrType>,
}

/// The outcome of one PR ioctl as the translation sees it.
fn op_result(result: io::Result<sys::IoctlReturn>) -> Result<(), PrOpError> {
    match result {
        Ok(0) => Ok(()),
        Ok(status) => Err(PrOpError::Status(status.unsigned_abs())),
        Err(error) => Err(PrOpError::Errno(error.raw_os_error().unwrap_or(errno::EIO))),
    }
}

/// A block device descriptor, for its PR ioctls.
#[derive(Clone, Copy, Debug)]
pub struct BlockDevice<'fd> {
    fd: BorrowedFd<'fd>,
}

impl<'fd> BlockDevice<'fd> {
    pub fn new(fd: BorrowedFd<'fd>) -> BlockDevice<'fd> {
        BlockDevice { fd }
    }

    /// `IOC_PR_REGISTER`: registers `new_key` (0 unregisters) in place of `old_key`.
    pub fn register(
        &self,
        old_key: u64,
        new_key: u64,
        ignore_existing: bool,
    ) -> Result<(), BlkPrError> {
        let result = BlockPrOps::register(&mut { *self }, old_key, new_key, ignore_existing);
        checked("IOC_PR_REGISTER", result)
    }

    /// `IOC_PR_RESERVE`.
    pub fn reserve(&self, key: u64, rtype: PrType) -> Result<(), BlkPrError> {
        checked(
            "IOC_PR_RESERVE",
            BlockPrOps::reserve(&mut { *self }, key, rtype),
        )
    }

    /// `IOC_PR_RELEASE`.
    pub fn release(&self, key: u64, rtype: PrType) -> Result<(), BlkPrError> {
        checked(
            "IOC_PR_RELEASE",
            BlockPrOps::release(&mut { *self }, key, rtype),
        )
    }

    /// `IOC_PR_PREEMPT` or, with `abort`, `IOC_PR_PREEMPT_ABORT`: with `own_key`,
    /// removes the registrations of `preempted_key` and takes a `rtype` reservation.
    pub fn preempt(
        &self,
        own_key: u64,
        preempted_key: u64,
        rtype: PrType,
        abort: bool,
    ) -> Result<(), BlkPrError> {
        let name = if abort {
            "IOC_PR_PREEMPT_ABORT"
        } else {
            "IOC_PR_PREEMPT"
        };
        let result = BlockPrOps::preempt(&mut { *self }, own_key, preempted_key, rtype, abort);
        checked(name, result)
    }

    /// `IOC_PR_CLEAR`.
    pub fn clear(&self, key: u64) -> Result<(), BlkPrError> {
        checked("IOC_PR_CLEAR", BlockPrOps::clear(&mut { *self }, key))
    }

    /// `IOC_PR_READ_KEYS` (Linux 6.19 and later), every key: the buffer grows to what
    /// the device reports, up to [`PR_KEYS_MAX`].
    pub fn read_keys(&self) -> Result<Keys, BlkPrError> {
        self.read_keys_raw()
            .map_err(|error| self.read_error("IOC_PR_READ_KEYS", error))
    }

    fn read_keys_raw(&self) -> Result<Keys, PrOpError> {
        let mut capacity: u32 = 32;
        loop {
            let mut keys = vec![0u64; capacity as usize];
            let (arg, rc) = sys::pr_read_keys(self.fd, &mut keys)
                .map_err(|e| PrOpError::Errno(e.raw_os_error().unwrap_or(errno::EIO)))?;
            if rc != 0 {
                return Err(PrOpError::Status(rc.unsigned_abs()));
            }
            if arg.num_keys <= capacity {
                keys.truncate(arg.num_keys as usize);
                return Ok(Keys {
                    generation: arg.generation,
                    keys,
                });
            }
            if capacity >= PR_KEYS_MAX {
                // The device has more keys than the kernel hands out: what fitted.
                return Ok(Keys {
                    generation: arg.generation,
                    keys,
                });
            }
            capacity = arg.num_keys.min(PR_KEYS_MAX);
        }
    }

    /// `IOC_PR_READ_RESERVATION` (Linux 6.19 and later).
    pub fn read_reservation(&self) -> Result<HeldReservation, BlkPrError> {
        self.read_reservation_raw()
            .map_err(|error| self.read_error("IOC_PR_READ_RESERVATION", error))
    }

    fn read_reservation_raw(&self) -> Result<HeldReservation, PrOpError> {
        let (arg, rc) = sys::pr_read_reservation(self.fd)
            .map_err(|e| PrOpError::Errno(e.raw_os_error().unwrap_or(errno::EIO)))?;
        if rc != 0 {
            return Err(PrOpError::Status(rc.unsigned_abs()));
        }
        Ok(HeldReservation {
            generation: arg.generation,
            key: arg.key,
            rtype: PrType::from_code(arg.rtype),
        })
    }
}

fn checked(op: &'static str, result: Result<(), PrOpError>) -> Result<(), BlkPrError> {
    result.map_err(|error| BlkPrError::from_op(op, error))
}

/// Whether `fd` is a block device (`fstat`); `false` when that cannot be told.
pub(crate) fn is_block_device(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstat(fd)
        .is_ok_and(|stat| rustix::fs::FileType::from_raw_mode(stat.st_mode).is_block_device())
}

impl BlockDevice<'_> {
    /// A read ioctl's failure: ENOTTY and EINVAL on a block device mean the kernel
    /// predates the ioctl; ENOTTY on anything else that it is no block device.
    fn read_error(&self, op: &'static str, error: PrOpError) -> BlkPrError {
        match error {
            PrOpError::Errno(code @ (errno::ENOTTY | errno::EINVAL))
                if is_block_device(self.fd) =>
            {
                BlkPrError::NoReadPath { op, errno: code }
            }
            other => BlkPrError::from_op(op, other),
        }
    }
}

impl BlockPrOps for BlockDevice<'_> {
    /// Unregistering (new key 0) is refused with EINVAL on an NVMe namespace: the
    /// kernel's NVMe driver would send it as Replace with key 0, a registration.
    fn register(&mut self, old_key: u64, new_key: u64, ignore: bool) -> Result<(), PrOpError> {
        if new_key == 0 && sys::nvme_namespace_id(self.fd).is_ok() {
            return Err(PrOpError::Errno(errno::EINVAL));
        }
        let arg = sys::PrRegistration {
            old_key,
            new_key,
            flags: if ignore { PR_FL_IGNORE_KEY } else { 0 },
            pad: 0,
        };
        op_result(sys::pr_register(self.fd, &arg))
    }

    fn reserve(&mut self, key: u64, rtype: PrType) -> Result<(), PrOpError> {
        let arg = sys::PrReservation {
            key,
            rtype: rtype.code(),
            flags: 0,
        };
        op_result(sys::pr_reserve_or_release(self.fd, &arg, false))
    }

    fn release(&mut self, key: u64, rtype: PrType) -> Result<(), PrOpError> {
        let arg = sys::PrReservation {
            key,
            rtype: rtype.code(),
            flags: 0,
        };
        op_result(sys::pr_reserve_or_release(self.fd, &arg, true))
    }

    fn preempt(
        &mut self,
        own_key: u64,
        preempted_key: u64,
        rtype: PrType,
        abort: bool,
    ) -> Result<(), PrOpError> {
        let arg = sys::PrPreempt {
            old_key: own_key,
            new_key: preempted_key,
            rtype: rtype.code(),
            flags: 0,
        };
        op_result(sys::pr_preempt(self.fd, &arg, abort))
    }

    fn clear(&mut self, key: u64) -> Result<(), PrOpError> {
        let arg = sys::PrClear {
            key,
            flags: 0,
            pad: 0,
        };
        op_result(sys::pr_clear(self.fd, &arg))
    }

    fn read_keys(&mut self) -> Result<Keys, PrOpError> {
        self.read_keys_raw()
    }

    fn read_reservation(&mut self) -> Result<Option<HeldReservation>, PrOpError> {
        self.read_reservation_raw().map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_types_are_numbered_as_nvme_numbers_them() {
        let codes: Vec<u32> = ReservationType::ALL
            .into_iter()
            .map(|t| PrType::from(t).code())
            .collect();
        assert_eq!(codes, [1, 2, 3, 4, 5, 6]);
        for t in ReservationType::ALL {
            assert_eq!(ReservationType::from(PrType::from(t)), t);
        }
        assert_eq!(PrType::from_code(0), None);
        assert_eq!(PrType::from_code(7), None);
    }
}
