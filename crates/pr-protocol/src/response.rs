//! Responses: the type both sides share, and the server-side encoder.

use thiserror::Error;

use crate::wire::transfer_length;
use crate::{
    PERSISTENT_RESERVE_IN, RESPONSE_HEADER_SIZE, SENSE_SIZE, STATUS_CHECK_CONDITION, STATUS_GOOD,
};

/// One response: SCSI status, sense (always 96 bytes on the wire), payload.
///
/// The server encodes it with [`encode`](Self::encode); the client's
/// [`crate::ResponseDecoder`] produces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The SCSI status (GOOD 0x00, CHECK CONDITION 0x02, BUSY 0x08, ...).
    pub status: u8,
    /// Sense data, meaningful only with CHECK CONDITION.
    pub sense: [u8; SENSE_SIZE],
    /// PR IN data; empty for anything but PR IN with GOOD.
    pub data: Vec<u8>,
}

/// A response the encoder refuses because QEMU's client asserts against it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResponseEncodeError {
    /// Payload on a PR OUT (or anything but PR IN).
    #[error("refusing a {len}-byte payload on opcode {opcode:#04x}: only PR IN carries data")]
    PayloadNotPrIn {
        /// Payload length.
        len: usize,
        /// The request's opcode.
        opcode: u8,
    },
    /// Payload with a status other than GOOD.
    #[error("refusing a {len}-byte payload with status {status:#04x}: only GOOD carries data")]
    PayloadWithoutGood {
        /// Payload length.
        len: usize,
        /// The response's status.
        status: u8,
    },
    /// Payload longer than the request's allocation length.
    #[error("refusing a {len}-byte payload: the request allocated {allocation} bytes")]
    PayloadExceedsAllocation {
        /// Payload length.
        len: usize,
        /// The allocation length from `cdb[7..9]`.
        allocation: u16,
    },
}

/// Copies `sense` into a zero-padded 96-byte block, truncating longer input.
pub fn sense_block(sense: &[u8]) -> [u8; SENSE_SIZE] {
    let mut block = [0u8; SENSE_SIZE];
    let len = sense.len().min(SENSE_SIZE);
    if let (Some(dst), Some(src)) = (block.get_mut(..len), sense.get(..len)) {
        dst.copy_from_slice(src);
    }
    block
}

impl Response {
    /// GOOD with a PR IN payload (empty for PR OUT).
    pub fn good(data: Vec<u8>) -> Self {
        Self {
            status: STATUS_GOOD,
            sense: [0; SENSE_SIZE],
            data,
        }
    }

    /// A status with no sense and no payload (BUSY, RESERVATION CONFLICT, ...).
    pub fn with_status(status: u8) -> Self {
        Self {
            status,
            sense: [0; SENSE_SIZE],
            data: Vec::new(),
        }
    }

    /// CHECK CONDITION carrying `sense` (e.g. the 18 bytes of a fixed-format
    /// sense), zero-padded to 96 bytes; longer input is truncated.
    pub fn check_condition(sense: &[u8]) -> Self {
        Self::with_sense(STATUS_CHECK_CONDITION, sense)
    }

    /// Any status with the device's sense bytes passed through (padded or
    /// truncated to 96), no payload.
    pub fn with_sense(status: u8, sense: &[u8]) -> Self {
        Self {
            status,
            sense: sense_block(sense),
            data: Vec::new(),
        }
    }

    /// Bytes this response takes on the wire.
    pub fn encoded_len(&self) -> usize {
        RESPONSE_HEADER_SIZE.saturating_add(self.data.len())
    }

    /// Checks the response against the request it answers, as QEMU's client
    /// would: a payload only on PR IN with GOOD, within the allocation length.
    pub fn validate(&self, request_cdb: &[u8]) -> Result<(), ResponseEncodeError> {
        let len = self.data.len();
        if len == 0 {
            return Ok(());
        }
        let opcode = request_cdb.first().copied().unwrap_or(0);
        if opcode != PERSISTENT_RESERVE_IN {
            return Err(ResponseEncodeError::PayloadNotPrIn { len, opcode });
        }
        if self.status != STATUS_GOOD {
            return Err(ResponseEncodeError::PayloadWithoutGood {
                len,
                status: self.status,
            });
        }
        let allocation = transfer_length(request_cdb);
        if len > usize::from(allocation) {
            return Err(ResponseEncodeError::PayloadExceedsAllocation { len, allocation });
        }
        Ok(())
    }

