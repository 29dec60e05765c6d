//! The SG_IO backend: one `SG_IO` ioctl per command on a SCSI block or sg device.
//!
//! Unlike QEMU's helper, the CDB goes out with the opcode's real length (10 for PR IN
//! and OUT), the data buffer is exactly the transfer length from the CDB rather than a
//! fixed 8192 bytes, the timeout is the configured one (QEMU uses 1 ms), and the payload
//! returned is clamped both to the allocation length and to what the device transferred.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use pr_protocol::{Direction, Request, Response, STATUS_GOOD};
use scsi::sense::Sense;
use sg_io::SENSE_BUFFER_SIZE;

/// Sends `request` to the device behind `fd` and maps the outcome to a response.
/// Blocks for at most about `timeout` (the kernel enforces it).
pub fn execute(fd: BorrowedFd<'_>, request: &Request<OwnedFd>, timeout: Duration) -> Response {
    let command = command_bytes(&request.cdb);
    let transfer = usize::from(request.transfer_length());
    let (mut buffer, direction) = match request.direction() {
        Direction::In => (
            vec![0u8; transfer],
            data_direction(transfer, sg_io::Direction::FromDevice),
        ),
        Direction::Out => {
            // The decoder read exactly `transfer` bytes; never send more than the CDB says.
            let mut list = request.data_out.clone();
            list.truncate(transfer);
            let len = list.len();
            (list, data_direction(len, sg_io::Direction::ToDevice))
        }
    };
    let mut sense = [0u8; SENSE_BUFFER_SIZE];
    let report = match sg_io::send(fd, command, direction, &mut buffer, &mut sense, timeout) {
        Ok(report) => report,
        Err(error) => {
            // Only reachable through a malformed CDB length or buffer size, which the
            // protocol limits exclude; answer as for a failed ioctl.
            tracing::warn!(error = %error, "SG_IO not sent");
            return super::check_condition(Sense::IO_ERROR);
        }
    };
    // Field by field: sg-io reports the same four values the mapping takes.
    let outcome = scsi::sgio::SgIoOutcome {
        errno: report.outcome.errno,
        host_status: report.outcome.host_status,
        driver_status: report.outcome.driver_status,
        scsi_status: report.outcome.scsi_status,
    };
    let result = scsi::sgio::map_sg_io_outcome(&outcome);
    let status = result.status.as_u8();
    let mut response = match result.synthesized_sense {
        Some(synthesized) => Response::with_sense(status, &synthesized.fixed_bytes()),
        None => Response::with_sense(status, &sense),
    };
    if status == STATUS_GOOD && request.direction() == Direction::In {
        buffer.truncate(report.transferred(buffer.len()));
        response.data = buffer;
    }
    response
}

/// The CDB as the device must see it: cut to the length its opcode defines (group 2,
/// i.e. 10 bytes, for PR IN and OUT), never longer than what was received.
fn command_bytes(cdb: &[u8; pr_protocol::CDB_SIZE]) -> &[u8] {
    let length = scsi::cdb::cdb_length(cdb[0])
        .unwrap_or(cdb.len())
        .clamp(1, cdb.len());
    cdb.get(..length).unwrap_or(cdb)
}

/// An empty transfer has no data phase.
fn data_direction(len: usize, direction: sg_io::Direction) -> sg_io::Direction {
    if len == 0 {
        sg_io::Direction::None
    } else {
        direction
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pr_commands_go_out_with_ten_bytes() {
        let mut cdb = [0u8; 16];
        cdb[0] = 0x5E;
        assert_eq!(command_bytes(&cdb).len(), 10);
        cdb[0] = 0x5F;
        assert_eq!(command_bytes(&cdb).len(), 10);
    }

    #[test]
    fn empty_transfers_have_no_data_phase() {
        assert_eq!(
            data_direction(0, sg_io::Direction::FromDevice),
            sg_io::Direction::None
        );
        assert_eq!(
            data_direction(8, sg_io::Direction::ToDevice),
            sg_io::Direction::ToDevice
        );
    }
}
