//! Feature bits exchanged in the handshake, and their negotiation.
//!
//! The server writes the bits it supports, the client answers with the bits
//! it wants; asking for a bit the server lacks closes the connection. A new
//! bit is the only compatible way to extend the protocol. Upstream QEMU
//! defines none, so both sides write 0.

use thiserror::Error;

/// Reserved for a future "tagged commands" extension (several commands in
/// flight on one connection). Not implemented and not advertised: it is
/// named here only so no one reuses the bit for something else.
pub const TAGGED_COMMANDS: u32 = 1 << 0;

/// The bits this implementation supports and advertises: none, as upstream.
pub const SUPPORTED: u32 = 0;

/// The client asked for bits the server does not support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error(
    "client requested features {requested:#010x}, of which {unsupported:#010x} are not supported"
)]
pub struct UnsupportedFeatures {
    /// The whole word the client sent.
    pub requested: u32,
    /// The bits of `requested` that the server does not support.
    pub unsupported: u32,
}

/// Decides the enabled feature set: every requested bit must be supported.
///
/// Returns the enabled bits (exactly `requested`) or the offending bits.
pub fn negotiate(supported: u32, requested: u32) -> Result<u32, UnsupportedFeatures> {
    let unsupported = requested & !supported;
    if unsupported == 0 {
        Ok(requested)
    } else {
        Err(UnsupportedFeatures {
            requested,
            unsupported,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_requested_is_always_accepted() {
        assert_eq!(negotiate(SUPPORTED, 0), Ok(0));
        assert_eq!(negotiate(u32::MAX, 0), Ok(0));
    }

    #[test]
    fn supported_subset_is_enabled() {
        assert_eq!(negotiate(0b1011, 0b0011), Ok(0b0011));
    }

    #[test]
    fn unsupported_bits_are_reported() {
        assert_eq!(
            negotiate(0b0001, 0b0111),
            Err(UnsupportedFeatures {
                requested: 0b0111,
                unsupported: 0b0110
            })
        );
    }

    #[test]
    fn tagged_commands_is_reserved_but_not_advertised() {
        assert_eq!(SUPPORTED & TAGGED_COMMANDS, 0);
        assert!(negotiate(SUPPORTED, TAGGED_COMMANDS).is_err());
    }

    #[test]
    fn unsupported_display_names_the_bits() {
        let err = negotiate(0, 0x10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "client requested features 0x00000010, of which 0x00000010 are not supported"
        );
    }
}
