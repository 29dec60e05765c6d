//! TransportIDs (SPC-4 7.6.4): how PR commands name an initiator port.
//! Byte 0 holds the FORMAT CODE in bits 7-6 and the PROTOCOL IDENTIFIER in bits
//! 3-0. Every TransportID is 24 bytes except iSCSI's, whose length is 4 plus the
//! ADDITIONAL LENGTH at bytes 2..4.

use super::error::{PrDecodeError, PrEncodeError};
use crate::wire::{be_u16, be_u64};

/// PROTOCOL IDENTIFIER values (SPC-4 table 362).
pub mod protocol_id {
    pub const FIBRE_CHANNEL: u8 = 0x0;
    pub const PARALLEL_SCSI: u8 = 0x1;
    pub const SSA: u8 = 0x2;
    pub const IEEE_1394: u8 = 0x3;
    pub const SRP: u8 = 0x4;
    pub const ISCSI: u8 = 0x5;
    pub const SAS: u8 = 0x6;
    pub const ADT: u8 = 0x7;
    pub const ATA: u8 = 0x8;
    pub const UAS: u8 = 0x9;
    pub const SOP: u8 = 0xA;
    pub const NONE: u8 = 0xF;
}

/// Length of every fixed-size TransportID.
pub const FIXED_TRANSPORT_ID_LEN: usize = 24;
/// Smallest iSCSI ADDITIONAL LENGTH SPC allows; shorter names are padded to it.
const ISCSI_MIN_ADDITIONAL_LEN: usize = 20;
/// Separator between the iSCSI name and the ISID in format 1.
pub const ISCSI_ISID_SEPARATOR: &str = ",i,0x";

const FORMAT_PORT_NAME: u8 = 0;
const FORMAT_ISCSI_WITH_ISID: u8 = 1;

/// One initiator port identifier.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum TransportId {
    /// Fibre Channel, format 0: the N_Port name (bytes 8..16).
    FibreChannel { n_port_name: u64 },
    /// SAS, format 0: the SAS address (bytes 4..12).
    Sas { address: u64 },
    /// SCSI RDMA, format 0: the 16-byte initiator port identifier (bytes 8..24).
    Srp { id: [u8; 16] },
    /// iSCSI: format 0 carries the name only, format 1 the name and the ISID (the
    /// hexadecimal text after ",i,0x").
    Iscsi { name: String, isid: Option<String> },
    /// Any other protocol or format, bytes kept as received (byte 0 included).
    Other { bytes: Vec<u8> },
}

impl TransportId {
    /// An iSCSI initiator port named by `name` alone (format 0).
    pub fn iscsi(name: impl Into<String>) -> TransportId {
        TransportId::Iscsi {
            name: name.into(),
            isid: None,
        }
    }

    /// The PROTOCOL IDENTIFIER.
    pub fn protocol_id(&self) -> u8 {
        match self {
            TransportId::FibreChannel { .. } => protocol_id::FIBRE_CHANNEL,
            TransportId::Sas { .. } => protocol_id::SAS,
            TransportId::Srp { .. } => protocol_id::SRP,
            TransportId::Iscsi { .. } => protocol_id::ISCSI,
            TransportId::Other { bytes } => bytes.first().map_or(protocol_id::NONE, |b| b & 0x0f),
        }
    }