    /// Appends the wire form to `out`: result (i32 BE), size (i32 BE),
    /// 96 sense bytes, payload. Nothing is appended if
    /// [`validate`](Self::validate) refuses the response.
    pub fn encode(&self, request_cdb: &[u8], out: &mut Vec<u8>) -> Result<(), ResponseEncodeError> {
        self.validate(request_cdb)?;
        // validate() bounds the payload by a u16 allocation length.
        let size = i32::try_from(self.data.len()).unwrap_or(i32::MAX);
        out.reserve(self.encoded_len());
        out.extend_from_slice(&i32::from(self.status).to_be_bytes());
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(&self.sense);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pr_in(alloc: u16) -> [u8; 16] {
        let mut cdb = [0u8; 16];
        cdb[0] = 0x5E;
        cdb[7..9].copy_from_slice(&alloc.to_be_bytes());
        cdb
    }

    fn pr_out(len: u16) -> [u8; 16] {
        let mut cdb = pr_in(len);
        cdb[0] = 0x5F;
        cdb
    }

    #[test]
    fn good_with_payload_encodes_header_sense_and_data() {
        let mut out = Vec::new();
        Response::good(vec![1, 2, 3])
            .encode(&pr_in(8), &mut out)
            .unwrap();
        assert_eq!(out.len(), 107);
        assert_eq!(&out[..8], &[0, 0, 0, 0, 0, 0, 0, 3]);
        assert!(out[8..104].iter().all(|&b| b == 0));
        assert_eq!(&out[104..], &[1, 2, 3]);
    }

    #[test]
    fn encode_appends_to_what_is_already_there() {
        let mut out = vec![0xAA];
        Response::with_status(0x18)
            .encode(&pr_out(0), &mut out)
            .unwrap();
        assert_eq!(out.len(), 1 + RESPONSE_HEADER_SIZE);
        assert_eq!(&out[..9], &[0xAA, 0, 0, 0, 0x18, 0, 0, 0, 0]);
    }

    #[test]
    fn payload_filling_the_allocation_exactly_is_allowed() {
        let mut out = Vec::new();
        let response = Response::good(vec![0; 8192]);
        assert_eq!(response.encoded_len(), 104 + 8192);
        response.encode(&pr_in(8192), &mut out).unwrap();
        assert_eq!(out.len(), 104 + 8192);
        assert_eq!(&out[4..8], &8192i32.to_be_bytes());
    }

    #[test]
    fn payload_beyond_the_allocation_is_refused() {
        let mut out = Vec::new();
        let err = Response::good(vec![0; 9])
            .encode(&pr_in(8), &mut out)
            .unwrap_err();
        assert_eq!(
            err,
            ResponseEncodeError::PayloadExceedsAllocation {
                len: 9,
                allocation: 8
            }
        );
        assert!(out.is_empty(), "nothing written on refusal");
    }

    #[test]
    fn payload_on_pr_out_is_refused() {
        let err = Response::good(vec![0]).validate(&pr_out(8)).unwrap_err();
        assert_eq!(
            err,
            ResponseEncodeError::PayloadNotPrIn {
                len: 1,
                opcode: 0x5F
            }
        );
        assert!(Response::good(vec![0]).validate(&[]).is_err());
    }

    #[test]
    fn payload_without_good_is_refused() {
        let response = Response {
            status: STATUS_CHECK_CONDITION,
            sense: [0; SENSE_SIZE],
            data: vec![0],
        };
        assert_eq!(
            response.validate(&pr_in(8)),
            Err(ResponseEncodeError::PayloadWithoutGood {
                len: 1,
                status: 0x02
            })
        );
        assert_eq!(
            response.validate(&pr_in(8)).unwrap_err().to_string(),
            "refusing a 1-byte payload with status 0x02: only GOOD carries data"
        );
    }

    #[test]
    fn empty_payload_is_fine_for_any_request_and_status() {
        for status in [0x00, 0x02, 0x08, 0x18, 0x28] {
            for cdb in [pr_in(0), pr_out(5)] {
                assert_eq!(Response::with_status(status).validate(&cdb), Ok(()));
            }
        }
    }

    #[test]
    fn check_condition_pads_sense_to_96() {
        let response = Response::check_condition(&[0x70, 0, 5]);
        assert_eq!(response.status, STATUS_CHECK_CONDITION);
        assert_eq!(&response.sense[..3], &[0x70, 0, 5]);
        assert!(response.sense[3..].iter().all(|&b| b == 0));
        assert!(response.data.is_empty());
    }

    #[test]
    fn with_sense_truncates_long_sense() {
        let long = [0xEE; 200];
        let response = Response::with_sense(0x02, &long);
        assert_eq!(response.sense, [0xEE; SENSE_SIZE]);
    }

    #[test]
    fn sense_block_pads_and_truncates() {
        assert_eq!(sense_block(&[]), [0; SENSE_SIZE]);
        assert_eq!(sense_block(&[1; 96]), [1; SENSE_SIZE]);
        assert_eq!(sense_block(&[1; 97]), [1; SENSE_SIZE]);
        let block = sense_block(&[9; 18]);
        assert_eq!(&block[..18], &[9; 18]);
        assert!(block[18..].iter().all(|&b| b == 0));
    }

    #[test]
    fn good_and_with_status_have_zero_sense() {
        assert_eq!(Response::good(Vec::new()).status, STATUS_GOOD);
        assert_eq!(Response::good(Vec::new()).sense, [0; SENSE_SIZE]);
        assert_eq!(Response::with_status(0x08).status, 0x08);
        assert_eq!(Response::with_status(0x08).sense, [0; SENSE_SIZE]);
    }
}
