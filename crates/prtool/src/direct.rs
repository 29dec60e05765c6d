//! `--direct`: the command goes to the device with SG_IO, no helper. The
//! outcome is mapped exactly as the helper maps it, so output and exit
//! codes do not depend on the path taken.

use std::fs::File;
use std::os::fd::AsFd;
use std::time::Duration;

use pr_manager::{DataTransfer, Reply};
use sg_io::execute_pr;

/// Sends `cdb` with SG_IO and returns what a helper would have answered.
pub fn send(
    file: &File,
    cdb: &[u8],
    data: DataTransfer<'_>,
    timeout: Duration,
) -> Result<Reply, String> {
    let (executed, buffer) = match data {
        DataTransfer::ToDevice(params) => (
            execute_pr(file.as_fd(), cdb, params, timeout),
            Err(params.len()),
        ),
        DataTransfer::FromDevice(buf) => (execute_pr(file.as_fd(), cdb, &[], timeout), Ok(buf)),
    };
    // As sg_io_hdr reports it: nothing comes back for PR OUT, so all of it is residual.
    let (data_len, residual) = match buffer {
        Ok(buf) => {
            let len = executed.data.len().min(buf.len());
            if let (Some(dst), Some(src)) = (buf.get_mut(..len), executed.data.get(..len)) {
                dst.copy_from_slice(src);
            }
            (len, buf.len().saturating_sub(len))
        }
        Err(sent) => (0, sent),
    };
    Ok(Reply {
        status: executed.status,
        sense: executed.sense,
        data_len,
        residual,
        failure: None,
    })
}
