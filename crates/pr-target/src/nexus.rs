//! I_T nexuses: an initiator port (named by its TransportID) seen through one target port.

use serde::{Deserialize, Serialize};

/// SPC protocol identifiers that have a TransportID layout we understand.
const PROTOCOL_FIBRE_CHANNEL: u8 = 0x0;
const PROTOCOL_SRP: u8 = 0x4;
const PROTOCOL_ISCSI: u8 = 0x5;
const PROTOCOL_SAS: u8 = 0x6;

/// The fixed size of every TransportID but iSCSI's.
const FIXED_TRANSPORT_ID_LEN: usize = 24;
/// The iSCSI TransportID header: protocol, reserved, 2-byte additional length.
const ISCSI_HEADER_LEN: usize = 4;

/// The identity of an initiator port, as a TransportID names it.
///
/// Two TransportIDs name the same initiator port when they carry the same
/// protocol and port name; padding and reserved bytes do not matter.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Initiator {
    /// Fibre Channel N_Port name.
    FibreChannel([u8; 8]),
    /// SAS address.
    Sas([u8; 8]),
    /// SRP initiator port identifier.
    Srp([u8; 16]),
    /// iSCSI name (format 0) or name plus ",i,0x" ISID (format 1).
    Iscsi {
        /// The format code from byte 0 bits 7:6.
        format: u8,
        /// The name, without its terminating NUL and padding.
        name: String,
    },
    /// Any other protocol: the bytes as given, 24 of them.
    Other(Vec<u8>),
}

/// Why a TransportID could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportIdError {
    /// The bytes end before the TransportID does.
    #[error("TransportID truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the TransportID needs.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// An iSCSI name that is empty, not NUL-terminated or not UTF-8.
    #[error("iSCSI TransportID has no valid NUL-terminated name")]
    BadIscsiName,
}

impl Initiator {
    /// Reads one TransportID from the start of `bytes`; returns it and its length.
    pub fn parse(bytes: &[u8]) -> Result<(Initiator, usize), TransportIdError> {
        let first = *bytes.first().ok_or(TransportIdError::Truncated {
            needed: 1,
            available: 0,
        })?;
        let protocol = first & 0x0F;
        let format = first >> 6;
        let len = if protocol == PROTOCOL_ISCSI {
            let header = take(bytes, ISCSI_HEADER_LEN)?;
            ISCSI_HEADER_LEN + usize::from(u16::from_be_bytes([header[2], header[3]]))
        } else {
            FIXED_TRANSPORT_ID_LEN
        };
        let tid = take(bytes, len)?;
        let initiator = match protocol {
            PROTOCOL_FIBRE_CHANNEL => Initiator::FibreChannel(array(&tid[8..16])),
            PROTOCOL_SAS => Initiator::Sas(array(&tid[4..12])),
            PROTOCOL_SRP => Initiator::Srp(array(&tid[8..24])),
            PROTOCOL_ISCSI => {
                let name = &tid[ISCSI_HEADER_LEN..];
                let end = name
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or(TransportIdError::BadIscsiName)?;
                let name = std::str::from_utf8(&name[..end])
                    .map_err(|_| TransportIdError::BadIscsiName)?;
                if name.is_empty() {
                    return Err(TransportIdError::BadIscsiName);
                }
                Initiator::Iscsi {
                    format,
                    name: name.to_owned(),
                }
            }
            _ => Initiator::Other(tid.to_vec()),
        };
        Ok((initiator, len))
    }

