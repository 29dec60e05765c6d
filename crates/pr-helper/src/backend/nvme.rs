//! The NVMe backend: SCSI PR commands on an NVMe namespace, which has no SG_IO,
//! answered through `blk-pr`'s translation onto NVMe reservations (Reservation
//! Register, Acquire, Release and Report through the NVMe passthrough ioctls on
//! the received descriptor). A client such as QEMU's `pr-manager-helper` sends the
//! same SCSI commands whatever the disk and gets SCSI answers: status, fixed-format
//! sense and PR IN data cut to the allocation length.
//!
//! The router sends a whole block device here when `NVME_IOCTL_ID` answers on it
//! (one ioctl, remembered with the descriptor's classification).
//!
//! The translation needs this host's Host Identifier for every PR OUT (to find its
//! own registration in the Reservation Report). The kernel lets only CAP_SYS_ADMIN
//! send Get Features, which the confined daemon does not have in its effective set;
//! then the identifier comes from the one the kernel gave the controller, its sysfs
//! attribute `hostid` (fabrics controllers: loop, TCP, RDMA, FC), found from the
//! descriptor's device number.

use std::os::fd::BorrowedFd;

use blk_pr::nvme::{
    Acquire, HostId, Register, Release, ReservationCapabilities, ReservationStatus,
};
use blk_pr::{BlkPrError, NvmeError, NvmeNamespace, NvmeReservations, ScsiOutcome};
use pr_protocol::{Response, SENSE_SIZE};

use super::{Backend, Command};

/// Executes commands on an NVMe namespace through the SCSI-to-NVMe translation.
#[derive(Debug, Clone, Copy, Default)]
pub struct NvmeBackend;

impl Backend for NvmeBackend {
    fn execute(&self, command: &Command<'_>) -> Response {
        let outcome = match NvmeNamespace::open(command.fd) {
            Ok(namespace) => {
                let mut namespace = Confined {
                    namespace,
                    fd: command.fd,
                };
                blk_pr::execute_scsi_pr_over_nvme(&mut namespace, command.cdb, command.data_out)
            }
            // No longer answers as a namespace: the answer of a failed ioctl. Never the
            // block layer's PR ioctls, which the daemon's seccomp filter does not allow
            // (a call would kill the daemon).
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

/// A namespace whose Host Identifier falls back to sysfs when Get Features is refused.
struct Confined<'fd> {
    namespace: NvmeNamespace<'fd>,
    fd: BorrowedFd<'fd>,
}

impl NvmeReservations for Confined<'_> {
    fn host_id(&mut self) -> Result<HostId, NvmeError> {
        match NvmeReservations::host_id(&mut self.namespace) {
            Err(NvmeError::Errno(errno)) if errno == libc::EACCES || errno == libc::EPERM => {
                controller_host_id(self.fd).ok_or(NvmeError::Errno(errno))
            }
            other => other,
        }
    }

    fn capabilities(&mut self) -> Result<ReservationCapabilities, NvmeError> {
        NvmeReservations::capabilities(&mut self.namespace)
    }

    fn report(&mut self) -> Result<ReservationStatus, NvmeError> {
        NvmeReservations::report(&mut self.namespace)
    }

    fn register(&mut self, command: &Register) -> Result<(), NvmeError> {
        NvmeReservations::register(&mut self.namespace, command)
    }

    fn acquire(&mut self, command: &Acquire) -> Result<(), NvmeError> {
        NvmeReservations::acquire(&mut self.namespace, command)
    }

    fn release(&mut self, command: &Release) -> Result<(), NvmeError> {
        NvmeReservations::release(&mut self.namespace, command)
    }
}

/// The controller's `hostid` (`/sys/dev/block/MAJ:MIN/device/hostid`, a UUID), for
/// the block device behind `fd`.
fn controller_host_id(fd: BorrowedFd<'_>) -> Option<HostId> {
    let stat = rustix::fs::fstat(fd).ok()?;
    let rdev = stat.st_rdev;
    let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
    let text =
        std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/device/hostid")).ok()?;
    parse_uuid(text.trim())
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` as 16 bytes.
fn parse_uuid(text: &str) -> Option<HostId> {
    let digits: Vec<u8> = text.bytes().filter(|&b| b != b'-').collect();
    if digits.len() != 32 || text.len() != 36 {
        return None;
    }
    let mut id = [0u8; 16];
    for (byte, pair) in id.iter_mut().zip(digits.chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(HostId(id))
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn a_controller_hostid_parses_as_the_report_prints_it() {
        let id = parse_uuid("5001405a-0000-4000-8000-000000000a01").expect("uuid");
        assert_eq!(id.to_string(), "5001405a-0000-4000-8000-000000000a01");
        assert_eq!(id.0[0], 0x50);
        assert_eq!(id.0[15], 0x01);
    }

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

    #[test]
    fn anything_but_a_uuid_is_no_host_id() {
        for bad in [
            "",
            "5001405a00004000800000000000a01",
            "5001405a-0000-4000-8000-00000000zz01",
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad}");
        }
    }
}
