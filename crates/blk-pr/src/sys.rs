//! The raw ioctls. All of this crate's `unsafe` lives here.
//!
//! - the block layer's persistent-reservation ioctls, `struct pr_*` of
//!   `/usr/include/linux/pr.h`, plus the two read ioctls Linux 6.19 added
//!   (`IOC_PR_READ_KEYS`, `IOC_PR_READ_RESERVATION`), whose structures the machine's
//!   older header does not have: they are defined here from the kernel's layout;
//! - NVMe passthrough, `struct nvme_passthru_cmd` of `/usr/include/linux/nvme_ioctl.h`
//!   (`NVME_IOCTL_ID`, `NVME_IOCTL_IO_CMD`, `NVME_IOCTL_ADMIN_CMD`).
//!
//! Every wrapper borrows the buffers the kernel reads or writes for the length of the
//! call, which is what makes it safe.

use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `_IOC` as the generic Linux encoding defines it (x86, arm, arm64, riscv, s390):
/// direction in bits 30-31, size in 16-29, type in 8-15, number in 0-7.
const fn ioc(direction: u32, kind: u8, number: u8, size: usize) -> u32 {
    (direction << 30) | ((size as u32) << 16) | ((kind as u32) << 8) | number as u32
}
const IOC_NONE: u32 = 0;
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

/// The ioctl request numbers this crate issues (for seccomp policies).
pub mod numbers {
    use super::*;

    pub const IOC_PR_REGISTER: u32 = ioc(IOC_WRITE, b'p', 200, size_of::<PrRegistration>());
    pub const IOC_PR_RESERVE: u32 = ioc(IOC_WRITE, b'p', 201, size_of::<PrReservation>());
    pub const IOC_PR_RELEASE: u32 = ioc(IOC_WRITE, b'p', 202, size_of::<PrReservation>());
    pub const IOC_PR_PREEMPT: u32 = ioc(IOC_WRITE, b'p', 203, size_of::<PrPreempt>());
    pub const IOC_PR_PREEMPT_ABORT: u32 = ioc(IOC_WRITE, b'p', 204, size_of::<PrPreempt>());
    pub const IOC_PR_CLEAR: u32 = ioc(IOC_WRITE, b'p', 205, size_of::<PrClear>());
    pub const IOC_PR_READ_KEYS: u32 = ioc(IOC_READ | IOC_WRITE, b'p', 206, size_of::<PrReadKeys>());
    pub const IOC_PR_READ_RESERVATION: u32 =
        ioc(IOC_READ, b'p', 207, size_of::<PrReadReservation>());
    pub const NVME_IOCTL_ID: u32 = ioc(IOC_NONE, b'N', 0x40, 0);
    pub const NVME_IOCTL_ADMIN_CMD: u32 = ioc(
        IOC_READ | IOC_WRITE,
        b'N',
        0x41,
        size_of::<NvmePassthruCmd>(),
    );
    pub const NVME_IOCTL_IO_CMD: u32 = ioc(
        IOC_READ | IOC_WRITE,
        b'N',
        0x43,
        size_of::<NvmePassthruCmd>(),
    );
}

// The values the headers give on x86-64 (checked by hand against pr.h and
// nvme_ioctl.h with the generic _IOC encoding): a wrong size would make the kernel
// copy the wrong number of bytes.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const _: () = {
    assert!(numbers::IOC_PR_REGISTER == 0x4018_70C8);
    assert!(numbers::IOC_PR_RESERVE == 0x4010_70C9);
    assert!(numbers::IOC_PR_RELEASE == 0x4010_70CA);
    assert!(numbers::IOC_PR_PREEMPT == 0x4018_70CB);
    assert!(numbers::IOC_PR_PREEMPT_ABORT == 0x4018_70CC);
    assert!(numbers::IOC_PR_CLEAR == 0x4010_70CD);
    assert!(numbers::IOC_PR_READ_KEYS == 0xC010_70CE);
    assert!(numbers::IOC_PR_READ_RESERVATION == 0x8010_70CF);
    assert!(numbers::NVME_IOCTL_ID == 0x4E40);
    assert!(numbers::NVME_IOCTL_ADMIN_CMD == 0xC048_4E41);
    assert!(numbers::NVME_IOCTL_IO_CMD == 0xC048_4E43);
};

/// `struct pr_registration`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PrRegistration {
    pub old_key: u64,
    pub new_key: u64,
    pub flags: u32,
    pub pad: u32,
}

/// `struct pr_reservation` (RESERVE and RELEASE).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PrReservation {
    pub key: u64,
    pub rtype: u32,
    pub flags: u32,
}

/// `struct pr_preempt`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PrPreempt {
    pub old_key: u64,
    pub new_key: u64,
    pub rtype: u32,
    pub flags: u32,
}

/// `struct pr_clear`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PrClear {
    pub key: u64,
    pub flags: u32,
    pub pad: u32,
}

