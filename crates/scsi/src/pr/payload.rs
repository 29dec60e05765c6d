//! PERSISTENT RESERVE IN parameter data (SPC-4 6.16). Encoders produce the full
//! data; the caller truncates it to the ALLOCATION LENGTH. Decoders accept data
//! truncated by a short allocation length: they return what fits, flag the
//! truncation and report the length the device wanted to send. The 8-byte header
//! (the 2-byte LENGTH for REPORT CAPABILITIES) must be present: without it
//! nothing can be told about the data, and the decoder returns `TooShort`.

use super::error::{PrDecodeError, PrEncodeError};
use super::transport_id::TransportId;
use super::types::{ReservationType, ScopeType};
use crate::wire::{be_u16, be_u32, be_u64};

/// Header of READ KEYS, READ RESERVATION and READ FULL STATUS: generation and
/// additional length.
pub const PR_IN_HEADER_LEN: usize = 8;
/// READ RESERVATION's additional length when a reservation exists.
const RESERVATION_DESCRIPTOR_LEN: usize = 16;
/// The LENGTH of REPORT CAPABILITIES data.
pub const REPORT_CAPABILITIES_LEN: usize = 8;
/// Fixed part of a READ FULL STATUS descriptor, before its TransportID.
pub const FULL_STATUS_DESCRIPTOR_LEN: usize = 24;

/// A decoded PR IN payload and what the decoder learnt about its completeness.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Decoded<T> {
    pub value: T,
    /// Bytes the device had to send (header included): an allocation length at
    /// least this large returns everything.
    pub advertised_len: u64,
    /// The data stopped before `advertised_len`: `value` holds only what fit.
    pub truncated: bool,
}

/// READ KEYS data.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct ReadKeys {
    pub generation: u32,
    pub keys: Vec<u64>,
}

/// The reservation READ RESERVATION reports.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Reservation {
    pub key: u64,
    pub scope_type: ScopeType,
}

/// READ RESERVATION data.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct ReadReservation {
    pub generation: u32,
    pub reservation: Option<Reservation>,
}

/// PERSISTENT RESERVATION TYPE MASK of REPORT CAPABILITIES.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct TypeMask {
    pub wr_ex_ar: bool,
    pub ex_ac_ro: bool,
    pub wr_ex_ro: bool,
    pub ex_ac: bool,
    pub wr_ex: bool,
    pub ex_ac_ar: bool,
}

/// REPORT CAPABILITIES data, every defined bit.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct ReportCapabilities {
    /// Replace lost reservation capable.
    pub rlr_c: bool,
    /// Compatible reservation handling.
    pub crh: bool,
    /// Specify initiator ports capable.
    pub sip_c: bool,
    /// All target ports capable.
    pub atp_c: bool,
    /// Persist through power loss capable.
    pub ptpl_c: bool,
    /// Type mask valid.
    pub tmv: bool,
    /// ALLOW COMMANDS, 3 bits.
    pub allow_commands: u8,
    /// Persist through power loss activated.
    pub ptpl_a: bool,
    pub type_mask: TypeMask,
}

/// One registrant in READ FULL STATUS.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct FullStatusDescriptor {
    pub reservation_key: u64,
    pub all_tg_pt: bool,
    /// This registrant holds the reservation; `scope_type` is valid only then.
    pub r_holder: bool,
    pub scope_type: ScopeType,
    pub relative_target_port: u16,
    pub transport_id: TransportId,
}

/// READ FULL STATUS data.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct FullStatus {
    pub generation: u32,
    pub descriptors: Vec<FullStatusDescriptor>,
}

impl ReadKeys {
    /// Full READ KEYS data (caller truncates to the allocation length).
    pub fn encode(&self) -> Result<Vec<u8>, PrEncodeError> {
        let body_len = self.keys.len().saturating_mul(8);
        let mut out = header(self.generation, body_len, "READ KEYS data")?;
        for key in &self.keys {
            out.extend_from_slice(&key.to_be_bytes());
        }
        Ok(out)
    }

