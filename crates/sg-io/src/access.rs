//! The access mode a descriptor was opened with.

use std::io;
use std::os::fd::BorrowedFd;

use rustix::fs::OFlags;
use rustix::fs::fcntl_getfl;

/// How a descriptor was opened (`O_ACCMODE` of its open file description).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessMode {
    ReadOnly,
    WriteOnly,
    ReadWrite,
}

impl AccessMode {
    /// Whether writes (PR OUT) are allowed through this descriptor.
    pub fn can_write(self) -> bool {
        matches!(self, AccessMode::WriteOnly | AccessMode::ReadWrite)
    }
}

/// Why the access mode could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AccessModeError {
    #[error("fcntl(F_GETFL) on the descriptor failed")]
    GetFlags(#[source] io::Error),
}

/// Reads the access mode with `F_GETFL`. Only reads: the open file
/// description is shared with the peer (QEMU), so its flags are never changed.
pub fn access_mode(fd: BorrowedFd<'_>) -> Result<AccessMode, AccessModeError> {
    let flags = fcntl_getfl(fd).map_err(|e| AccessModeError::GetFlags(e.into()))?;
    Ok(mode_from_flags(flags))
}

fn mode_from_flags(flags: OFlags) -> AccessMode {
    let rw = flags & OFlags::RWMODE;
    if rw == OFlags::RDWR {
        AccessMode::ReadWrite
    } else if rw == OFlags::WRONLY {
        AccessMode::WriteOnly
    } else {
        // O_RDONLY is 0; O_PATH descriptors also land here, which is the
        // safe answer (no writes).
        AccessMode::ReadOnly
    }
}
