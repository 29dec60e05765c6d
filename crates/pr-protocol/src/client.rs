//! Client side: handshake reply, request encoding, response decoding.

use thiserror::Error;

use crate::response::Response;
use crate::wire::{is_pr_opcode, pad_cdb, transfer_allowed, transfer_length};
use crate::{
    CDB_SIZE, HANDSHAKE_SIZE, MAX_TRANSFER, PERSISTENT_RESERVE_IN, PERSISTENT_RESERVE_OUT,
    RESPONSE_HEADER_SIZE, SENSE_SIZE, STATUS_GOOD,
};

/// The client's view of a completed handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientNegotiation {
    /// What the server advertised.
    pub supported: u32,
    /// What the client asks for (and gets): `wanted & supported`.
    pub requested: u32,
    /// The 4 bytes to write back to the server.
    pub reply: [u8; HANDSHAKE_SIZE],
}

/// Given the server's 4-byte greeting and the bits the client would like,
/// computes the reply: only bits the server supports are requested, so the
/// server never has a reason to close the connection.
pub fn client_handshake(greeting: [u8; HANDSHAKE_SIZE], wanted: u32) -> ClientNegotiation {
    let supported = u32::from_be_bytes(greeting);
    let requested = wanted & supported;
    ClientNegotiation {
        supported,
        requested,
        reply: requested.to_be_bytes(),
    }
}

/// A request the client refuses to send (the server would close on it).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestEncodeError {
    /// The CDB is empty or longer than 16 bytes.
    #[error("CDB of {len} bytes refused: must be 1 to {max} bytes", max = CDB_SIZE)]
    CdbLength {
        /// Length given.
        len: usize,
    },
    /// The opcode is not PERSISTENT RESERVE IN or OUT.
    #[error("opcode {opcode:#04x} refused: the helper only runs PERSISTENT RESERVE IN/OUT")]
    Opcode {
        /// Opcode given.
        opcode: u8,
    },
    /// The transfer length at `cdb[7..9]` is above the protocol's limit.
    #[error("transfer length {length} refused: the limit is {max} bytes", max = MAX_TRANSFER)]
    TransferTooLong {
        /// Length read from the CDB.
        length: u16,
    },
    /// Parameter-list bytes given for a PR IN.
    #[error("PR IN carries no parameter list, {len} bytes given")]
    DataOnPrIn {
        /// Bytes given.
        len: usize,
    },
    /// The PR OUT parameter list does not match `cdb[7..9]`.
    #[error("PR OUT parameter list is {len} bytes but cdb[7..9] says {length}")]
    ParameterListLength {
        /// Bytes given.
        len: usize,
        /// Length from the CDB.
        length: u16,
    },
}

/// Appends one request to `out`: the CDB zero-padded to 16 bytes, then the
/// PR OUT parameter list. The descriptor must travel (as `SCM_RIGHTS`) with
/// the first [`CDB_SIZE`] bytes. Nothing is appended on error.
pub fn encode_request(
    cdb: &[u8],
    data_out: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), RequestEncodeError> {
    let padded = match pad_cdb(cdb) {
        Some(padded) if !cdb.is_empty() => padded,
        _ => return Err(RequestEncodeError::CdbLength { len: cdb.len() }),
    };
    let opcode = padded[0];
    if !is_pr_opcode(opcode) {
        return Err(RequestEncodeError::Opcode { opcode });
    }
    let length = transfer_length(&padded);
    if !transfer_allowed(length) {
        return Err(RequestEncodeError::TransferTooLong { length });
    }
    if opcode == PERSISTENT_RESERVE_IN && !data_out.is_empty() {
        return Err(RequestEncodeError::DataOnPrIn {
            len: data_out.len(),
        });
    }
    if opcode == PERSISTENT_RESERVE_OUT && data_out.len() != usize::from(length) {
        return Err(RequestEncodeError::ParameterListLength {
            len: data_out.len(),
            length,
        });
    }
    out.reserve(CDB_SIZE.saturating_add(data_out.len()));
    out.extend_from_slice(&padded);
    out.extend_from_slice(data_out);
    Ok(())
}

