//! The SG_IO backend: one `SG_IO` ioctl per command on a SCSI block or sg device.
//!
//! The command is sent and its outcome mapped by [`sg_io::execute_pr`], which `prtool
//! --direct` and the multipath backend use too. Unlike QEMU's helper, the CDB goes out
//! with the opcode's real length (10 for PR IN and OUT), the data buffer is exactly the
//! transfer length from the CDB rather than a fixed 8192 bytes, the timeout is the
//! configured one (QEMU uses 1 ms), and the payload returned is clamped both to the
//! allocation length and to what the device transferred.

use std::time::Duration;

use pr_protocol::Response;

use super::{Backend, Command};

/// What the SG_IO backend is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SgIoSettings {
    /// Timeout handed to the ioctl.
    pub timeout: Duration,
}

/// Executes commands with one `SG_IO` on the received descriptor.
#[derive(Debug, Clone)]
pub struct SgIoBackend {
    timeout: Duration,
}

impl SgIoBackend {
    /// The backend for `settings`.
    pub fn new(settings: &SgIoSettings) -> Self {
        Self {
            timeout: settings.timeout,
        }
    }
}

impl Backend for SgIoBackend {
    fn execute(&self, command: &Command<'_>) -> Response {
        let executed = sg_io::execute_pr(command.fd, command.cdb, command.data_out, self.timeout);
        Response {
            status: executed.status.as_u8(),
            sense: executed.sense,
            data: executed.data,
        }
    }
}
