//! Direct mode: the command goes to the device itself, no helper. SCSI disks
//! get SG_IO; NVMe namespaces, and block devices that have no SG_IO, get the
//! same SCSI command answered through `blk-pr` (NVMe reservations or the
//! kernel's PR ioctls). The reply is what a helper would have sent back, so
//! callers (`prtool --direct`) see one protocol whatever the path.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use sg_io::execute_pr;

use crate::command::{DataTransfer, Reply};

/// Which way direct mode reaches the device.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum DirectPath {
    /// NVMe namespaces: NVMe reservations; anything else: SG_IO, and the PR
    /// ioctls where the device has no SG_IO (the ioctl fails with ENOTTY or
    /// EINVAL on a block device).
    #[default]
    Auto,
    /// SG_IO only (SCSI disks, sg nodes, dm maps over SCSI paths).
    SgIo,
    /// The kernel's block-layer PR ioctls (IOC_PR_*), on any block device
    /// with PR operations (sd, dm, nvme), PR IN through the 6.19 read ioctls.
    PrIoctls,
}

/// What a PR command became on the device, before it is shaped as a reply.
struct Answer {
    status: scsi::status::Status,
    sense: Vec<u8>,
    data: Vec<u8>,
}

/// Sends one PERSISTENT RESERVE IN/OUT `cdb` to the device behind `fd` by
/// `path` and returns what a helper would have answered: status, sense, data
/// and residual as `sg_io_hdr` reports them. `timeout` bounds SG_IO. Never
/// fails: an ioctl that fails is CHECK CONDITION, ABORTED COMMAND / I/O
/// PROCESS TERMINATED (0B/00/06), as the helpers answer it.
///
/// ```no_run
/// use std::os::fd::AsFd;
/// use std::time::Duration;
/// use pr_manager::{DataTransfer, DirectPath, execute_direct};
///
/// let disk = std::fs::File::open("/dev/nvme0n1")?;
/// let mut data = [0u8; 256];
/// let read_keys = [0x5E, 0x00, 0, 0, 0, 0, 0, 0x01, 0x00, 0];
/// let reply = execute_direct(disk.as_fd(), &read_keys, DataTransfer::FromDevice(&mut data),
///     Duration::from_secs(30), DirectPath::Auto);
/// println!("status {}, {} byte(s)", reply.status, reply.data_len);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn execute_direct(
    fd: BorrowedFd<'_>,
    cdb: &[u8],
    data: DataTransfer<'_>,
    timeout: Duration,
    path: DirectPath,
) -> Reply {
    let params: &[u8] = match &data {
        DataTransfer::ToDevice(params) => params,
        DataTransfer::FromDevice(_) => &[],
    };
    let answer = match path {
        DirectPath::SgIo => by_sg_io(fd, cdb, params, timeout).0,
        DirectPath::PrIoctls => by_pr_ioctls(fd, blk_pr::PrPath::BlockIoctls, cdb, params),
        DirectPath::Auto => match blk_pr::probe(fd) {
            nvme @ blk_pr::PrPath::Nvme { .. } => by_pr_ioctls(fd, nvme, cdb, params),
            blk_pr::PrPath::BlockIoctls => match by_sg_io(fd, cdb, params, timeout) {
                (_, true) if is_block_device(fd) => {
                    by_pr_ioctls(fd, blk_pr::PrPath::BlockIoctls, cdb, params)
                }
                (answer, _) => answer,
            },
        },
    };
    reply(answer, data)
}

/// SG_IO; the flag says that the descriptor has no SG_IO at all (the ioctl
/// failed with ENOTTY or EINVAL), so another path may answer.
fn by_sg_io(fd: BorrowedFd<'_>, cdb: &[u8], params: &[u8], timeout: Duration) -> (Answer, bool) {
    let executed = execute_pr(fd, cdb, params, timeout);
    let no_sg_io = executed
        .outcome
        .as_ref()
        .and_then(|outcome| outcome.errno)
        .is_some_and(|errno| errno == scsi::errno::ENOTTY || errno == scsi::errno::EINVAL);
    (
        Answer {
            status: executed.status,
            sense: executed.sense.to_vec(),
            data: executed.data,
        },
        no_sg_io,
    )
}

fn by_pr_ioctls(fd: BorrowedFd<'_>, path: blk_pr::PrPath, cdb: &[u8], params: &[u8]) -> Answer {
    let outcome = blk_pr::execute_scsi_pr_on(fd, path, cdb, params);
    Answer {
        status: outcome.status,
        sense: outcome
            .sense_fixed()
            .map(|s| s.to_vec())
            .unwrap_or_default(),
        data: outcome.data,
    }
}

fn is_block_device(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::BlockDevice
    })
}

/// As sg_io_hdr reports it: nothing comes back for PR OUT, so all of it is
/// residual.
fn reply(answer: Answer, data: DataTransfer<'_>) -> Reply {
    let mut sense = [0u8; sg_io::SENSE_BUFFER_SIZE];
    let n = answer.sense.len().min(sense.len());
    sense[..n].copy_from_slice(&answer.sense[..n]);
    let (data_len, residual) = match data {
        DataTransfer::FromDevice(buf) => {
            let len = answer.data.len().min(buf.len());
            if let (Some(dst), Some(src)) = (buf.get_mut(..len), answer.data.get(..len)) {
                dst.copy_from_slice(src);
            }
            (len, buf.len().saturating_sub(len))
        }
        DataTransfer::ToDevice(sent) => (0, sent.len()),
    };
    Reply {
        status: answer.status,
        sense,
        data_len,
        residual,
        failure: None,
    }
}