    /// Reads a list of TransportIDs filling `bytes` exactly.
    pub fn parse_list(mut bytes: &[u8]) -> Result<Vec<Initiator>, TransportIdError> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let (initiator, len) = Initiator::parse(bytes)?;
            out.push(initiator);
            bytes = bytes.get(len..).unwrap_or_default();
        }
        Ok(out)
    }

    /// An iSCSI (format 0) initiator with this name.
    pub fn iscsi(name: &str) -> Initiator {
        Initiator::Iscsi {
            format: 0,
            name: name.to_owned(),
        }
    }

    /// The TransportID bytes of this initiator port.
    pub fn transport_id(&self) -> Vec<u8> {
        let mut out = vec![0u8; FIXED_TRANSPORT_ID_LEN];
        match self {
            Initiator::FibreChannel(name) => {
                out[0] = PROTOCOL_FIBRE_CHANNEL;
                out[8..16].copy_from_slice(name);
            }
            Initiator::Sas(address) => {
                out[0] = PROTOCOL_SAS;
                out[4..12].copy_from_slice(address);
            }
            Initiator::Srp(id) => {
                out[0] = PROTOCOL_SRP;
                out[8..24].copy_from_slice(id);
            }
            Initiator::Iscsi { format, name } => {
                // Name, NUL, padded to a multiple of 4, at least 20 bytes (SPC minimum).
                let padded = (name.len() + 1).div_ceil(4) * 4;
                let padded = padded.max(20);
                out = vec![0u8; ISCSI_HEADER_LEN + padded];
                out[0] = (format << 6) | PROTOCOL_ISCSI;
                let additional = u16::try_from(padded).unwrap_or(u16::MAX);
                out[2..4].copy_from_slice(&additional.to_be_bytes());
                out[ISCSI_HEADER_LEN..ISCSI_HEADER_LEN + name.len()]
                    .copy_from_slice(name.as_bytes());
            }
            Initiator::Other(bytes) => {
                for (slot, byte) in out.iter_mut().zip(bytes) {
                    *slot = *byte;
                }
            }
        }
        out
    }
}

fn take(bytes: &[u8], len: usize) -> Result<&[u8], TransportIdError> {
    bytes.get(..len).ok_or(TransportIdError::Truncated {
        needed: len,
        available: bytes.len(),
    })
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (slot, byte) in out.iter_mut().zip(bytes) {
        *slot = *byte;
    }
    out
}

/// An I_T nexus: one initiator port talking through one target port of the device.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Nexus {
    /// The initiator port.
    pub initiator: Initiator,
    /// The relative target port identifier of the target port.
    pub target_port: u16,
}

impl Nexus {
    /// The nexus of `initiator` through target port `target_port`.
    pub fn new(initiator: Initiator, target_port: u16) -> Nexus {
        Nexus {
            initiator,
            target_port,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iscsi_transport_id_round_trips_and_pads_to_multiple_of_four() {
        let initiator = Initiator::iscsi("iqn.2026-11.invalid:host-a");
        let bytes = initiator.transport_id();
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(bytes[0], 0x05);
        assert_eq!(Initiator::parse(&bytes), Ok((initiator, bytes.len())));
    }

    #[test]
    fn sas_transport_id_is_24_bytes_with_address_at_offset_4() {
        let initiator = Initiator::Sas([0x50, 1, 2, 3, 4, 5, 6, 7]);
        let bytes = initiator.transport_id();
        assert_eq!(bytes.len(), 24);
        assert_eq!(&bytes[4..12], &[0x50, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(Initiator::parse(&bytes), Ok((initiator, 24)));
    }

    #[test]
    fn transport_ids_that_differ_only_in_reserved_bytes_name_the_same_port() {
        let mut bytes = Initiator::FibreChannel([9; 8]).transport_id();
        bytes[20] = 0xAA;
        assert_eq!(
            Initiator::parse(&bytes).map(|(i, _)| i),
            Ok(Initiator::FibreChannel([9; 8]))
        );
    }

    #[test]
    fn truncated_and_unterminated_transport_ids_are_refused() {
        assert!(Initiator::parse(&[0x06; 10]).is_err());
        assert!(Initiator::parse(&[]).is_err());
        let mut iscsi = vec![0x05, 0, 0, 4];
        iscsi.extend_from_slice(b"abcd");
        assert_eq!(
            Initiator::parse(&iscsi),
            Err(TransportIdError::BadIscsiName)
        );
    }

    #[test]
    fn list_of_mixed_transport_ids_parses_in_order() {
        let a = Initiator::iscsi("iqn.a");
        let b = Initiator::Sas([1; 8]);
        let mut bytes = a.transport_id();
        bytes.extend(b.transport_id());
        assert_eq!(Initiator::parse_list(&bytes), Ok(vec![a, b]));
    }
}
