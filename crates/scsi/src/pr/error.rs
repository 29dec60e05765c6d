//! Errors of the persistent-reservation encoders and decoders.

use thiserror::Error;

use crate::sense::Sense;

/// Why bytes from a peer or a device are not a valid PR structure.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum PrDecodeError {
    #[error("{what}: {got} bytes, at least {needed} needed")]
    TooShort {
        what: &'static str,
        needed: usize,
        got: usize,
    },
    #[error("{what}: length field says {declared} bytes, {actual} present")]
    LengthMismatch {
        what: &'static str,
        declared: u64,
        actual: u64,
    },
    #[error("{what}: additional length {len} is not valid")]
    BadAdditionalLength { what: &'static str, len: u32 },
    #[error("opcode 0x{0:02X} is not PERSISTENT RESERVE IN/OUT")]
    NotPrCommand(u8),
    #[error("CDB of {got} bytes is shorter than the 10 of a PERSISTENT RESERVE command")]
    CdbTooShort { got: usize },
    #[error("unknown PERSISTENT RESERVE IN service action 0x{0:02X}")]
    UnknownPrInAction(u8),
    #[error("unknown PERSISTENT RESERVE OUT service action 0x{0:02X}")]
    UnknownPrOutAction(u8),
    #[error("iSCSI transport ID: name is not NUL-terminated")]
    IscsiNameUnterminated,
    #[error("iSCSI transport ID: name is not UTF-8")]
    IscsiNameNotUtf8,
    #[error("iSCSI transport ID of format 1: no \",i,0x\" before the ISID")]
    IscsiIsidMissing,
}

impl PrDecodeError {
    /// The sense a target answers with when a command carries this error: length
    /// problems are PARAMETER LIST LENGTH ERROR, CDB problems INVALID FIELD IN CDB,
    /// anything else INVALID FIELD IN PARAMETER LIST.
    pub fn sense(&self) -> Sense {
        match self {
            PrDecodeError::TooShort { .. }
            | PrDecodeError::LengthMismatch { .. }
            | PrDecodeError::BadAdditionalLength { .. } => Sense::PARAMETER_LIST_LENGTH_ERROR,
            PrDecodeError::NotPrCommand(_)
            | PrDecodeError::CdbTooShort { .. }
            | PrDecodeError::UnknownPrInAction(_)
            | PrDecodeError::UnknownPrOutAction(_) => Sense::INVALID_FIELD_IN_CDB,
            PrDecodeError::IscsiNameUnterminated
            | PrDecodeError::IscsiNameNotUtf8
            | PrDecodeError::IscsiIsidMissing => Sense::INVALID_FIELD_IN_PARAMETER_LIST,
        }
    }
}

/// Why a PR structure cannot be encoded.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum PrEncodeError {
    #[error("transport IDs given without SPEC_I_PT")]
    TransportIdsWithoutSpecIPt,
    #[error("iSCSI name or ISID contains a NUL byte")]
    IscsiNul,
    #[error("iSCSI ISID contains the \",i,0x\" separator")]
    IscsiIsidHasSeparator,
    #[error("{what}: {len} bytes do not fit the length field")]
    TooLong { what: &'static str, len: usize },
}
