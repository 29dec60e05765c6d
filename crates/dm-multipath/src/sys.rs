//! The kernel interfaces: device-mapper's control ioctl (`DM_TABLE_STATUS`), the
//! kernel uevent socket, and raising a permitted capability for one call. The only
//! `unsafe` of the crate is here.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType};
use rustix::thread::CapabilitySet;

use crate::ioctl_data::{self, HEADER_LEN};

/// `struct dm_ioctl` of `/usr/include/linux/dm-ioctl.h`: only its size and the ioctl
/// number it defines are used; the bytes are encoded in [`ioctl_data`].
#[repr(C)]
#[allow(dead_code)]
struct DmIoctl {
    version: [u32; 3],
    data_size: u32,
    data_start: u32,
    target_count: u32,
    open_count: i32,
    flags: u32,
    event_nr: u32,
    padding: u32,
    dev: u64,
    name: [u8; 128],
    uuid: [u8; 129],
    data: [u8; 7],
}

/// `struct dm_target_spec`.
#[repr(C)]
#[allow(dead_code)]
struct DmTargetSpec {
    sector_start: u64,
    length: u64,
    status: i32,
    next: u32,
    target_type: [u8; 16],
}

const _: () = assert!(std::mem::size_of::<DmIoctl>() == HEADER_LEN);
const _: () = assert!(std::mem::size_of::<DmTargetSpec>() == ioctl_data::TARGET_SPEC_LEN);
const _: () = assert!(std::mem::offset_of!(DmIoctl, data_size) == ioctl_data::OFFSET_DATA_SIZE);
const _: () = assert!(std::mem::offset_of!(DmIoctl, data_start) == ioctl_data::OFFSET_DATA_START);
const _: () =
    assert!(std::mem::offset_of!(DmIoctl, target_count) == ioctl_data::OFFSET_TARGET_COUNT);
const _: () = assert!(std::mem::offset_of!(DmIoctl, flags) == ioctl_data::OFFSET_FLAGS);
const _: () = assert!(std::mem::offset_of!(DmIoctl, dev) == ioctl_data::OFFSET_DEV);

const DM_IOCTL_TYPE: u64 = 0xfd;
const DM_TABLE_STATUS_CMD: u64 = 12;

/// `_IOWR(DM_IOCTL, DM_TABLE_STATUS_CMD, struct dm_ioctl)`.
const DM_TABLE_STATUS: u64 = (3 << 30)
    | ((std::mem::size_of::<DmIoctl>() as u64) << 16)
    | (DM_IOCTL_TYPE << 8)
    | DM_TABLE_STATUS_CMD;

/// Largest reply buffer we grow to: a table with thousands of paths.
const MAX_REPLY: usize = 1 << 20;

/// `DM_TABLE_STATUS` for the device `rdev` on the control device: its live table
/// (with `table`) or its status. Grows the buffer while the kernel says it is full.
pub fn table_status(
    control: BorrowedFd<'_>,
    rdev: u64,
    table: bool,
) -> io::Result<Vec<ioctl_data::Target>> {
    let mut flags = ioctl_data::NOFLUSH_FLAG;
    if table {
        flags |= ioctl_data::STATUS_TABLE_FLAG;
    }
    let mut len = 16 * 1024;
    loop {
        let mut buf = ioctl_data::table_status_request(rdev, flags, len);
        with_capability(CapabilitySet::SYS_ADMIN, || {
            // SAFETY: `buf` is a valid, writable buffer of `len` bytes starting with
            // a `struct dm_ioctl` whose `data_size` is `len`, so the kernel reads and
            // writes only inside it; the descriptor is borrowed for the call.
            let ret = unsafe {
                libc::ioctl(
                    control.as_raw_fd(),
                    DM_TABLE_STATUS as libc::Ioctl,
                    buf.as_mut_ptr(),
                )
            };
            if ret < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        })?;
        let full = ioctl_data::buffer_full(&buf).map_err(io::Error::other)?;
        if !full {
            return ioctl_data::decode_targets(&buf).map_err(io::Error::other);
        }
        if len >= MAX_REPLY {
            return Err(io::Error::other("device-mapper table larger than 1 MiB"));
        }
        len *= 4;
    }
}

/// Runs `f` with `cap` in this thread's effective set when it is in the permitted set
/// (the daemon keeps multipath's capabilities permitted but not effective), and puts
/// the effective set back afterwards. Without the capability `f` runs as it is and
/// fails with the kernel's EPERM/EACCES, which names the problem.
///
/// If the sets cannot be read, or the capability raised or lowered again, the process
/// exits (status [`CAPABILITY_FAILURE_EXIT`], one message on the log and on standard
/// error): a serving thread must never go on with a capability effective that it
/// should have dropped, and the service manager restarts the daemon.
pub fn with_capability<T>(cap: CapabilitySet, f: impl FnOnce() -> T) -> T {
    let before = rustix::thread::capabilities(None)
        .unwrap_or_else(|error| capability_failure("read the capability sets", cap, error));
    let raised = before.permitted.contains(cap) && !before.effective.contains(cap);
    if raised {
        let mut with = before;
        with.effective |= cap;
        if let Err(error) = rustix::thread::set_capabilities(None, with) {
            capability_failure("raise", cap, error);
        }
    }
    let result = f();
    if raised && let Err(error) = rustix::thread::set_capabilities(None, before) {
        capability_failure("lower", cap, error);
    }
    result
}

/// Exit status of a daemon that could not raise or lower a capability.
pub const CAPABILITY_FAILURE_EXIT: i32 = 70;

fn capability_failure(step: &str, cap: CapabilitySet, error: rustix::io::Errno) -> ! {
    let message = format!(
        "cannot {step} {cap:?} for a multipath call ({error}): exiting, so that no thread \
         keeps a capability effective (the service manager restarts the daemon; \
         --no-multipath runs without these capabilities)"
    );
    tracing::error!("{message}");
    eprintln!("pr-helper: {message}");
    std::process::exit(CAPABILITY_FAILURE_EXIT)
}

/// A socket receiving the kernel's uevents (multicast group 1 of
/// `NETLINK_KOBJECT_UEVENT`; any user may listen).
#[derive(Debug)]
pub struct UeventSocket {
    fd: OwnedFd,
}

impl UeventSocket {
    /// Opens and binds the socket.
    pub fn open() -> io::Result<Self> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(netlink::KOBJECT_UEVENT),
        )?;
        // A burst of events (a whole fabric coming back) must not overflow the queue.
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, 1 << 20);
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, 1))?;
        Ok(Self { fd })
    }

    /// Waits for the next message from the kernel (messages from user space, which
    /// carry a non-zero port id, are skipped) and returns its length in `buf`.
    pub fn receive(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let (_, len, from) =
                rustix::net::recvfrom(self.fd.as_fd(), &mut *buf, RecvFlags::empty())?;
            let from_kernel = from
                .and_then(|addr| SocketAddrNetlink::try_from(addr).ok())
                .is_some_and(|addr| addr.pid() == 0);
            if from_kernel {
                return Ok(len.min(buf.len()));
            }
        }
    }
}
