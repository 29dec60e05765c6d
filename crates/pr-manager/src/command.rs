//! One command as the caller hands it over (CDB, buffer) and as it comes
//! back (status, sense, data length, residual): the `sg_io_hdr` view.

use pr_protocol::{
    CDB_SIZE, MAX_TRANSFER, PERSISTENT_RESERVE_IN, PERSISTENT_RESERVE_OUT, SENSE_SIZE,
};
use scsi::sense::Sense;
use scsi::status::Status;

use crate::error::{Error, InvalidCommand};

/// The data phase of a command and the caller's buffer for it.
#[derive(Debug)]
pub enum DataTransfer<'a> {
    /// Parameter list sent to the device (PR OUT).
    ToDevice(&'a [u8]),
    /// Buffer the device's data is read into (PR IN).
    FromDevice(&'a mut [u8]),
}

impl DataTransfer<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::ToDevice(b) => b.len(),
            Self::FromDevice(b) => b.len(),
        }
    }
}

/// The outcome of one command, as an `sg_io_hdr` caller sees it.
///
/// Transport and protocol failures do not vanish: like QEMU, they become
/// CHECK CONDITION, ABORTED COMMAND / LOGICAL UNIT COMMUNICATION FAILURE
/// (0B/08/00) so a VMM can hand the reply straight to its guest, and the
/// cause is kept in [`failure`](Self::failure).
#[derive(Debug)]
pub struct Reply {
    /// SCSI status.
    pub status: Status,
    /// Sense bytes as received (meaningful with CHECK CONDITION only).
    pub sense: [u8; SENSE_SIZE],
    /// Bytes of data written to the start of the data-in buffer.
    pub data_len: usize,
    /// Buffer length minus `data_len` (like `sg_io_hdr.resid`).
    pub residual: usize,
    /// Why the link to the helper failed, when it did.
    pub failure: Option<Error>,
}

impl Reply {
    /// True when the status is GOOD and the link did not fail.
    pub fn is_good(&self) -> bool {
        self.failure.is_none() && self.status == Status::GOOD
    }

    /// The sense, decoded, when the status is CHECK CONDITION.
    pub fn decoded_sense(&self) -> Option<Sense> {
        (self.status == Status::CHECK_CONDITION).then(|| Sense::parse(self.valid_sense()))
    }

    /// The meaningful prefix of the sense bytes (what `sb_len_wr` would say):
    /// empty unless CHECK CONDITION, else the header plus additional length.
    pub fn valid_sense(&self) -> &[u8] {
        if self.status != Status::CHECK_CONDITION {
            return &[];
        }
        let additional = usize::from(self.sense.get(7).copied().unwrap_or(0));
        let len = match self.sense.first().map(|b| b & 0x7f) {
            Some(0x70..=0x73) => 8usize.saturating_add(additional),
            _ => 0,
        };
        self.sense.get(..len.min(SENSE_SIZE)).unwrap_or(&[])
    }

    pub(crate) fn communication_failure(failure: Error, buffer_len: usize) -> Self {
        let mut sense = [0u8; SENSE_SIZE];
        let fixed = Sense::LUN_COMM_FAILURE.fixed_bytes();
        if let Some(dst) = sense.get_mut(..fixed.len()) {
            dst.copy_from_slice(&fixed);
        }
        Self {
            status: Status::CHECK_CONDITION,
            sense,
            data_len: 0,
            residual: buffer_len,
            failure: Some(failure),
        }
    }
}

/// A validated command, ready to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prepared {
    /// The CDB to send (PR IN allocation length clamped), zero-padded.
    pub cdb: [u8; CDB_SIZE],
    /// Length of the caller's CDB.
    pub cdb_len: usize,
    /// Parameter-list bytes to send after the CDB (PR OUT).
    pub data_out_len: usize,
    /// Most payload bytes the reply may carry (PR IN).
    pub data_in_len: usize,
}

impl Prepared {
    /// The request's wire bytes: the CDB (zero-padded to 16 bytes) followed, for PR OUT,
    /// by the parameter list taken from the caller's buffer.
    pub(crate) fn encode(&self, data: &DataTransfer<'_>) -> Result<Vec<u8>, InvalidCommand> {
        let data_out: &[u8] = match data {
            DataTransfer::ToDevice(b) => b.get(..self.data_out_len).unwrap_or(&[]),
            DataTransfer::FromDevice(_) => &[],
        };
        let mut request = Vec::with_capacity(CDB_SIZE + data_out.len());
        pr_protocol::encode_request(&self.cdb[..self.cdb_len], data_out, &mut request)
            .map_err(InvalidCommand::Encode)?;
        Ok(request)
    }
}

