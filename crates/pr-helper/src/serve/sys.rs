//! The `unsafe` call of the serving code: reading a peer's credentials.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// A connected peer's credentials as the kernel recorded them at `connect`
/// (SO_PEERCRED).
///
/// Read into `libc::ucred` rather than through rustix, whose `UCred` holds the pid as a
/// non-zero type: the kernel reports pid 0 for a peer outside our pid namespace (a
/// helper in a container serving a host process), and that value must not be undefined
/// behaviour.
pub(super) fn peer_credentials(socket: BorrowedFd<'_>) -> io::Result<libc::ucred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::ucred>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `cred` is a live, writable `ucred` and `len` holds its exact size, so the
    // kernel writes at most that many bytes into it; every bit pattern is a valid
    // `ucred` (three plain integers). The descriptor is borrowed for the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred)
}