/// `struct pr_read_keys` (Linux 6.19): `num_keys` is the capacity of the array at
/// `keys_ptr` on the way in and the number of keys the device has on the way out; the
/// kernel copies at most the capacity.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PrReadKeys {
    pub generation: u32,
    pub num_keys: u32,
    pub keys_ptr: u64,
}

/// `struct pr_read_reservation` (Linux 6.19).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PrReadReservation {
    pub key: u64,
    pub generation: u32,
    pub rtype: u32,
}

/// `struct nvme_passthru_cmd` (= `nvme_admin_cmd`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct NvmePassthruCmd {
    pub opcode: u8,
    pub flags: u8,
    pub rsvd1: u16,
    pub nsid: u32,
    pub cdw2: u32,
    pub cdw3: u32,
    pub metadata: u64,
    pub addr: u64,
    pub metadata_len: u32,
    pub data_len: u32,
    pub cdw10: u32,
    pub cdw11: u32,
    pub cdw12: u32,
    pub cdw13: u32,
    pub cdw14: u32,
    pub cdw15: u32,
    pub timeout_ms: u32,
    pub result: u32,
}

const _: () = {
    assert!(size_of::<PrRegistration>() == 24);
    assert!(size_of::<PrReservation>() == 16);
    assert!(size_of::<PrPreempt>() == 24);
    assert!(size_of::<PrClear>() == 16);
    assert!(size_of::<PrReadKeys>() == 16);
    assert!(std::mem::offset_of!(PrReadKeys, keys_ptr) == 8);
    assert!(size_of::<PrReadReservation>() == 16);
    assert!(std::mem::offset_of!(PrReadReservation, rtype) == 12);
    assert!(size_of::<NvmePassthruCmd>() == 72);
    assert!(std::mem::offset_of!(NvmePassthruCmd, addr) == 24);
    assert!(std::mem::offset_of!(NvmePassthruCmd, data_len) == 36);
    assert!(std::mem::offset_of!(NvmePassthruCmd, cdw10) == 40);
    assert!(std::mem::offset_of!(NvmePassthruCmd, timeout_ms) == 64);
    assert!(std::mem::offset_of!(NvmePassthruCmd, result) == 68);
};

/// What a PR ioctl returned when it did not fail: 0, or a positive device status
/// (`PR_STS_*` on current kernels, the SCSI status or NVMe status on older ones).
pub(crate) type IoctlReturn = c_int;

fn checked(rc: c_int) -> io::Result<IoctlReturn> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `IOC_PR_REGISTER`.
pub(crate) fn pr_register(fd: BorrowedFd<'_>, arg: &PrRegistration) -> io::Result<IoctlReturn> {
    // SAFETY: the request number encodes the size of `PrRegistration`, whose layout is
    // asserted above; the kernel only reads that many bytes from the borrowed
    // structure, which outlives the call, and the descriptor is borrowed and open.
    checked(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            numbers::IOC_PR_REGISTER as libc::Ioctl,
            std::ptr::from_ref(arg),
        )
    })
}

/// `IOC_PR_RESERVE` (`release == false`) or `IOC_PR_RELEASE`.
pub(crate) fn pr_reserve_or_release(
    fd: BorrowedFd<'_>,
    arg: &PrReservation,
    release: bool,
) -> io::Result<IoctlReturn> {
    let request = if release {
        numbers::IOC_PR_RELEASE
    } else {
        numbers::IOC_PR_RESERVE
    };
    // SAFETY: both request numbers encode the size of `PrReservation` (asserted);
    // the kernel only reads the borrowed structure during the call; the descriptor is
    // borrowed and open.
    checked(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            request as libc::Ioctl,
            std::ptr::from_ref(arg),
        )
    })
}

/// `IOC_PR_PREEMPT` or `IOC_PR_PREEMPT_ABORT`.
pub(crate) fn pr_preempt(
    fd: BorrowedFd<'_>,
    arg: &PrPreempt,
    abort: bool,
) -> io::Result<IoctlReturn> {
    let request = if abort {
        numbers::IOC_PR_PREEMPT_ABORT
    } else {
        numbers::IOC_PR_PREEMPT
    };
    // SAFETY: both request numbers encode the size of `PrPreempt` (asserted); the
    // kernel only reads the borrowed structure during the call; the descriptor is
    // borrowed and open.
    checked(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            request as libc::Ioctl,
            std::ptr::from_ref(arg),
        )
    })
}

/// `IOC_PR_CLEAR`.
pub(crate) fn pr_clear(fd: BorrowedFd<'_>, arg: &PrClear) -> io::Result<IoctlReturn> {
    // SAFETY: the request number encodes the size of `PrClear` (asserted); the kernel
    // only reads the borrowed structure during the call; the descriptor is borrowed.
    checked(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            numbers::IOC_PR_CLEAR as libc::Ioctl,
            std::ptr::from_ref(arg),
        )
    })
}