/// QEMU's checks, plus clamping a PR IN allocation length to what the
/// protocol can carry (SPC lets a device truncate to the allocation length).
pub(crate) fn prepare(cdb: &[u8], data: &DataTransfer<'_>) -> Result<Prepared, InvalidCommand> {
    if cdb.is_empty() || cdb.len() > CDB_SIZE {
        return Err(InvalidCommand::CdbLength(cdb.len()));
    }
    let mut padded = [0u8; CDB_SIZE];
    padded
        .get_mut(..cdb.len())
        .ok_or(InvalidCommand::CdbLength(cdb.len()))?
        .copy_from_slice(cdb);
    let opcode = padded[0];
    // Group-2 transfer length, as both QEMU sides compute it.
    let length = usize::from(u16::from_be_bytes([padded[7], padded[8]]));
    if length > data.len() {
        return Err(InvalidCommand::BufferTooSmall {
            needed: length,
            available: data.len(),
        });
    }
    match (opcode, data) {
        (PERSISTENT_RESERVE_IN, DataTransfer::FromDevice(_)) => {
            let clamped = length.min(MAX_TRANSFER);
            let bytes = u16::try_from(clamped).unwrap_or(u16::MAX).to_be_bytes();
            padded[7] = bytes[0];
            padded[8] = bytes[1];
            Ok(Prepared {
                cdb: padded,
                cdb_len: cdb.len(),
                data_out_len: 0,
                data_in_len: clamped,
            })
        }
        (PERSISTENT_RESERVE_OUT, DataTransfer::ToDevice(_)) => {
            if length > MAX_TRANSFER {
                return Err(InvalidCommand::ParameterListTooLong(length));
            }
            Ok(Prepared {
                cdb: padded,
                cdb_len: cdb.len(),
                data_out_len: length,
                data_in_len: 0,
            })
        }
        (PERSISTENT_RESERVE_IN, _) => Err(InvalidCommand::Direction {
            opcode,
            expected: "data-in",
        }),
        (PERSISTENT_RESERVE_OUT, _) => Err(InvalidCommand::Direction {
            opcode,
            expected: "data-out",
        }),
        _ => Err(InvalidCommand::Opcode(opcode)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pr_in(alloc: u16) -> [u8; 10] {
        let a = alloc.to_be_bytes();
        [0x5E, 0, 0, 0, 0, 0, 0, a[0], a[1], 0]
    }

    #[test]
    fn cdb_length_must_be_1_to_16() {
        let mut buf = [0u8; 8];
        for len in [0usize, 17, 32] {
            let cdb = vec![0x5E; len];
            assert_eq!(
                prepare(&cdb, &DataTransfer::FromDevice(&mut buf)),
                Err(InvalidCommand::CdbLength(len))
            );
        }
    }

    #[test]
    fn direction_must_match_opcode() {
        let mut buf = [0u8; 8];
        assert!(matches!(
            prepare(&pr_in(8), &DataTransfer::ToDevice(&buf)),
            Err(InvalidCommand::Direction { opcode: 0x5E, .. })
        ));
        let mut out = pr_in(8);
        out[0] = 0x5F;
        assert!(matches!(
            prepare(&out, &DataTransfer::FromDevice(&mut buf)),
            Err(InvalidCommand::Direction { opcode: 0x5F, .. })
        ));
    }

    #[test]
    fn other_opcodes_are_refused() {
        let mut buf = [0u8; 8];
        let mut cdb = pr_in(8);
        cdb[0] = 0x12;
        assert_eq!(
            prepare(&cdb, &DataTransfer::FromDevice(&mut buf)),
            Err(InvalidCommand::Opcode(0x12))
        );
    }

    #[test]
    fn buffer_must_hold_the_transfer_length() {
        let mut buf = [0u8; 7];
        assert_eq!(
            prepare(&pr_in(8), &DataTransfer::FromDevice(&mut buf)),
            Err(InvalidCommand::BufferTooSmall {
                needed: 8,
                available: 7
            })
        );
    }

    #[test]
    fn large_allocation_length_is_clamped_in_the_cdb_sent() {
        let mut buf = vec![0u8; 16384];
        let p = prepare(&pr_in(16384), &DataTransfer::FromDevice(&mut buf)).unwrap();
        assert_eq!(&p.cdb[7..9], &8192u16.to_be_bytes());
        assert_eq!(p.data_in_len, 8192);
        assert_eq!(p.cdb_len, 10);
        assert_eq!(&p.cdb[10..], &[0; 6]);
    }

    #[test]
    fn long_parameter_list_is_refused() {
        let buf = vec![0u8; 9000];
        let mut cdb = pr_in(9000);
        cdb[0] = 0x5F;
        assert_eq!(
            prepare(&cdb, &DataTransfer::ToDevice(&buf)),
            Err(InvalidCommand::ParameterListTooLong(9000))
        );
        cdb[7..9].copy_from_slice(&24u16.to_be_bytes());
        let p = prepare(&cdb, &DataTransfer::ToDevice(&buf)).unwrap();
        assert_eq!(p.data_out_len, 24);
    }

    #[test]
    fn communication_failure_is_0b_08_00() {
        let reply = Reply::communication_failure(
            Error::Protocol(crate::error::ProtocolError::PeerClosed {
                received: 0,
                expected: 104,
            }),
            10,
        );
        assert_eq!(reply.status, Status::CHECK_CONDITION);
        assert_eq!(reply.decoded_sense(), Some(Sense::LUN_COMM_FAILURE));
        assert_eq!(reply.valid_sense().len(), 18);
        assert_eq!(reply.residual, 10);
        assert!(!reply.is_good());
    }
}
