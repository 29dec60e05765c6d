//! `--direct`: the command goes to the device itself, no helper, through
//! `pr-manager`'s direct mode (SG_IO on SCSI devices; NVMe reservations or
//! the kernel's PR ioctls elsewhere). The outcome is mapped exactly as the
//! helper maps it, so output and exit codes do not depend on the path taken.

use std::fs::File;
use std::os::fd::AsFd;
use std::time::Duration;

use pr_manager::{DataTransfer, Reply, execute_direct};
use prtool::args::DirectPath;

/// Sends `cdb` to the device by `path` and returns what a helper would have
/// answered.
pub fn send(
    file: &File,
    cdb: &[u8],
    data: DataTransfer<'_>,
    timeout: Duration,
    path: DirectPath,
) -> Result<Reply, String> {
    let path = match path {
        DirectPath::Auto => pr_manager::DirectPath::Auto,
        DirectPath::SgIo => pr_manager::DirectPath::SgIo,
        DirectPath::PrIoctls => pr_manager::DirectPath::PrIoctls,
    };
    Ok(execute_direct(file.as_fd(), cdb, data, timeout, path))
}