    /// Decodes READ KEYS data, possibly truncated; a partial key is dropped.
    /// An additional length that is not a multiple of 8 is an error.
    pub fn decode(buf: &[u8]) -> Result<Decoded<ReadKeys>, PrDecodeError> {
        let (generation, additional, body) = split_header(buf, "READ KEYS data")?;
        if additional % 8 != 0 {
            return Err(PrDecodeError::BadAdditionalLength {
                what: "READ KEYS data",
                len: additional,
            });
        }
        let keys = body
            .chunks_exact(8)
            .filter_map(|chunk| be_u64(chunk, 0))
            .collect();
        Ok(decoded(
            ReadKeys { generation, keys },
            additional,
            body.len(),
        ))
    }
}

impl ReadReservation {
    /// Full READ RESERVATION data: 8 bytes, or 24 with a reservation.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PR_IN_HEADER_LEN + RESERVATION_DESCRIPTOR_LEN);
        out.extend_from_slice(&self.generation.to_be_bytes());
        match self.reservation {
            None => out.extend_from_slice(&0u32.to_be_bytes()),
            Some(reservation) => {
                out.extend_from_slice(&(RESERVATION_DESCRIPTOR_LEN as u32).to_be_bytes());
                out.extend_from_slice(&reservation.key.to_be_bytes());
                // Bytes 16..20 (obsolete scope address) and 20 (reserved) stay zero.
                out.extend_from_slice(&[0; 5]);
                out.push(reservation.scope_type.0);
                out.extend_from_slice(&[0; 2]);
            }
        }
        out
    }

    /// Decodes READ RESERVATION data; the additional length must be 0 or 16. A
    /// reservation cut by truncation is reported as `None` with `truncated` set.
    pub fn decode(buf: &[u8]) -> Result<Decoded<ReadReservation>, PrDecodeError> {
        const WHAT: &str = "READ RESERVATION data";
        let (generation, additional, body) = split_header(buf, WHAT)?;
        let reservation = match additional as usize {
            0 => None,
            RESERVATION_DESCRIPTOR_LEN => match (be_u64(body, 0), body.get(13)) {
                (Some(key), Some(&scope_type)) => Some(Reservation {
                    key,
                    scope_type: ScopeType(scope_type),
                }),
                _ => None,
            },
            _ => {
                return Err(PrDecodeError::BadAdditionalLength {
                    what: WHAT,
                    len: additional,
                });
            }
        };
        Ok(decoded(
            ReadReservation {
                generation,
                reservation,
            },
            additional,
            body.len(),
        ))
    }
}

impl TypeMask {
    /// Every type set.
    pub const ALL: TypeMask = TypeMask {
        wr_ex_ar: true,
        ex_ac_ro: true,
        wr_ex_ro: true,
        ex_ac: true,
        wr_ex: true,
        ex_ac_ar: true,
    };

    pub fn contains(&self, rtype: ReservationType) -> bool {
        match rtype {
            ReservationType::WriteExclusive => self.wr_ex,
            ReservationType::ExclusiveAccess => self.ex_ac,
            ReservationType::WriteExclusiveRegistrantsOnly => self.wr_ex_ro,
            ReservationType::ExclusiveAccessRegistrantsOnly => self.ex_ac_ro,
            ReservationType::WriteExclusiveAllRegistrants => self.wr_ex_ar,
            ReservationType::ExclusiveAccessAllRegistrants => self.ex_ac_ar,
        }
    }

    /// The mask holding exactly `types`.
    pub fn from_types(types: impl IntoIterator<Item = ReservationType>) -> TypeMask {
        let mut mask = TypeMask::default();
        for rtype in types {
            let bit = match rtype {
                ReservationType::WriteExclusive => &mut mask.wr_ex,
                ReservationType::ExclusiveAccess => &mut mask.ex_ac,
                ReservationType::WriteExclusiveRegistrantsOnly => &mut mask.wr_ex_ro,
                ReservationType::ExclusiveAccessRegistrantsOnly => &mut mask.ex_ac_ro,
                ReservationType::WriteExclusiveAllRegistrants => &mut mask.wr_ex_ar,
                ReservationType::ExclusiveAccessAllRegistrants => &mut mask.ex_ac_ar,
            };
            *bit = true;
        }
        mask
    }

    /// The types set, in code order.
    pub fn types(&self) -> Vec<ReservationType> {
        ReservationType::ALL
            .into_iter()
            .filter(|t| self.contains(*t))
            .collect()
    }