/// A response the client cannot accept; the connection is out of step.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResponseError {
    /// `result` is not a SCSI status byte.
    #[error("server sent result {result}, not a SCSI status byte")]
    StatusOutOfRange {
        /// The word received.
        result: i32,
    },
    /// `sz` is negative.
    #[error("server sent a negative payload size {size}")]
    NegativeSize {
        /// The word received.
        size: i32,
    },
    /// `sz` is above the protocol's limit.
    #[error("server sent payload size {size}, above the {max}-byte limit", max = MAX_TRANSFER)]
    SizeAboveLimit {
        /// The word received.
        size: i32,
    },
    /// A payload in answer to something other than PR IN.
    #[error("server sent a {size}-byte payload for a request that is not PR IN")]
    PayloadNotPrIn {
        /// The word received.
        size: i32,
    },
    /// A payload with a status other than GOOD.
    #[error("server sent a {size}-byte payload with status {status:#04x}; only GOOD carries data")]
    PayloadWithoutGood {
        /// The word received.
        size: i32,
        /// The status received.
        status: u8,
    },
    /// A payload longer than the allocation length the client sent.
    #[error("server sent a {size}-byte payload but the request allocated {allocation}")]
    SizeAboveAllocation {
        /// The word received.
        size: i32,
        /// The allocation length of the request.
        allocation: u16,
    },
    /// The stream ended in the middle of the response.
    #[error("server closed the connection after {received} of {expected} {stage} bytes")]
    Truncated {
        /// "header" or "payload".
        stage: &'static str,
        /// Bytes of that stage received.
        received: usize,
        /// Bytes that stage needs.
        expected: usize,
    },
    /// The caller fed more than [`ResponseDecoder::bytes_wanted`].
    #[error("internal: {given} bytes fed to the response decoder when only {wanted} were wanted")]
    Overfed {
        /// Bytes the decoder asked for.
        wanted: usize,
        /// Bytes it was given.
        given: usize,
    },
    /// The decoder was fed after an error or after its response was complete.
    #[error("internal: response decoder fed after it finished")]
    Finished,
}

/// What a call to [`ResponseDecoder::feed`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseProgress {
    /// More bytes are needed; at most [`ResponseDecoder::bytes_wanted`].
    NeedMore,
    /// The whole response.
    Complete(Response),
}

/// Incremental client-side decoder of the response to one request.
#[derive(Debug, Clone)]
pub struct ResponseDecoder {
    opcode: u8,
    allocation: u16,
    state: State,
}

#[derive(Debug, Clone)]
enum State {
    Header {
        header: [u8; RESPONSE_HEADER_SIZE],
        filled: usize,
    },
    Payload {
        status: u8,
        sense: [u8; SENSE_SIZE],
        data: Vec<u8>,
        size: usize,
    },
    Finished,
}

impl ResponseDecoder {
    /// A decoder for the response to the request whose CDB is `request_cdb`
    /// (as given to [`encode_request`]; short CDBs count as zero-padded).
    pub fn new(request_cdb: &[u8]) -> Self {
        Self {
            opcode: request_cdb.first().copied().unwrap_or(0),
            allocation: transfer_length(request_cdb),
            state: State::Header {
                header: [0; RESPONSE_HEADER_SIZE],
                filled: 0,
            },
        }
    }

    /// How many bytes the current stage still needs (0 when finished).
    pub fn bytes_wanted(&self) -> usize {
        match &self.state {
            State::Header { filled, .. } => RESPONSE_HEADER_SIZE.saturating_sub(*filled),
            State::Payload { data, size, .. } => size.saturating_sub(data.len()),
            State::Finished => 0,
        }
    }

