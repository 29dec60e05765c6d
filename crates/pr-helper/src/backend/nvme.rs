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

use blk_pr::{BlkPrError, NvmeNamespace, ScsiOutcome};
use pr_protocol::{Response, SENSE_SIZE};

use super::{Backend, Command};

/// Executes commands on an NVMe namespace through the SCSI-to-NVMe translation.
#[derive(Debug, Clone, Copy, Default)]
pub struct NvmeBackend;

impl Backend for NvmeBackend {
    fn execute(&self, command: &Command<'_>) -> Response {
        let outcome = match NvmeNamespace::open(command.fd) {
            Ok(mut namespace) => {
                blk_pr::execute_scsi_pr_over_nvme(&mut namespace, command.cdb, command.data_out)
            }
            // No longer answers as a namespace: the answer of a failed ioctl. Never the
            // block layer's PR ioctls (blk_pr::execute_scsi_pr's other path), which the
            // daemon's seccomp filter does not allow: a call would kill the daemon.
            Err(error) => ScsiOutcome::transport_failure(not_a_namespace_errno(&error)),
        };
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

/// The errno of a failed `NVME_IOCTL_ID` (ENOTTY when there is none).
fn not_a_namespace_errno(error: &BlkPrError) -> i32 {
    match error {
        BlkPrError::NotNvme { source, .. } => source.raw_os_error(),
        _ => None,
    }
    .unwrap_or(libc::ENOTTY)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn a_descriptor_that_is_no_namespace_gets_a_failed_ioctls_answer() {
        // A regular file answers NVME_IOCTL_ID with ENOTTY, as a namespace that went
        // away between the router's probe and the command would fail it.
        let file = tempfile::tempfile().expect("a temporary file");
        // PERSISTENT RESERVE IN, READ KEYS, allocation length 16.
        let mut cdb = [0u8; 16];
        cdb[..10].copy_from_slice(&[0x5e, 0x00, 0, 0, 0, 0, 0, 0x00, 0x10, 0]);
        let response = NvmeBackend.execute(&Command {
            cdb: &cdb,
            data_out: &[],
            fd: file.as_fd(),
            file: sg_io::FileIdentity {
                dev: 0,
                ino: 0,
                rdev: 0,
            },
            peer: super::super::PeerInfo {
                pid: 0,
                uid: 0,
                gid: 0,
            },
        });
        assert_eq!(response.status, 0x02, "CHECK CONDITION");
        assert_eq!(&response.sense[..3], &[0x70, 0x00, 0x0b], "ABORTED COMMAND");
        assert_eq!(
            &response.sense[12..14],
            &[0x00, 0x06],
            "I/O PROCESS TERMINATED"
        );
        assert!(response.data.is_empty());
    }
}
