//! One PERSISTENT RESERVE IN or OUT command, sent and answered the way the helper
//! protocol answers it: status, sense and payload. The daemon, `prtool --direct` and
//! the multipath backend all go through [`execute_pr`], so a command's answer never
//! depends on which of them sent it.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use scsi::sgio::{SgIoOutcome, driver, host};
use scsi::status::Status;

use crate::send::{Direction, SENSE_BUFFER_SIZE, send, send_to_device};

/// Opcode of PERSISTENT RESERVE IN.
const PERSISTENT_RESERVE_IN: u8 = 0x5E;

/// The answer to one PR command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrExecution {
    /// The SCSI status to report.
    pub status: Status,
    /// Sense to report: the device's own, or a fixed-format one synthesised from the
    /// ioctl's outcome; zero-padded.
    pub sense: [u8; SENSE_BUFFER_SIZE],
    /// The PR IN payload (what the device transferred) when the status is GOOD;
    /// empty otherwise and for PR OUT.
    pub data: Vec<u8>,
    /// What the ioctl reported; `None` when nothing was sent (a CDB the ioctl cannot
    /// carry).
    pub outcome: Option<SgIoOutcome>,
}

impl PrExecution {
    /// Whether the command failed on the way to or from the device (ioctl error,
    /// host or driver trouble, no answer) rather than being answered by it.
    pub fn is_transport_failure(&self) -> bool {
        match &self.outcome {
            None => false,
            Some(outcome) => {
                outcome.errno.is_some_and(|errno| errno != 0)
                    || outcome.host_status != host::DID_OK
                    || outcome.driver_status & driver::DRIVER_STATUS_MASK == driver::DRIVER_TIMEOUT
            }
        }
    }
}

/// Sends the PR command `cdb` (a PERSISTENT RESERVE IN or OUT CDB, possibly
/// zero-padded to 16 bytes) to the device behind `fd` and maps the outcome.
///
/// The CDB goes out with its opcode's length (10 bytes for both PR opcodes). PR IN
/// reads into a buffer of the CDB's allocation length (`cdb[7..9]`); PR OUT sends at
/// most that many bytes of `data_out`. Blocks for up to about `timeout`.
pub fn execute_pr(
    fd: BorrowedFd<'_>,
    cdb: &[u8],
    data_out: &[u8],
    timeout: Duration,
) -> PrExecution {
    let command = command_bytes(cdb);
    let transfer = cdb
        .get(7..9)
        .map_or(0, |len| usize::from(u16::from_be_bytes([len[0], len[1]])));
    let mut sense = [0u8; SENSE_BUFFER_SIZE];
    let is_in = cdb.first() == Some(&PERSISTENT_RESERVE_IN);
    let mut buffer = Vec::new();
    let sent = if is_in {
        buffer.resize(transfer, 0);
        let direction = if transfer == 0 {
            Direction::None
        } else {
            Direction::FromDevice
        };
        send(fd, command, direction, &mut buffer, &mut sense, timeout)
    } else {
        let list = data_out.get(..transfer).unwrap_or(data_out);
        send_to_device(fd, command, list, &mut sense, timeout)
    };
    let report = match sent {
        Ok(report) => report,
        // Only a CDB of no or too many bytes gets here: answer as for a failed ioctl.
        Err(_) => {
            return PrExecution {
                status: Status::CHECK_CONDITION,
                sense: padded(&scsi::sense::Sense::IO_ERROR.fixed_bytes()),
                data: Vec::new(),
                outcome: None,
            };
        }
    };
    let mapped = scsi::sgio::map_sg_io_outcome(&report.outcome);
    if let Some(synthesized) = mapped.synthesized_sense {
        sense = padded(&synthesized.fixed_bytes());
    }
    if mapped.status == Status::GOOD && is_in {
        buffer.truncate(report.transferred(buffer.len()));
    } else {
        buffer = Vec::new();
    }
    PrExecution {
        status: mapped.status,
        sense,
        data: buffer,
        outcome: Some(report.outcome),
    }
}

/// The CDB as the device must see it: cut to the length its opcode defines, never
/// longer than what was given.
fn command_bytes(cdb: &[u8]) -> &[u8] {
    let length = cdb
        .first()
        .and_then(|&opcode| scsi::cdb::cdb_length(opcode))
        .unwrap_or(cdb.len())
        .min(cdb.len());
    cdb.get(..length).unwrap_or(cdb)
}

fn padded(bytes: &[u8]) -> [u8; SENSE_BUFFER_SIZE] {
    let mut sense = [0u8; SENSE_BUFFER_SIZE];
    let len = bytes.len().min(SENSE_BUFFER_SIZE);
    if let (Some(dst), Some(src)) = (sense.get_mut(..len), bytes.get(..len)) {
        dst.copy_from_slice(src);
    }
    sense
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn pr_commands_go_out_with_ten_bytes() {
        let mut cdb = [0u8; 16];
        cdb[0] = 0x5E;
        assert_eq!(command_bytes(&cdb).len(), 10);
        cdb[0] = 0x5F;
        assert_eq!(command_bytes(&cdb).len(), 10);
        assert_eq!(command_bytes(&cdb[..4]).len(), 4);
    }

    #[test]
    fn a_regular_file_answers_like_a_failed_ioctl() {
        let file = tempfile::tempfile().expect("temporary file");
        let mut cdb = [0u8; 16];
        cdb[0] = 0x5E;
        cdb[8] = 0x20;
        let executed = execute_pr(file.as_fd(), &cdb, &[], Duration::from_secs(1));
        assert_eq!(executed.status, Status::CHECK_CONDITION);
        // ENOTTY: ABORTED COMMAND / I/O PROCESS TERMINATED, fixed format.
        let mut expected = [0u8; SENSE_BUFFER_SIZE];
        expected[..18].copy_from_slice(&[
            0x70, 0, 0x0B, 0, 0, 0, 0, 0x0A, 0, 0, 0, 0, 0x00, 0x06, 0, 0, 0, 0,
        ]);
        assert_eq!(executed.sense, expected);
        assert!(executed.data.is_empty());
        assert!(executed.is_transport_failure());
    }

    #[test]
    fn an_empty_cdb_is_not_sent() {
        let file = tempfile::tempfile().expect("temporary file");
        let executed = execute_pr(file.as_fd(), &[], &[], Duration::from_secs(1));
        assert_eq!(executed.status, Status::CHECK_CONDITION);
        assert_eq!(executed.outcome, None);
        assert!(!executed.is_transport_failure());
    }
}
