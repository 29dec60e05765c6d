//! The raw `SG_IO` ioctl. All of this crate's `unsafe` lives here.
//!
//! The structure mirrors `struct sg_io_hdr` from `/usr/include/scsi/sg.h`
//! (version 3 of the SCSI generic interface, accepted by both `/dev/sg*`
//! and SCSI block devices).

use std::ffi::{c_int, c_uint, c_ushort, c_void};
use std::os::fd::{AsRawFd, BorrowedFd};

/// `SG_IO` request number (`sg.h`).
const SG_IO: libc::Ioctl = 0x2285;

/// `interface_id` value for the version 3 interface: the letter `S`.
pub(crate) const INTERFACE_ID_SCSI: c_int = b'S' as c_int;

/// `dxfer_direction` values (`SG_DXFER_*` in `sg.h`).
pub(crate) const DXFER_NONE: c_int = -1;
pub(crate) const DXFER_TO_DEV: c_int = -2;
pub(crate) const DXFER_FROM_DEV: c_int = -3;

/// `struct sg_io_hdr`, field for field.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct SgIoHdr {
    pub interface_id: c_int,
    pub dxfer_direction: c_int,
    pub cmd_len: u8,
    pub mx_sb_len: u8,
    pub iovec_count: c_ushort,
    pub dxfer_len: c_uint,
    pub dxferp: *mut c_void,
    pub cmdp: *const u8,
    pub sbp: *mut u8,
    pub timeout: c_uint,
    pub flags: c_uint,
    pub pack_id: c_int,
    pub usr_ptr: *mut c_void,
    pub status: u8,
    pub masked_status: u8,
    pub msg_status: u8,
    pub sb_len_wr: u8,
    pub host_status: c_ushort,
    pub driver_status: c_ushort,
    pub resid: c_int,
    pub duration: c_uint,
    pub info: c_uint,
}

// The kernel copies exactly this many bytes; a layout mistake would make it
// read or write past our structure.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(std::mem::size_of::<SgIoHdr>() == 88);
    assert!(std::mem::offset_of!(SgIoHdr, dxferp) == 16);
    assert!(std::mem::offset_of!(SgIoHdr, usr_ptr) == 56);
    assert!(std::mem::offset_of!(SgIoHdr, host_status) == 68);
    assert!(std::mem::offset_of!(SgIoHdr, info) == 80);
};
#[cfg(target_pointer_width = "32")]
const _: () = assert!(std::mem::size_of::<SgIoHdr>() == 64);

/// Buffers one `SG_IO` call reads from and writes to. Borrowing them here
/// is what makes [`sg_io`] safe: the pointers in the header are built from
/// these borrows and live no longer than the call.
pub(crate) struct SgIoBuffers<'a> {
    pub cdb: &'a [u8],
    pub data: DataPhase<'a>,
    pub sense: &'a mut [u8],
    pub timeout_ms: u32,
}

/// The data phase of one call, with the buffer it reads from or writes to.
pub(crate) enum DataPhase<'a> {
    /// The kernel reads the buffer and sends it to the device.
    ToDevice(&'a [u8]),
    /// The kernel fills the buffer from the device.
    FromDevice(&'a mut [u8]),
    /// No data phase.
    None,
}

impl DataPhase<'_> {
    /// `dxfer_direction`, the buffer's address and its length.
    fn raw(&mut self) -> (c_int, *mut c_void, usize) {
        match self {
            // The kernel only reads a to-device buffer; the header's field is
            // `void *` for both directions.
            DataPhase::ToDevice(data) => {
                (DXFER_TO_DEV, data.as_ptr().cast_mut().cast(), data.len())
            }
            DataPhase::FromDevice(data) => (DXFER_FROM_DEV, data.as_mut_ptr().cast(), data.len()),
            DataPhase::None => (DXFER_NONE, std::ptr::null_mut(), 0),
        }
    }
}

/// What the kernel filled in after a successful ioctl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SgIoResult {
    pub status: u8,
    pub host_status: u16,
    pub driver_status: u16,
    pub sb_len_wr: u8,
    pub resid: i32,
}

/// Issues one `SG_IO` ioctl. The caller has checked that the CDB length
/// fits in a `u8`, the data length in a `u32` and the sense length in a `u8`.
pub(crate) fn sg_io(fd: BorrowedFd<'_>, mut bufs: SgIoBuffers<'_>) -> std::io::Result<SgIoResult> {
    let cmd_len = u8::try_from(bufs.cdb.len()).map_err(|_| invalid("CDB too long"))?;
    let mx_sb_len = u8::try_from(bufs.sense.len()).map_err(|_| invalid("sense buffer too long"))?;
    let (dxfer_direction, dxferp, data_len) = bufs.data.raw();
    let dxfer_len = c_uint::try_from(data_len).map_err(|_| invalid("data buffer too long"))?;
    let mut hdr = SgIoHdr {
        interface_id: INTERFACE_ID_SCSI,
        dxfer_direction,
        cmd_len,
        mx_sb_len,
        iovec_count: 0,
        dxfer_len,
        dxferp,
        cmdp: bufs.cdb.as_ptr(),
        sbp: bufs.sense.as_mut_ptr(),
        timeout: bufs.timeout_ms,
        flags: 0,
        pack_id: 0,
        usr_ptr: std::ptr::null_mut(),
        status: 0,
        masked_status: 0,
        msg_status: 0,
        sb_len_wr: 0,
        host_status: 0,
        driver_status: 0,
        resid: 0,
        duration: 0,
        info: 0,
    };
    // SAFETY: `hdr` is a correctly laid out `sg_io_hdr` (size asserted
    // above). Its pointers come from live borrows held by `bufs` for the
    // whole call: the kernel reads `cmd_len` bytes at `cmdp`, reads (to
    // device: the buffer is only read, never written through the cast
    // pointer) or writes (from device) at most `dxfer_len` bytes at `dxferp`
    // (null with length 0 when there is no data phase) and writes at most
    // `mx_sb_len` bytes at `sbp`, each length being that buffer's own.
    // `iovec_count` is 0, so `dxferp` is a plain buffer, not an iovec list.
    // The descriptor is borrowed and stays open for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), SG_IO, &mut hdr as *mut SgIoHdr) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(SgIoResult {
        status: hdr.status,
        host_status: hdr.host_status,
        driver_status: hdr.driver_status,
        sb_len_wr: hdr.sb_len_wr,
        resid: hdr.resid,
    })
}

fn invalid(what: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, what)
}
