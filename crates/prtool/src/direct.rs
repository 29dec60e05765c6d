//! `--direct`: the command goes to the device with SG_IO, no helper. The
//! outcome is mapped exactly as the helper maps it, so output and exit
//! codes do not depend on the path taken.

use std::fs::File;
use std::os::fd::AsFd;
use std::time::Duration;

use pr_manager::{DataTransfer, Reply};
use scsi::sgio::map_sg_io_outcome;
use scsi::status::Status;
use sg_io::{Direction, SENSE_BUFFER_SIZE};

/// Sends `cdb` with SG_IO and returns what a helper would have answered.
pub fn send(
    file: &File,
    cdb: &[u8],
    data: DataTransfer<'_>,
    timeout: Duration,
) -> Result<Reply, String> {
    let mut out_copy;
    let (direction, buf): (Direction, &mut [u8]) = match data {
        DataTransfer::ToDevice(params) => {
            // SG_IO takes a mutable buffer either way; the copy keeps the
            // caller's parameter list untouched.
            out_copy = params.to_vec();
            (Direction::ToDevice, &mut out_copy)
        }
        DataTransfer::FromDevice(buf) => (Direction::FromDevice, buf),
    };
    let mut sense = [0u8; SENSE_BUFFER_SIZE];
    let report = sg_io::send(file.as_fd(), cdb, direction, buf, &mut sense, timeout)
        .map_err(|e| format!("SG_IO refused the command: {e}"))?;
    let mapped = map_sg_io_outcome(&report.outcome);
    let mut reply_sense = [0u8; SENSE_BUFFER_SIZE];
    match mapped.synthesized_sense {
        Some(synthesized) => {
            synthesized.write_fixed(&mut reply_sense);
        }
        None => {
            let len = usize::from(report.sense_len).min(SENSE_BUFFER_SIZE);
            if let (Some(dst), Some(src)) = (reply_sense.get_mut(..len), sense.get(..len)) {
                dst.copy_from_slice(src);
            }
        }
    }
    let data_len = if mapped.status == Status::GOOD && direction == Direction::FromDevice {
        report.transferred(buf.len())
    } else {
        0
    };
    Ok(Reply {
        status: mapped.status,
        sense: reply_sense,
        data_len,
        residual: buf.len().saturating_sub(data_len),
        failure: None,
    })
}