    /// Bytes 4 and 5 of REPORT CAPABILITIES.
    pub fn to_bytes(&self) -> [u8; 2] {
        [
            bit(self.wr_ex_ar, 7)
                | bit(self.ex_ac_ro, 6)
                | bit(self.wr_ex_ro, 5)
                | bit(self.ex_ac, 3)
                | bit(self.wr_ex, 1),
            bit(self.ex_ac_ar, 0),
        ]
    }

    pub fn from_bytes(bytes: [u8; 2]) -> TypeMask {
        let [b4, b5] = bytes;
        TypeMask {
            wr_ex_ar: b4 & 0x80 != 0,
            ex_ac_ro: b4 & 0x40 != 0,
            wr_ex_ro: b4 & 0x20 != 0,
            ex_ac: b4 & 0x08 != 0,
            wr_ex: b4 & 0x02 != 0,
            ex_ac_ar: b5 & 0x01 != 0,
        }
    }
}

impl ReportCapabilities {
    /// The 8 bytes of REPORT CAPABILITIES data (LENGTH 8). `allow_commands` is
    /// masked to its 3 bits.
    pub fn encode(&self) -> [u8; REPORT_CAPABILITIES_LEN] {
        let mut out = [0u8; REPORT_CAPABILITIES_LEN];
        out[0..2].copy_from_slice(&(REPORT_CAPABILITIES_LEN as u16).to_be_bytes());
        out[2] = bit(self.rlr_c, 7)
            | bit(self.crh, 4)
            | bit(self.sip_c, 3)
            | bit(self.atp_c, 2)
            | bit(self.ptpl_c, 0);
        out[3] = bit(self.tmv, 7) | (self.allow_commands & 0x07) << 4 | bit(self.ptpl_a, 0);
        let [b4, b5] = self.type_mask.to_bytes();
        out[4] = b4;
        out[5] = b5;
        out
    }

    /// Decodes REPORT CAPABILITIES data. Needs the 2-byte LENGTH, which must be at
    /// least 8; fields the truncated data does not reach read as zero.
    pub fn decode(buf: &[u8]) -> Result<Decoded<ReportCapabilities>, PrDecodeError> {
        const WHAT: &str = "REPORT CAPABILITIES data";
        let length = be_u16(buf, 0).ok_or(PrDecodeError::TooShort {
            what: WHAT,
            needed: 2,
            got: buf.len(),
        })?;
        if usize::from(length) < REPORT_CAPABILITIES_LEN {
            return Err(PrDecodeError::BadAdditionalLength {
                what: WHAT,
                len: u32::from(length),
            });
        }
        let byte = |at: usize| buf.get(at).copied().unwrap_or(0);
        let (b2, b3) = (byte(2), byte(3));
        let value = ReportCapabilities {
            rlr_c: b2 & 0x80 != 0,
            crh: b2 & 0x10 != 0,
            sip_c: b2 & 0x08 != 0,
            atp_c: b2 & 0x04 != 0,
            ptpl_c: b2 & 0x01 != 0,
            tmv: b3 & 0x80 != 0,
            allow_commands: (b3 >> 4) & 0x07,
            ptpl_a: b3 & 0x01 != 0,
            type_mask: TypeMask::from_bytes([byte(4), byte(5)]),
        };
        let advertised_len = u64::from(length);
        Ok(Decoded {
            value,
            advertised_len,
            truncated: (buf.len() as u64) < advertised_len,
        })
    }
}

impl FullStatusDescriptor {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), PrEncodeError> {
        let id = self.transport_id.to_bytes()?;
        let id_len = u32::try_from(id.len()).map_err(|_| PrEncodeError::TooLong {
            what: "transport ID",
            len: id.len(),
        })?;
        out.extend_from_slice(&self.reservation_key.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.push(bit(self.all_tg_pt, 1) | bit(self.r_holder, 0));
        out.push(self.scope_type.0);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.relative_target_port.to_be_bytes());
        out.extend_from_slice(&id_len.to_be_bytes());
        out.extend_from_slice(&id);
        Ok(())
    }
}

