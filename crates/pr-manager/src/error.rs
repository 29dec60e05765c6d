//! What can go wrong, sorted the way a caller reacts to it: a command the
//! caller built wrong, a transport that failed, a peer that broke the
//! protocol, or a device that answered with a SCSI error.

use std::io;
use std::path::PathBuf;

use scsi::sense::Sense;
use scsi::status::Status;
use thiserror::Error;

/// A command refused before anything was sent (QEMU's client checks).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidCommand {
    /// The CDB must be 1 to 16 bytes long.
    #[error("CDB of {0} bytes (must be 1 to 16)")]
    CdbLength(usize),
    /// Only PERSISTENT RESERVE IN (0x5E) and OUT (0x5F) travel to a helper.
    #[error("opcode {0:#04x} is not PERSISTENT RESERVE IN or OUT")]
    Opcode(u8),
    /// PR IN must read from the device and PR OUT must write to it.
    #[error("opcode {opcode:#04x} needs a {expected} buffer")]
    Direction {
        /// The CDB's opcode.
        opcode: u8,
        /// The direction that opcode requires.
        expected: &'static str,
    },
    /// The CDB asks for more bytes than the buffer holds.
    #[error("the CDB transfers {needed} bytes but the buffer holds {available}")]
    BufferTooSmall {
        /// Transfer length from the CDB.
        needed: usize,
        /// Length of the caller's buffer.
        available: usize,
    },
    /// The protocol encoder refused the request.
    #[error("the request cannot be encoded")]
    Encode(#[source] pr_protocol::RequestEncodeError),
    /// A PR OUT parameter list longer than the protocol allows.
    #[error("a parameter list of {0} bytes exceeds the protocol limit of 8192")]
    ParameterListTooLong(usize),
}

/// Opening a connection to the helper failed (one attempt).
#[derive(Debug, Error)]
pub enum ConnectError {
    /// `connect(2)` on the socket path failed.
    #[error("connecting the socket failed")]
    Socket(#[source] io::Error),
    /// Reading the helper's 4-byte feature word failed.
    #[error("reading the helper's feature word failed")]
    ReadFeatures(#[source] io::Error),
    /// Writing our 4-byte feature word failed.
    #[error("writing our feature word failed")]
    WriteFeatures(#[source] io::Error),
}

impl ConnectError {
    /// The errno behind the failure, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Socket(e) | Self::ReadFeatures(e) | Self::WriteFeatures(e) => e.raw_os_error(),
        }
    }
}

/// The socket failed: no connection, or it broke during a command.
#[derive(Debug, Error)]
pub enum TransportError {
    /// Every connection attempt failed.
    #[error("could not connect to {} after {attempts} attempt(s)", path.display())]
    Connect {
        /// The helper socket path.
        path: PathBuf,
        /// How many attempts were made.
        attempts: u32,
        /// Why the last attempt failed.
        #[source]
        source: ConnectError,
    },
    /// Sending the CDB, descriptor or parameter list failed.
    #[error("sending the request failed")]
    Send(#[source] io::Error),
    /// Reading the reply failed.
    #[error("receiving the reply failed")]
    Receive(#[source] io::Error),
}

/// The helper broke the protocol or went away mid-command.
#[derive(Debug, Error)]
pub enum ProtocolError {
    /// The helper closed the connection before the reply was complete.
    #[error(
        "the helper closed the connection after receiving {received} of {expected} reply bytes"
    )]
    PeerClosed {
        /// Reply bytes received before the close.
        received: usize,
        /// Reply bytes expected at that stage.
        expected: usize,
    },
    /// A payload larger than the caller's buffer (cannot happen with a
    /// checked allocation length; kept so nothing can index out of bounds).
    #[error("a payload of {size} bytes does not fit the {buffer}-byte buffer")]
    PayloadTooLong {
        /// Payload size announced.
        size: usize,
        /// Caller's buffer length.
        buffer: usize,
    },
    /// The reply did not make sense (bad size, size for a non-GOOD status...).
    #[error("the helper sent a malformed reply")]
    MalformedReply(#[source] pr_protocol::ResponseError),
}

/// A command completed with a status other than GOOD.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{status}{}", sense.map(|s| format!(": {s}")).unwrap_or_default())]
pub struct ScsiError {
    /// The SCSI status the device (or helper) returned.
    pub status: Status,
    /// The decoded sense, when the status is CHECK CONDITION.
    pub sense: Option<Sense>,
}

/// Any failure of the client library.
#[derive(Debug, Error)]
pub enum Error {
    /// The command was refused before sending.
    #[error("invalid command: {0}")]
    InvalidCommand(#[from] InvalidCommand),
    /// The socket failed.
    #[error("transport failure")]
    Transport(#[from] TransportError),
    /// The helper broke the protocol.
    #[error("protocol failure")]
    Protocol(#[from] ProtocolError),
    /// The device answered with an error status.
    #[error("command failed: {0}")]
    Scsi(#[from] ScsiError),
    /// The typed command could not be encoded.
    #[error("the command could not be encoded")]
    Encode(#[from] scsi::pr::PrEncodeError),
    /// The command succeeded but its payload could not be decoded.
    #[error("the reply payload could not be decoded")]
    Decode(#[from] scsi::pr::PrDecodeError),
}

impl Error {
    /// True for failures of the link to the helper (transport or protocol):
    /// QEMU reports those to the guest as LOGICAL UNIT COMMUNICATION FAILURE.
    pub fn is_communication_failure(&self) -> bool {
        matches!(self, Self::Transport(_) | Self::Protocol(_))
    }

    /// True when the device reported RESERVATION CONFLICT.
    pub fn is_reservation_conflict(&self) -> bool {
        matches!(self, Self::Scsi(e) if e.status == Status::RESERVATION_CONFLICT)
    }
}