    /// Appends the encoded TransportID to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), PrEncodeError> {
        match self {
            TransportId::FibreChannel { n_port_name } => {
                let mut id = [0u8; FIXED_TRANSPORT_ID_LEN];
                id[0] = protocol_id::FIBRE_CHANNEL;
                id[8..16].copy_from_slice(&n_port_name.to_be_bytes());
                out.extend_from_slice(&id);
            }
            TransportId::Sas { address } => {
                let mut id = [0u8; FIXED_TRANSPORT_ID_LEN];
                id[0] = protocol_id::SAS;
                id[4..12].copy_from_slice(&address.to_be_bytes());
                out.extend_from_slice(&id);
            }
            TransportId::Srp { id: port } => {
                let mut id = [0u8; FIXED_TRANSPORT_ID_LEN];
                id[0] = protocol_id::SRP;
                id[8..24].copy_from_slice(port);
                out.extend_from_slice(&id);
            }
            TransportId::Iscsi { name, isid } => encode_iscsi(name, isid.as_deref(), out)?,
            TransportId::Other { bytes } => out.extend_from_slice(bytes),
        }
        Ok(())
    }

    /// The encoded TransportID.
    pub fn to_bytes(&self) -> Result<Vec<u8>, PrEncodeError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Decodes the TransportID at the start of `buf` (one entry of a list) and
    /// returns it with the bytes it occupies. Unknown protocols and formats are
    /// taken as 24 bytes, the size of every TransportID but iSCSI's.
    pub fn decode(buf: &[u8]) -> Result<(TransportId, usize), PrDecodeError> {
        let &first = buf.first().ok_or(PrDecodeError::TooShort {
            what: "transport ID",
            needed: 1,
            got: 0,
        })?;
        let len = if first & 0x0f == protocol_id::ISCSI {
            let additional = be_u16(buf, 2).ok_or(PrDecodeError::TooShort {
                what: "iSCSI transport ID",
                needed: 4,
                got: buf.len(),
            })?;
            4 + usize::from(additional)
        } else {
            FIXED_TRANSPORT_ID_LEN
        };
        let bytes = buf.get(..len).ok_or(PrDecodeError::TooShort {
            what: "transport ID",
            needed: len,
            got: buf.len(),
        })?;
        Ok((decode_sized(bytes)?, len))
    }

    /// Decodes a TransportID that fills `buf` exactly as far as its own length
    /// goes (a READ FULL STATUS descriptor gives the length). Unknown protocols
    /// keep all of `buf`; bytes past a known ID's own length are ignored.
    pub fn decode_exact(buf: &[u8]) -> Result<TransportId, PrDecodeError> {
        if is_unknown_kind(buf) {
            return Ok(TransportId::Other {
                bytes: buf.to_vec(),
            });
        }
        TransportId::decode(buf).map(|(id, _)| id)
    }
}

/// Whether byte 0 names a protocol/format pair this module does not decode.
fn is_unknown_kind(buf: &[u8]) -> bool {
    let Some(&first) = buf.first() else {
        return false;
    };
    let (format, protocol) = (first >> 6, first & 0x0f);
    !matches!(
        (protocol, format),
        (
            protocol_id::FIBRE_CHANNEL | protocol_id::SAS | protocol_id::SRP,
            FORMAT_PORT_NAME
        ) | (
            protocol_id::ISCSI,
            FORMAT_PORT_NAME | FORMAT_ISCSI_WITH_ISID
        )
    )
}

/// Decodes an ID whose length has been established: `bytes` is exactly it.
fn decode_sized(bytes: &[u8]) -> Result<TransportId, PrDecodeError> {
    if is_unknown_kind(bytes) {
        return Ok(TransportId::Other {
            bytes: bytes.to_vec(),
        });
    }
    let first = bytes.first().copied().unwrap_or_default();
    let short = || PrDecodeError::TooShort {
        what: "transport ID",
        needed: FIXED_TRANSPORT_ID_LEN,
        got: bytes.len(),
    };
    match first & 0x0f {
        protocol_id::FIBRE_CHANNEL => Ok(TransportId::FibreChannel {
            n_port_name: be_u64(bytes, 8).ok_or_else(short)?,
        }),
        protocol_id::SAS => Ok(TransportId::Sas {
            address: be_u64(bytes, 4).ok_or_else(short)?,
        }),
        protocol_id::SRP => {
            let id = bytes.get(8..24).ok_or_else(short)?;
            let mut port = [0u8; 16];
            port.copy_from_slice(id);
            Ok(TransportId::Srp { id: port })
        }
        _ => decode_iscsi(first >> 6, bytes.get(4..).unwrap_or_default()),
    }
}

fn decode_iscsi(format: u8, text: &[u8]) -> Result<TransportId, PrDecodeError> {
    let end = text
        .iter()
        .position(|&b| b == 0)
        .ok_or(PrDecodeError::IscsiNameUnterminated)?;
    let text = text.get(..end).unwrap_or_default();
    let text = std::str::from_utf8(text).map_err(|_| PrDecodeError::IscsiNameNotUtf8)?;
    if format == FORMAT_ISCSI_WITH_ISID {
        let at = text
            .rfind(ISCSI_ISID_SEPARATOR)
            .ok_or(PrDecodeError::IscsiIsidMissing)?;
        let (name, rest) = text.split_at(at);
        let isid = rest.get(ISCSI_ISID_SEPARATOR.len()..).unwrap_or_default();
        Ok(TransportId::Iscsi {
            name: name.to_owned(),
            isid: Some(isid.to_owned()),
        })
    } else {
        Ok(TransportId::Iscsi {
            name: text.to_owned(),
            isid: None,
        })
    }
}