impl FullStatus {
    /// Full READ FULL STATUS data (caller truncates to the allocation length).
    pub fn encode(&self) -> Result<Vec<u8>, PrEncodeError> {
        let mut body = Vec::new();
        for descriptor in &self.descriptors {
            descriptor.encode(&mut body)?;
        }
        let mut out = header(self.generation, body.len(), "READ FULL STATUS data")?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes READ FULL STATUS data. Descriptors cut by truncation are dropped;
    /// a descriptor overrunning the advertised length, or a TransportID that does
    /// not decode, is an error.
    pub fn decode(buf: &[u8]) -> Result<Decoded<FullStatus>, PrDecodeError> {
        const WHAT: &str = "READ FULL STATUS descriptor";
        let (generation, additional, body) = split_header(buf, "READ FULL STATUS data")?;
        let cut = (body.len() as u64) < u64::from(additional);
        let mut descriptors = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            let fixed = match rest.get(..FULL_STATUS_DESCRIPTOR_LEN) {
                Some(fixed) => fixed,
                None if cut => break,
                None => {
                    return Err(PrDecodeError::TooShort {
                        what: WHAT,
                        needed: FULL_STATUS_DESCRIPTOR_LEN,
                        got: rest.len(),
                    });
                }
            };
            let (Some(reservation_key), Some(&flags), Some(&scope_type), Some(port), Some(id_len)) = (
                be_u64(fixed, 0),
                fixed.get(12),
                fixed.get(13),
                be_u16(fixed, 18),
                be_u32(fixed, 20),
            ) else {
                break;
            };
            let total = (FULL_STATUS_DESCRIPTOR_LEN as u64).saturating_add(u64::from(id_len));
            let Some(whole) = usize::try_from(total).ok().and_then(|t| rest.get(..t)) else {
                if cut {
                    break;
                }
                return Err(PrDecodeError::LengthMismatch {
                    what: WHAT,
                    declared: total,
                    actual: rest.len() as u64,
                });
            };
            let transport_id = TransportId::decode_exact(
                whole.get(FULL_STATUS_DESCRIPTOR_LEN..).unwrap_or_default(),
            )?;
            descriptors.push(FullStatusDescriptor {
                reservation_key,
                all_tg_pt: flags & 0x02 != 0,
                r_holder: flags & 0x01 != 0,
                scope_type: ScopeType(scope_type),
                relative_target_port: port,
                transport_id,
            });
            rest = rest.get(whole.len()..).unwrap_or_default();
        }
        Ok(decoded(
            FullStatus {
                generation,
                descriptors,
            },
            additional,
            body.len(),
        ))
    }
}

const fn bit(set: bool, position: u8) -> u8 {
    if set { 1 << position } else { 0 }
}

fn header(generation: u32, body_len: usize, what: &'static str) -> Result<Vec<u8>, PrEncodeError> {
    let additional = u32::try_from(body_len).map_err(|_| PrEncodeError::TooLong {
        what,
        len: body_len,
    })?;
    let mut out = Vec::with_capacity(PR_IN_HEADER_LEN.saturating_add(body_len));
    out.extend_from_slice(&generation.to_be_bytes());
    out.extend_from_slice(&additional.to_be_bytes());
    Ok(out)
}

/// Generation, additional length, and the body bytes present (at most the
/// additional length; bytes past it, e.g. buffer padding, are ignored).
fn split_header<'a>(
    buf: &'a [u8],
    what: &'static str,
) -> Result<(u32, u32, &'a [u8]), PrDecodeError> {
    let (Some(generation), Some(additional)) = (be_u32(buf, 0), be_u32(buf, 4)) else {
        return Err(PrDecodeError::TooShort {
            what,
            needed: PR_IN_HEADER_LEN,
            got: buf.len(),
        });
    };
    let body = buf.get(PR_IN_HEADER_LEN..).unwrap_or_default();
    let wanted = usize::try_from(additional).unwrap_or(usize::MAX);
    let body = body.get(..wanted.min(body.len())).unwrap_or_default();
    Ok((generation, additional, body))
}