    /// Feeds bytes read from the server; at most
    /// [`bytes_wanted`](Self::bytes_wanted) of them.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<ResponseProgress, ResponseError> {
        let result = self.step(bytes);
        if result.is_err() {
            self.state = State::Finished;
        }
        result
    }

    /// Reports whether the server closing the stream now loses a response
    /// (it does unless the response is complete).
    pub fn end_of_stream(&self) -> Result<(), ResponseError> {
        match &self.state {
            State::Header { filled, .. } => Err(ResponseError::Truncated {
                stage: "header",
                received: *filled,
                expected: RESPONSE_HEADER_SIZE,
            }),
            State::Payload { data, size, .. } => Err(ResponseError::Truncated {
                stage: "payload",
                received: data.len(),
                expected: *size,
            }),
            State::Finished => Ok(()),
        }
    }

    fn step(&mut self, bytes: &[u8]) -> Result<ResponseProgress, ResponseError> {
        if matches!(self.state, State::Finished) {
            return Err(ResponseError::Finished);
        }
        let wanted = self.bytes_wanted();
        if bytes.len() > wanted {
            return Err(ResponseError::Overfed {
                wanted,
                given: bytes.len(),
            });
        }
        match &mut self.state {
            State::Header { header, filled } => {
                let end = filled.saturating_add(bytes.len());
                if let Some(slot) = header.get_mut(*filled..end) {
                    slot.copy_from_slice(bytes);
                }
                *filled = end;
                if *filled < RESPONSE_HEADER_SIZE {
                    return Ok(ResponseProgress::NeedMore);
                }
                let header = *header;
                self.start_payload(&header)
            }
            State::Payload {
                status,
                sense,
                data,
                size,
            } => {
                data.extend_from_slice(bytes);
                if data.len() < *size {
                    return Ok(ResponseProgress::NeedMore);
                }
                let response = Response {
                    status: *status,
                    sense: *sense,
                    data: std::mem::take(data),
                };
                self.state = State::Finished;
                Ok(ResponseProgress::Complete(response))
            }
            State::Finished => Err(ResponseError::Finished),
        }
    }

    /// Checks a complete header and moves to the payload stage (or completes).
    fn start_payload(
        &mut self,
        header: &[u8; RESPONSE_HEADER_SIZE],
    ) -> Result<ResponseProgress, ResponseError> {
        let [r0, r1, r2, r3, s0, s1, s2, s3, sense @ ..] = *header;
        let result = i32::from_be_bytes([r0, r1, r2, r3]);
        let size = i32::from_be_bytes([s0, s1, s2, s3]);
        let status =
            u8::try_from(result).map_err(|_| ResponseError::StatusOutOfRange { result })?;
        let len = usize::try_from(size).map_err(|_| ResponseError::NegativeSize { size })?;
        if len > MAX_TRANSFER {
            return Err(ResponseError::SizeAboveLimit { size });
        }
        if len > 0 {
            if self.opcode != PERSISTENT_RESERVE_IN {
                return Err(ResponseError::PayloadNotPrIn { size });
            }
            if status != STATUS_GOOD {
                return Err(ResponseError::PayloadWithoutGood { size, status });
            }
            if len > usize::from(self.allocation) {
                return Err(ResponseError::SizeAboveAllocation {
                    size,
                    allocation: self.allocation,
                });
            }
        }
        if len == 0 {
            self.state = State::Finished;
            return Ok(ResponseProgress::Complete(Response {
                status,
                sense,
                data: Vec::new(),
            }));
        }
        self.state = State::Payload {
            status,
            sense,
            data: Vec::with_capacity(len),
            size: len,
        };
        Ok(ResponseProgress::NeedMore)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pr_in(alloc: u16) -> [u8; 10] {
        let mut cdb = [0u8; 10];
        cdb[0] = 0x5E;
        cdb[7..9].copy_from_slice(&alloc.to_be_bytes());
        cdb
    }

    fn pr_out(len: u16) -> [u8; 10] {
        let mut cdb = pr_in(len);
        cdb[0] = 0x5F;
        cdb
    }

    fn header(result: i32, size: i32, sense_byte: u8) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&result.to_be_bytes());
        bytes.extend_from_slice(&size.to_be_bytes());
        bytes.extend_from_slice(&[sense_byte; SENSE_SIZE]);
        bytes
    }

    #[test]
    fn handshake_requests_only_supported_bits() {
        let negotiation = client_handshake([0, 0, 0, 0b101], 0b110);
        assert_eq!(
            negotiation,
            ClientNegotiation {
                supported: 0b101,
                requested: 0b100,
                reply: [0, 0, 0, 0b100]
            }
        );
        assert_eq!(client_handshake([0; 4], u32::MAX).reply, [0; 4]);
    }

    #[test]
    fn ten_byte_cdb_is_padded_to_sixteen() {
        let mut out = Vec::new();
        encode_request(&pr_in(8192), &[], &mut out).unwrap();
        assert_eq!(out.len(), 16);
        assert_eq!(&out[..10], &pr_in(8192));
        assert_eq!(&out[10..], &[0; 6]);
    }

    #[test]
    fn pr_out_carries_its_parameter_list_after_the_cdb() {
        let mut out = vec![0xFF];
        let list = [0xAB; 24];
        encode_request(&pr_out(24), &list, &mut out).unwrap();
        assert_eq!(out.len(), 1 + 16 + 24);
        assert_eq!(&out[1..11], &pr_out(24));
        assert_eq!(&out[17..], &list);
    }

    #[test]
    fn cdb_length_must_be_1_to_16() {
        let mut out = Vec::new();
        assert_eq!(
            encode_request(&[], &[], &mut out),
            Err(RequestEncodeError::CdbLength { len: 0 })
        );
        let mut long = [0u8; 17];
        long[0] = 0x5E;
        assert_eq!(
            encode_request(&long, &[], &mut out),
            Err(RequestEncodeError::CdbLength { len: 17 })
        );
        assert!(encode_request(&long[..16], &[], &mut out).is_ok());
        assert!(encode_request(&[0x5E], &[], &mut out).is_ok());
        assert_eq!(out.len(), 32);
    }

    #[test]
    fn other_opcodes_are_refused() {
        let mut out = Vec::new();
        assert_eq!(
            encode_request(&[0x00; 6], &[], &mut out),
            Err(RequestEncodeError::Opcode { opcode: 0 })
        );
        assert!(out.is_empty());
    }

    #[test]
    fn transfer_length_above_limit_is_refused() {
        let mut out = Vec::new();
        assert_eq!(
            encode_request(&pr_in(8193), &[], &mut out),
            Err(RequestEncodeError::TransferTooLong { length: 8193 })
        );
    }

    #[test]
    fn direction_and_length_of_data_are_checked() {
        let mut out = Vec::new();
        assert_eq!(
            encode_request(&pr_in(8), &[1], &mut out),
            Err(RequestEncodeError::DataOnPrIn { len: 1 })
        );
        assert_eq!(
            encode_request(&pr_out(24), &[0; 23], &mut out),
            Err(RequestEncodeError::ParameterListLength {
                len: 23,
                length: 24
            })
        );
        assert!(out.is_empty(), "nothing written on refusal");
    }

    #[test]
    fn header_only_response_completes_at_104_bytes() {
        let mut dec = ResponseDecoder::new(&pr_out(24));
        assert_eq!(dec.bytes_wanted(), 104);
        let bytes = header(0x18, 0, 0);
        assert_eq!(dec.feed(&bytes[..50]), Ok(ResponseProgress::NeedMore));
        assert_eq!(dec.bytes_wanted(), 54);
        assert_eq!(
            dec.feed(&bytes[50..]),
            Ok(ResponseProgress::Complete(Response::with_status(0x18)))
        );
        assert_eq!(dec.bytes_wanted(), 0);
        assert_eq!(dec.end_of_stream(), Ok(()));
        assert_eq!(dec.feed(&[]), Err(ResponseError::Finished));
    }

    #[test]
    fn pr_in_payload_follows_the_header() {
        let mut dec = ResponseDecoder::new(&pr_in(16));
        let mut bytes = header(0, 8, 0);
        bytes.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(dec.feed(&bytes[..104]), Ok(ResponseProgress::NeedMore));
        assert_eq!(dec.bytes_wanted(), 8);
        assert_eq!(dec.feed(&bytes[104..107]), Ok(ResponseProgress::NeedMore));
        assert_eq!(
            dec.end_of_stream(),
            Err(ResponseError::Truncated {
                stage: "payload",
                received: 3,
                expected: 8
            })
        );
        assert_eq!(
            dec.feed(&bytes[107..]),
            Ok(ResponseProgress::Complete(Response::good(vec![
                1, 2, 3, 4, 5, 6, 7, 8
            ])))
        );
    }

    #[test]
    fn sense_is_kept_with_check_condition() {
        let mut dec = ResponseDecoder::new(&pr_in(16));
        match dec.feed(&header(2, 0, 0x70)) {
            Ok(ResponseProgress::Complete(response)) => {
                assert_eq!(response.status, 2);
                assert_eq!(response.sense, [0x70; SENSE_SIZE]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn decode_header(
        cdb: &[u8],
        result: i32,
        size: i32,
    ) -> Result<ResponseProgress, ResponseError> {
        ResponseDecoder::new(cdb).feed(&header(result, size, 0))
    }

    #[test]
    fn inconsistent_headers_are_typed_errors() {
        assert_eq!(
            decode_header(&pr_in(8), 256, 0),
            Err(ResponseError::StatusOutOfRange { result: 256 })
        );
        assert_eq!(
            decode_header(&pr_in(8), -1, 0),
            Err(ResponseError::StatusOutOfRange { result: -1 })
        );
        assert_eq!(
            decode_header(&pr_in(8), 0, -4),
            Err(ResponseError::NegativeSize { size: -4 })
        );
        assert_eq!(
            decode_header(&pr_in(8192), 0, 8193),
            Err(ResponseError::SizeAboveLimit { size: 8193 })
        );
        assert_eq!(
            decode_header(&pr_out(8), 0, 1),
            Err(ResponseError::PayloadNotPrIn { size: 1 })
        );
        assert_eq!(
            decode_header(&pr_in(8), 2, 1),
            Err(ResponseError::PayloadWithoutGood { size: 1, status: 2 })
        );
        assert_eq!(
            decode_header(&pr_in(8), 0, 9),
            Err(ResponseError::SizeAboveAllocation {
                size: 9,
                allocation: 8
            })
        );
        assert!(matches!(
            decode_header(&pr_in(8), 0, 8),
            Ok(ResponseProgress::NeedMore)
        ));
    }

    #[test]
    fn errors_finish_the_decoder() {
        let mut dec = ResponseDecoder::new(&pr_in(8));
        assert!(dec.feed(&header(0, -1, 0)).is_err());
        assert_eq!(dec.bytes_wanted(), 0);
        assert_eq!(dec.feed(&[]), Err(ResponseError::Finished));
    }

    #[test]
    fn overfeeding_is_refused() {
        let mut dec = ResponseDecoder::new(&pr_in(8));
        assert_eq!(
            dec.feed(&[0; 105]),
            Err(ResponseError::Overfed {
                wanted: 104,
                given: 105
            })
        );
    }

    #[test]
    fn end_of_stream_in_header_is_truncation() {
        let mut dec = ResponseDecoder::new(&pr_in(8));
        assert_eq!(dec.feed(&[0; 10]), Ok(ResponseProgress::NeedMore));
        assert_eq!(
            dec.end_of_stream(),
            Err(ResponseError::Truncated {
                stage: "header",
                received: 10,
                expected: 104
            })
        );
        assert_eq!(
            dec.end_of_stream().unwrap_err().to_string(),
            "server closed the connection after 10 of 104 header bytes"
        );
    }

    #[test]
    fn decoder_for_an_empty_cdb_accepts_no_payload() {
        assert_eq!(
            decode_header(&[], 0, 1),
            Err(ResponseError::PayloadNotPrIn { size: 1 })
        );
    }
}
