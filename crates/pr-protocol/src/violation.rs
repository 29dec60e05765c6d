//! Why the server closes a connection.

use thiserror::Error;

use crate::features::UnsupportedFeatures;

/// A protocol violation by the peer: the server must close the connection.
///
/// Each variant's `Display` is the single log line the daemon writes when
/// it does so; it says what the peer did wrong. Descriptors that arrived
/// with the offending bytes have already been dropped (closed) by the
/// decoder, which owns them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Violation {
    /// The requested-features word has bits the server does not support.
    #[error("handshake refused: {0}")]
    UnsupportedFeatures(#[from] UnsupportedFeatures),
    /// Descriptors were sent with the requested-features word.
    #[error("peer sent {count} descriptor(s) during the feature handshake")]
    DescriptorDuringHandshake {
        /// How many arrived (all closed).
        count: usize,
    },
    /// The 16 CDB bytes arrived without a descriptor.
    #[error("request without a descriptor: the CDB must carry exactly one")]
    MissingDescriptor,
    /// More than one descriptor arrived with the CDB.
    #[error("peer sent {count} descriptors with one CDB, exactly one is allowed (all closed)")]
    ExtraDescriptors {
        /// How many arrived with this CDB so far (all closed).
        count: usize,
    },
    /// `cdb[0]` is neither PERSISTENT RESERVE IN nor OUT.
    #[error("opcode {opcode:#04x} refused: only PERSISTENT RESERVE IN (0x5e) and OUT (0x5f)")]
    UnknownOpcode {
        /// The opcode received.
        opcode: u8,
    },
    /// The transfer length in `cdb[7..9]` is above the protocol's limit.
    #[error("transfer length {length} refused: the limit is {max} bytes", max = crate::MAX_TRANSFER)]
    TransferTooLong {
        /// The length read from the CDB.
        length: u16,
    },
    /// Descriptors arrived with PR OUT parameter-list bytes.
    #[error("peer sent {count} descriptor(s) with the parameter list (all closed)")]
    DescriptorWithParameterList {
        /// How many arrived (all closed).
        count: usize,
    },
    /// The stream ended in the middle of a handshake word or a request.
    #[error("peer closed the connection after {received} of {expected} {stage} bytes")]
    Truncated {
        /// What was being read: "feature word", "CDB" or "parameter list".
        stage: &'static str,
        /// Bytes of that stage received.
        received: usize,
        /// Bytes that stage needs.
        expected: usize,
    },
    /// The caller fed more bytes than [`crate::RequestDecoder::bytes_wanted`]
    /// (or the handshake's) allowed: a bug in the caller, not the peer, but
    /// the stream position is lost all the same.
    #[error("internal: {given} bytes fed to the decoder when only {wanted} were wanted")]
    Overfed {
        /// Bytes the decoder asked for.
        wanted: usize,
        /// Bytes it was given.
        given: usize,
    },
    /// The decoder was fed after it had already reported a violation.
    #[error("internal: decoder fed after it reported a violation")]
    AlreadyFailed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_display_as_one_line() {
        let all = [
            Violation::DescriptorDuringHandshake { count: 1 },
            Violation::MissingDescriptor,
            Violation::ExtraDescriptors { count: 2 },
            Violation::UnknownOpcode { opcode: 0x12 },
            Violation::TransferTooLong { length: 9000 },
            Violation::DescriptorWithParameterList { count: 1 },
            Violation::Truncated {
                stage: "CDB",
                received: 1,
                expected: 16,
            },
            Violation::Overfed {
                wanted: 1,
                given: 2,
            },
            Violation::AlreadyFailed,
        ];
        for violation in all {
            let line = violation.to_string();
            assert!(!line.is_empty() && !line.contains('\n'), "{line:?}");
        }
        assert_eq!(
            Violation::UnknownOpcode { opcode: 0x12 }.to_string(),
            "opcode 0x12 refused: only PERSISTENT RESERVE IN (0x5e) and OUT (0x5f)"
        );
        assert_eq!(
            Violation::TransferTooLong { length: 9000 }.to_string(),
            "transfer length 9000 refused: the limit is 8192 bytes"
        );
    }
}