fn decoded<T>(value: T, additional: u32, present: usize) -> Decoded<T> {
    let truncated = (present as u64) < u64::from(additional);
    Decoded {
        value,
        advertised_len: (PR_IN_HEADER_LEN as u64).saturating_add(u64::from(additional)),
        truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pr::types::Scope;

    fn scope_type(rtype: ReservationType) -> ScopeType {
        ScopeType::new(Scope::LogicalUnit, Some(rtype))
    }

    #[test]
    fn read_keys_layout_and_round_trip() {
        let keys = ReadKeys {
            generation: 7,
            keys: vec![0x0102_0304_0506_0708, 0xFF],
        };
        let bytes = keys.encode().unwrap();
        assert_eq!(bytes[0..4], [0, 0, 0, 7]);
        assert_eq!(bytes[4..8], [0, 0, 0, 16]);
        assert_eq!(bytes[8..16], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(bytes.len(), 24);
        let decoded = ReadKeys::decode(&bytes).unwrap();
        assert_eq!(
            decoded,
            Decoded {
                value: keys,
                advertised_len: 24,
                truncated: false
            }
        );
    }

    #[test]
    fn read_keys_tolerates_truncation_and_ignores_padding() {
        let keys = ReadKeys {
            generation: 1,
            keys: vec![1, 2, 3],
        };
        let bytes = keys.encode().unwrap();
        let cut = ReadKeys::decode(&bytes[..20]).unwrap();
        assert_eq!(cut.value.keys, vec![1]);
        assert!(cut.truncated);
        assert_eq!(cut.advertised_len, 32);
        let header_only = ReadKeys::decode(&bytes[..8]).unwrap();
        assert!(header_only.value.keys.is_empty() && header_only.truncated);
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0xEE; 16]);
        assert_eq!(ReadKeys::decode(&padded).unwrap().value, keys);
        assert!(matches!(
            ReadKeys::decode(&bytes[..7]),
            Err(PrDecodeError::TooShort {
                needed: 8,
                got: 7,
                ..
            })
        ));
        let odd = [0, 0, 0, 0, 0, 0, 0, 12];
        assert_eq!(
            ReadKeys::decode(&odd),
            Err(PrDecodeError::BadAdditionalLength {
                what: "READ KEYS data",
                len: 12
            })
        );
    }

    #[test]
    fn read_reservation_layout_and_round_trip() {
        let none = ReadReservation {
            generation: 3,
            reservation: None,
        };
        assert_eq!(none.encode(), [0, 0, 0, 3, 0, 0, 0, 0]);
        assert_eq!(ReadReservation::decode(&none.encode()).unwrap().value, none);
        let held = ReadReservation {
            generation: 4,
            reservation: Some(Reservation {
                key: 0xABCD,
                scope_type: scope_type(ReservationType::WriteExclusiveAllRegistrants),
            }),
        };
        let bytes = held.encode();
        assert_eq!(bytes.len(), 24);
        assert_eq!(bytes[4..8], [0, 0, 0, 16]);
        assert_eq!(bytes[8..16], 0xABCDu64.to_be_bytes());
        assert_eq!(bytes[21], 0x07);
        assert_eq!(bytes.iter().skip(16).filter(|&&b| b != 0).count(), 1);
        assert_eq!(
            ReadReservation::decode(&bytes).unwrap(),
            Decoded {
                value: held,
                advertised_len: 24,
                truncated: false
            }
        );
    }

    #[test]
    fn read_reservation_truncation_and_errors() {
        let held = ReadReservation {
            generation: 4,
            reservation: Some(Reservation {
                key: 1,
                scope_type: scope_type(ReservationType::WriteExclusive),
            }),
        };
        let bytes = held.encode();
        let cut = ReadReservation::decode(&bytes[..16]).unwrap();
        assert_eq!(cut.value.reservation, None);
        assert!(cut.truncated);
        assert_eq!(ReadReservation::decode(&bytes[..22]).unwrap().value, held);
        let mut bad = bytes;
        bad[7] = 8;
        assert!(matches!(
            ReadReservation::decode(&bad),
            Err(PrDecodeError::BadAdditionalLength { len: 8, .. })
        ));
        assert!(ReadReservation::decode(&[0; 4]).is_err());
    }

    #[test]
    fn report_capabilities_every_bit() {
        let none = ReportCapabilities::default().encode();
        assert_eq!(none, [0, 8, 0, 0, 0, 0, 0, 0]);
        let bits: [(ReportCapabilities, usize, u8); 9] = [
            (
                ReportCapabilities {
                    rlr_c: true,
                    ..Default::default()
                },
                2,
                0x80,
            ),
            (
                ReportCapabilities {
                    crh: true,
                    ..Default::default()
                },
                2,
                0x10,
            ),
            (
                ReportCapabilities {
                    sip_c: true,
                    ..Default::default()
                },
                2,
                0x08,
            ),
            (
                ReportCapabilities {
                    atp_c: true,
                    ..Default::default()
                },
                2,
                0x04,
            ),
            (
                ReportCapabilities {
                    ptpl_c: true,
                    ..Default::default()
                },
                2,
                0x01,
            ),
            (
                ReportCapabilities {
                    tmv: true,
                    ..Default::default()
                },
                3,
                0x80,
            ),
            (
                ReportCapabilities {
                    allow_commands: 0x5,
                    ..Default::default()
                },
                3,
                0x50,
            ),
            (
                ReportCapabilities {
                    ptpl_a: true,
                    ..Default::default()
                },
                3,
                0x01,
            ),
            (
                ReportCapabilities {
                    allow_commands: 0xFF,
                    ..Default::default()
                },
                3,
                0x70,
            ),
        ];
        for (caps, at, value) in bits {
            let bytes = caps.encode();
            assert_eq!(bytes[at], value, "{caps:?}");
            assert_eq!(bytes.iter().filter(|&&b| b != 0).count(), 2, "{caps:?}");
        }
        let masks = [
            (ReservationType::WriteExclusiveAllRegistrants, 4, 0x80),
            (ReservationType::ExclusiveAccessRegistrantsOnly, 4, 0x40),
            (ReservationType::WriteExclusiveRegistrantsOnly, 4, 0x20),
            (ReservationType::ExclusiveAccess, 4, 0x08),
            (ReservationType::WriteExclusive, 4, 0x02),
            (ReservationType::ExclusiveAccessAllRegistrants, 5, 0x01),
        ];
        for (rtype, at, value) in masks {
            let caps = ReportCapabilities {
                type_mask: TypeMask::from_types([rtype]),
                ..Default::default()
            };
            let bytes = caps.encode();
            assert_eq!(bytes[at], value, "{rtype:?}");
            assert_eq!(ReportCapabilities::decode(&bytes).unwrap().value, caps);
            assert_eq!(caps.type_mask.types(), vec![rtype]);
            assert!(caps.type_mask.contains(rtype));
        }
        assert_eq!(TypeMask::ALL.to_bytes(), [0xEA, 0x01]);
        assert_eq!(TypeMask::from_bytes([0xFF, 0xFF]), TypeMask::ALL);
        assert_eq!(TypeMask::ALL.types(), ReservationType::ALL.to_vec());
    }

    #[test]
    fn report_capabilities_truncation_and_errors() {
        let caps = ReportCapabilities {
            crh: true,
            tmv: true,
            type_mask: TypeMask::ALL,
            ..Default::default()
        };
        let bytes = caps.encode();
        let full = ReportCapabilities::decode(&bytes).unwrap();
        assert_eq!(
            full,
            Decoded {
                value: caps,
                advertised_len: 8,
                truncated: false
            }
        );
        let cut = ReportCapabilities::decode(&bytes[..4]).unwrap();
        assert!(cut.truncated);
        assert!(cut.value.crh && cut.value.tmv);
        assert_eq!(cut.value.type_mask, TypeMask::default());
        assert!(matches!(
            ReportCapabilities::decode(&bytes[..1]),
            Err(PrDecodeError::TooShort { needed: 2, .. })
        ));
        assert!(matches!(
            ReportCapabilities::decode(&[0, 4, 0, 0]),
            Err(PrDecodeError::BadAdditionalLength { len: 4, .. })
        ));
        let longer = [0, 12, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(!ReportCapabilities::decode(&longer).unwrap().truncated);
    }

    fn full_status() -> FullStatus {
        FullStatus {
            generation: 9,
            descriptors: vec![
                FullStatusDescriptor {
                    reservation_key: 0x11,
                    all_tg_pt: false,
                    r_holder: true,
                    scope_type: scope_type(ReservationType::ExclusiveAccessRegistrantsOnly),
                    relative_target_port: 1,
                    transport_id: TransportId::Iscsi {
                        name: "iqn.2024-01.test:one".into(),
                        isid: Some("400001370000".into()),
                    },
                },
                FullStatusDescriptor {
                    reservation_key: 0x22,
                    all_tg_pt: true,
                    r_holder: false,
                    scope_type: ScopeType(0),
                    relative_target_port: 2,
                    transport_id: TransportId::FibreChannel {
                        n_port_name: 0x2100_0000_0000_0001,
                    },
                },
            ],
        }
    }

    #[test]
    fn full_status_layout_and_round_trip() {
        let status = full_status();
        let bytes = status.encode().unwrap();
        assert_eq!(bytes[0..4], [0, 0, 0, 9]);
        let additional = u32::from_be_bytes(bytes[4..8].try_into().unwrap()) as usize;
        assert_eq!(additional, bytes.len() - 8);
        let first = &bytes[8..];
        assert_eq!(first[0..8], 0x11u64.to_be_bytes());
        assert_eq!(first[12], 0x01, "R_HOLDER is bit 0");
        assert_eq!(first[13], 0x06);
        assert_eq!(first[18..20], [0, 1]);
        let id_len = u32::from_be_bytes(first[20..24].try_into().unwrap()) as usize;
        assert_eq!(first[24], 0x45);
        let second = &first[24 + id_len..];
        assert_eq!(second[12], 0x02, "ALL_TG_PT is bit 1");
        assert_eq!(second[20..24], [0, 0, 0, 24]);
        assert_eq!(second.len(), 48);
        let decoded = FullStatus::decode(&bytes).unwrap();
        assert_eq!(
            decoded,
            Decoded {
                value: status,
                advertised_len: bytes.len() as u64,
                truncated: false
            }
        );
    }

    #[test]
    fn full_status_drops_descriptors_cut_by_truncation() {
        let status = full_status();
        let bytes = status.encode().unwrap();
        let first_len = bytes.len() - 48 - 8;
        for cut_at in [
            8,
            20,
            8 + first_len - 1,
            8 + first_len,
            8 + first_len + 30,
            bytes.len() - 1,
        ] {
            let decoded = FullStatus::decode(&bytes[..cut_at]).unwrap();
            assert!(decoded.truncated, "cut at {cut_at}");
            let expected = if cut_at >= 8 + first_len { 1 } else { 0 };
            assert_eq!(decoded.value.descriptors.len(), expected, "cut at {cut_at}");
            assert_eq!(decoded.advertised_len, bytes.len() as u64);
        }
    }

    #[test]
    fn full_status_inconsistent_lengths_are_errors() {
        let bytes = full_status().encode().unwrap();
        let mut short_additional = bytes.clone();
        let additional = u32::from_be_bytes(bytes[4..8].try_into().unwrap()) - 4;
        short_additional[4..8].copy_from_slice(&additional.to_be_bytes());
        assert!(matches!(
            FullStatus::decode(&short_additional),
            Err(PrDecodeError::LengthMismatch { .. })
        ));
        let mut stub = vec![0, 0, 0, 1, 0, 0, 0, 10];
        stub.extend_from_slice(&[0; 10]);
        assert!(matches!(
            FullStatus::decode(&stub),
            Err(PrDecodeError::TooShort {
                needed: 24,
                got: 10,
                ..
            })
        ));
        let mut bad_id = FullStatus {
            generation: 0,
            descriptors: vec![FullStatusDescriptor {
                reservation_key: 1,
                all_tg_pt: false,
                r_holder: false,
                scope_type: ScopeType(0),
                relative_target_port: 0,
                transport_id: TransportId::Iscsi {
                    name: "iqn.z".into(),
                    isid: None,
                },
            }],
        }
        .encode()
        .unwrap();
        let last = bad_id.len() - 1;
        bad_id[8 + 24 + 4..=last].fill(b'x');
        assert_eq!(
            FullStatus::decode(&bad_id),
            Err(PrDecodeError::IscsiNameUnterminated)
        );
        assert!(FullStatus::decode(&[0; 7]).is_err());
    }
}