/// `IOC_PR_READ_KEYS` into `keys`: returns the generation, the number of keys the
/// device has (possibly more than `keys.len()`, of which only `keys.len()` were
/// copied) and the ioctl's return value.
pub(crate) fn pr_read_keys(
    fd: BorrowedFd<'_>,
    keys: &mut [u64],
) -> io::Result<(PrReadKeys, IoctlReturn)> {
    let capacity = u32::try_from(keys.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "key buffer too large"))?;
    let mut arg = PrReadKeys {
        generation: 0,
        num_keys: capacity,
        keys_ptr: keys.as_mut_ptr() as u64,
    };
    // SAFETY: the request number encodes the size of `PrReadKeys` (asserted), which
    // the kernel reads and writes back; it writes at most `num_keys` u64 values at
    // `keys_ptr`, and `num_keys` is the length of the mutably borrowed `keys`, alive
    // for the whole call. The descriptor is borrowed and open.
    let rc = checked(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            numbers::IOC_PR_READ_KEYS as libc::Ioctl,
            std::ptr::from_mut(&mut arg),
        )
    })?;
    Ok((arg, rc))
}

/// `IOC_PR_READ_RESERVATION`.
pub(crate) fn pr_read_reservation(
    fd: BorrowedFd<'_>,
) -> io::Result<(PrReadReservation, IoctlReturn)> {
    let mut arg = PrReadReservation::default();
    // SAFETY: the request number encodes the size of `PrReadReservation` (asserted);
    // the kernel writes at most that many bytes into the mutably borrowed structure
    // during the call. The descriptor is borrowed and open.
    let rc = checked(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            numbers::IOC_PR_READ_RESERVATION as libc::Ioctl,
            std::ptr::from_mut(&mut arg),
        )
    })?;
    Ok((arg, rc))
}

/// `NVME_IOCTL_ID`: the namespace ID of an NVMe namespace's block or char device.
pub(crate) fn nvme_namespace_id(fd: BorrowedFd<'_>) -> io::Result<u32> {
    // SAFETY: NVME_IOCTL_ID takes no argument and touches no user memory; the
    // descriptor is borrowed and open.
    let rc =
        checked(unsafe { libc::ioctl(fd.as_raw_fd(), numbers::NVME_IOCTL_ID as libc::Ioctl) })?;
    u32::try_from(rc).map_err(|_| io::Error::other("negative namespace ID"))
}

/// The data phase of one NVMe passthrough command.
pub(crate) enum NvmeData<'a> {
    /// The controller reads this buffer (host to controller).
    ToDevice(&'a [u8]),
    /// The controller fills this buffer (controller to host).
    FromDevice(&'a mut [u8]),
}

/// One NVMe command's fields as the passthrough ioctl takes them.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct NvmeCommandFields {
    pub opcode: u8,
    pub nsid: u32,
    pub cdw10: u32,
    pub cdw11: u32,
    pub cdw12: u32,
    pub timeout_ms: u32,
}

/// What the passthrough ioctl returned: the NVMe status (0 for success; the status
/// field as the kernel gives it, SC in bits 0-7, SCT in 8-10, CRD, MORE and DNR
/// above) and completion dword 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NvmeCompletion {
    pub status: u32,
    pub result: u32,
}

/// `NVME_IOCTL_IO_CMD` (`admin == false`) or `NVME_IOCTL_ADMIN_CMD`.
pub(crate) fn nvme_passthru(
    fd: BorrowedFd<'_>,
    fields: NvmeCommandFields,
    data: NvmeData<'_>,
    admin: bool,
) -> io::Result<NvmeCompletion> {
    let (addr, len) = match data {
        // The kernel only reads a host-to-controller buffer; the field is a plain
        // address for both directions.
        NvmeData::ToDevice(buf) => (buf.as_ptr() as u64, buf.len()),
        NvmeData::FromDevice(buf) => (buf.as_mut_ptr() as u64, buf.len()),
    };
    let data_len = u32::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "data buffer too large"))?;
    let mut cmd = NvmePassthruCmd {
        opcode: fields.opcode,
        nsid: fields.nsid,
        addr,
        data_len,
        cdw10: fields.cdw10,
        cdw11: fields.cdw11,
        cdw12: fields.cdw12,
        timeout_ms: fields.timeout_ms,
        ..NvmePassthruCmd::default()
    };
    let request = if admin {
        numbers::NVME_IOCTL_ADMIN_CMD
    } else {
        numbers::NVME_IOCTL_IO_CMD
    };
    // SAFETY: `cmd` is a correctly laid out `nvme_passthru_cmd` (size and offsets
    // asserted) that the kernel reads and writes back (`result`). Its `addr` and
    // `data_len` describe one buffer borrowed by `data` for the whole call: the kernel
    // reads it (opcodes whose direction bits say host to controller, as the callers'
    // are) or writes at most `data_len` bytes into it (controller to host, mutably
    // borrowed). No metadata buffer is given (`metadata`, `metadata_len` 0). The
    // descriptor is borrowed and open.
    let rc = checked(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            request as libc::Ioctl,
            std::ptr::from_mut(&mut cmd),
        )
    })?;
    Ok(NvmeCompletion {
        status: rc.unsigned_abs(),
        result: cmd.result,
    })
}
