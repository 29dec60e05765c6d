//! The NVMe backend: SCSI PR commands on an NVMe namespace, which has no SG_IO,
//! answered through `blk-pr`'s translation onto NVMe reservations (Reservation
//! Register, Acquire, Release and Report through the NVMe passthrough ioctls on
//! the received descriptor). A client such as QEMU's `pr-manager-helper` sends the
//! same SCSI commands whatever the disk and gets SCSI answers: status, fixed-format
//! sense and PR IN data cut to the allocation length.
//!
//! The router sends a whole block device here when `NVME_IOCTL_ID` answers on it
//! (one ioctl, remembered with the descriptor's classification). The confined
//! daemon has no CAP_SYS_ADMIN for Get Features (Host Identifier): `blk-pr` then
//! takes the host ID the kernel gave the controller, from sysfs.

use pr_protocol::{Response, SENSE_SIZE};

use super::{Backend, Command};

/// Executes commands on an NVMe namespace through the SCSI-to-NVMe translation.
#[derive(Debug, Clone, Copy, Default)]
pub struct NvmeBackend;

impl Backend for NvmeBackend {
    fn execute(&self, command: &Command<'_>) -> Response {
        let outcome = blk_pr::execute_scsi_pr(command.fd, command.cdb, command.data_out);
        if let Some(errno) = outcome.transport_errno {
            tracing::debug!(peer = %command.peer, errno, "NVMe passthrough ioctl failed");
        }
        let mut sense = [0u8; SENSE_SIZE];
        if let Some(fixed) = outcome.sense_fixed() {
            sense[..fixed.len()].copy_from_slice(&fixed);
        }
        Response {
            status: outcome.status.as_u8(),
            sense,
            data: outcome.data,
        }
    }
}
