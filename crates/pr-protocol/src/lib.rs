#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

pub mod features;
mod handshake;
mod request;
mod response;
mod violation;
mod wire;

pub mod client;

pub use client::{
    ClientNegotiation, RequestEncodeError, ResponseDecoder, ResponseError, ResponseProgress,
    client_handshake, encode_request,
};
pub use handshake::{HandshakeDecoder, Negotiation};
pub use request::{CdbFault, Decoded, Direction, Request, RequestDecoder};
pub use response::{Response, ResponseEncodeError, sense_block};
pub use violation::Violation;

/// Bytes of CDB in every request (shorter CDBs are zero-padded by the client).
pub const CDB_SIZE: usize = 16;
/// Bytes of sense data in every response, whatever the status.
pub const SENSE_SIZE: usize = 96;
/// Largest transfer (PR IN allocation length or PR OUT parameter list) allowed.
pub const MAX_TRANSFER: usize = 8192;
/// Bytes of every response before the payload: result (4), size (4), sense (96).
pub const RESPONSE_HEADER_SIZE: usize = 4 + 4 + SENSE_SIZE;
/// Bytes of each handshake word (supported features, requested features).
pub const HANDSHAKE_SIZE: usize = 4;

/// Opcode of PERSISTENT RESERVE IN.
pub const PERSISTENT_RESERVE_IN: u8 = 0x5E;
/// Opcode of PERSISTENT RESERVE OUT.
pub const PERSISTENT_RESERVE_OUT: u8 = 0x5F;

/// SCSI status GOOD: the only status that may carry a payload.
pub const STATUS_GOOD: u8 = 0x00;
/// SCSI status CHECK CONDITION: the sense bytes say why.
pub const STATUS_CHECK_CONDITION: u8 = 0x02;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_match_the_wire_protocol() {
        assert_eq!(CDB_SIZE, 16);
        assert_eq!(SENSE_SIZE, 96);
        assert_eq!(MAX_TRANSFER, 8192);
        assert_eq!(RESPONSE_HEADER_SIZE, 104);
        assert_eq!(HANDSHAKE_SIZE, 4);
        assert_eq!(
            (PERSISTENT_RESERVE_IN, PERSISTENT_RESERVE_OUT),
            (0x5E, 0x5F)
        );
        assert_eq!((STATUS_GOOD, STATUS_CHECK_CONDITION), (0x00, 0x02));
    }
}