fn encode_iscsi(name: &str, isid: Option<&str>, out: &mut Vec<u8>) -> Result<(), PrEncodeError> {
    if name.contains('\0') || isid.is_some_and(|i| i.contains('\0')) {
        return Err(PrEncodeError::IscsiNul);
    }
    if isid.is_some_and(|i| i.contains(ISCSI_ISID_SEPARATOR)) {
        return Err(PrEncodeError::IscsiIsidHasSeparator);
    }
    let mut text = Vec::with_capacity(name.len().saturating_add(24));
    text.extend_from_slice(name.as_bytes());
    if let Some(isid) = isid {
        text.extend_from_slice(ISCSI_ISID_SEPARATOR.as_bytes());
        text.extend_from_slice(isid.as_bytes());
    }
    text.push(0);
    let padded = text.len().next_multiple_of(4).max(ISCSI_MIN_ADDITIONAL_LEN);
    text.resize(padded, 0);
    let additional = u16::try_from(padded).map_err(|_| PrEncodeError::TooLong {
        what: "iSCSI transport ID",
        len: padded,
    })?;
    let format = if isid.is_some() {
        FORMAT_ISCSI_WITH_ISID
    } else {
        FORMAT_PORT_NAME
    };
    out.push(format << 6 | protocol_id::ISCSI);
    out.push(0);
    out.extend_from_slice(&additional.to_be_bytes());
    out.extend_from_slice(&text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fibre_channel_layout() {
        let id = TransportId::FibreChannel {
            n_port_name: 0x2100_0024_FF12_3456,
        };
        let bytes = id.to_bytes().unwrap();
        let mut expected = [0u8; 24];
        expected[8..16].copy_from_slice(&[0x21, 0x00, 0x00, 0x24, 0xFF, 0x12, 0x34, 0x56]);
        assert_eq!(bytes, expected);
        assert_eq!(TransportId::decode(&bytes), Ok((id.clone(), 24)));
        assert_eq!(id.protocol_id(), protocol_id::FIBRE_CHANNEL);
    }

    #[test]
    fn sas_layout() {
        let id = TransportId::Sas {
            address: 0x5000_C500_1234_5678,
        };
        let bytes = id.to_bytes().unwrap();
        assert_eq!(bytes.len(), 24);
        assert_eq!(bytes[0], 0x06);
        assert_eq!(bytes[4..12], 0x5000_C500_1234_5678u64.to_be_bytes());
        assert!(bytes[12..].iter().all(|&b| b == 0));
        assert_eq!(TransportId::decode(&bytes), Ok((id, 24)));
    }

    #[test]
    fn srp_layout() {
        let port: [u8; 16] = core::array::from_fn(|i| i as u8 + 1);
        let id = TransportId::Srp { id: port };
        let bytes = id.to_bytes().unwrap();
        assert_eq!(bytes[0], 0x04);
        assert_eq!(bytes[1..8], [0; 7]);
        assert_eq!(bytes[8..24], port);
        assert_eq!(TransportId::decode(&bytes), Ok((id, 24)));
    }

    #[test]
    fn iscsi_name_only_is_nul_terminated_and_padded() {
        let name = "iqn.2003-01.org.linux-iscsi.host:initiator1";
        let id = TransportId::Iscsi {
            name: name.into(),
            isid: None,
        };
        let bytes = id.to_bytes().unwrap();
        assert_eq!(bytes[0], 0x05);
        let additional = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        assert_eq!(additional % 4, 0);
        assert_eq!(bytes.len(), 4 + additional);
        assert_eq!(additional, (name.len() + 1).next_multiple_of(4));
        assert_eq!(&bytes[4..4 + name.len()], name.as_bytes());
        assert!(bytes[4 + name.len()..].iter().all(|&b| b == 0));
        assert_eq!(TransportId::decode(&bytes), Ok((id, bytes.len())));
    }

    #[test]
    fn iscsi_short_names_are_padded_to_the_minimum_length() {
        let bytes = TransportId::Iscsi {
            name: "iqn.a".into(),
            isid: None,
        }
        .to_bytes()
        .unwrap();
        assert_eq!(bytes.len(), 24);
        assert_eq!(bytes[2..4], [0, 20]);
    }

    #[test]
    fn iscsi_with_isid_uses_format_1() {
        let id = TransportId::Iscsi {
            name: "iqn.x:y".into(),
            isid: Some("23d000000001".into()),
        };
        let bytes = id.to_bytes().unwrap();
        assert_eq!(bytes[0], 0x45);
        let text = b"iqn.x:y,i,0x23d000000001\0";
        assert_eq!(&bytes[4..4 + text.len()], text);
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(TransportId::decode(&bytes), Ok((id, bytes.len())));
    }

    #[test]
    fn iscsi_decode_errors() {
        let mut unterminated = vec![0x05, 0, 0, 4];
        unterminated.extend_from_slice(b"iqn.");
        assert_eq!(
            TransportId::decode(&unterminated),
            Err(PrDecodeError::IscsiNameUnterminated)
        );
        let bad_utf8 = [0x05, 0, 0, 4, 0xFF, 0xFE, 0, 0];
        assert_eq!(
            TransportId::decode(&bad_utf8),
            Err(PrDecodeError::IscsiNameNotUtf8)
        );
        assert_eq!(
            PrDecodeError::IscsiNameNotUtf8.sense(),
            crate::Sense::INVALID_FIELD_IN_PARAMETER_LIST
        );
        let mut no_isid = vec![0x45, 0, 0, 8];
        no_isid.extend_from_slice(b"iqn.a\0\0\0");
        assert_eq!(
            TransportId::decode(&no_isid),
            Err(PrDecodeError::IscsiIsidMissing)
        );
        let overrun = [0x05, 0, 0, 40, b'i', 0];
        assert!(matches!(
            TransportId::decode(&overrun),
            Err(PrDecodeError::TooShort { needed: 44, .. })
        ));
        assert!(matches!(
            TransportId::decode(&[0x05, 0]),
            Err(PrDecodeError::TooShort { .. })
        ));
    }

    #[test]
    fn iscsi_encode_refuses_unencodable_text() {
        let nul = TransportId::Iscsi {
            name: "a\0b".into(),
            isid: None,
        };
        assert_eq!(nul.to_bytes(), Err(PrEncodeError::IscsiNul));
        let sep = TransportId::Iscsi {
            name: "a".into(),
            isid: Some(",i,0x1".into()),
        };
        assert_eq!(sep.to_bytes(), Err(PrEncodeError::IscsiIsidHasSeparator));
        let huge = TransportId::Iscsi {
            name: "n".repeat(70_000),
            isid: None,
        };
        assert!(matches!(
            huge.to_bytes(),
            Err(PrEncodeError::TooLong { .. })
        ));
    }

    #[test]
    fn unknown_protocols_and_formats_stay_raw() {
        let mut sop = [0u8; 24];
        sop[0] = protocol_id::SOP;
        sop[2] = 0x12;
        let (id, used) = TransportId::decode(&sop).unwrap();
        assert_eq!(used, 24);
        assert_eq!(
            id,
            TransportId::Other {
                bytes: sop.to_vec()
            }
        );
        assert_eq!(id.protocol_id(), protocol_id::SOP);
        assert_eq!(id.to_bytes().unwrap(), sop);
        let mut fc_format_1 = [0u8; 24];
        fc_format_1[0] = 0x40;
        assert!(matches!(
            TransportId::decode(&fc_format_1),
            Ok((TransportId::Other { .. }, 24))
        ));
        let odd_len = [protocol_id::UAS, 1, 2, 3, 4];
        assert!(matches!(
            TransportId::decode(&odd_len),
            Err(PrDecodeError::TooShort { needed: 24, .. })
        ));
        assert_eq!(
            TransportId::decode_exact(&odd_len),
            Ok(TransportId::Other {
                bytes: odd_len.to_vec()
            })
        );
        assert!(TransportId::decode(&[]).is_err());
        assert!(TransportId::decode_exact(&[]).is_err());
    }

    #[test]
    fn decode_exact_ignores_padding_after_a_known_id() {
        let mut bytes = TransportId::Sas { address: 7 }.to_bytes().unwrap();
        bytes.extend_from_slice(&[0; 8]);
        assert_eq!(
            TransportId::decode_exact(&bytes),
            Ok(TransportId::Sas { address: 7 })
        );
    }
}
