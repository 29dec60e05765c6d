//! PERSISTENT RESERVE OUT parameter lists (SPC-4 6.17.3, 6.17.4).

use super::error::{PrDecodeError, PrEncodeError};
use super::transport_id::TransportId;
use crate::wire::{be_u16, be_u32, be_u64};

/// Size of the basic parameter list and of the REGISTER AND MOVE list header.
pub const PARAMETER_LIST_LEN: usize = 24;

const SPEC_I_PT: u8 = 0x08;
const ALL_TG_PT: u8 = 0x04;
const APTPL: u8 = 0x01;
const MOVE_UNREG: u8 = 0x02;
const MOVE_APTPL: u8 = 0x01;

/// The basic parameter list of every service action but REGISTER AND MOVE.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct PrOutParams {
    pub reservation_key: u64,
    pub service_action_key: u64,
    /// Specify initiator ports: `transport_ids` follow the 24 bytes.
    pub spec_i_pt: bool,
    /// Register through all target ports.
    pub all_tg_pt: bool,
    /// Activate persist through power loss.
    pub aptpl: bool,
    /// Only with `spec_i_pt`.
    pub transport_ids: Vec<TransportId>,
}

/// The REGISTER AND MOVE parameter list.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct RegisterMoveParams {
    pub reservation_key: u64,
    pub service_action_key: u64,
    /// Unregister the I_T nexus the command came through.
    pub unreg: bool,
    pub aptpl: bool,
    pub relative_target_port: u16,
    pub transport_id: TransportId,
}

impl PrOutParams {
    /// The parameter list: 24 bytes, then, with SPEC_I_PT, the u32 length of the
    /// TransportID list and the list.
    pub fn encode(&self) -> Result<Vec<u8>, PrEncodeError> {
        if !self.spec_i_pt && !self.transport_ids.is_empty() {
            return Err(PrEncodeError::TransportIdsWithoutSpecIPt);
        }
        // Keys at 0..8 and 8..16, obsolete 16..20, flags at 20, reserved 21..24.
        let mut out = Vec::with_capacity(PARAMETER_LIST_LEN);
        out.extend_from_slice(&self.reservation_key.to_be_bytes());
        out.extend_from_slice(&self.service_action_key.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.push(
            flag(self.spec_i_pt, SPEC_I_PT)
                | flag(self.all_tg_pt, ALL_TG_PT)
                | flag(self.aptpl, APTPL),
        );
        out.extend_from_slice(&[0; 3]);
        debug_assert_eq!(out.len(), PARAMETER_LIST_LEN);
        if self.spec_i_pt {
            let mut ids = Vec::new();
            for id in &self.transport_ids {
                id.encode(&mut ids)?;
            }
            let len = u32::try_from(ids.len()).map_err(|_| PrEncodeError::TooLong {
                what: "transport ID list",
                len: ids.len(),
            })?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&ids);
        }
        Ok(out)
    }

    /// Decodes the fixed 24 bytes only (keys and flags; `transport_ids` stays empty),
    /// whatever follows: for a target that checks the flags against the service
    /// action before it looks at the length of the rest.
    pub fn decode_header(buf: &[u8]) -> Result<PrOutParams, PrDecodeError> {
        let short = || too_short("PR OUT parameter list", PARAMETER_LIST_LEN, buf.len());
        if buf.len() < PARAMETER_LIST_LEN {
            return Err(short());
        }
        let (Some(reservation_key), Some(service_action_key), Some(&flags)) =
            (be_u64(buf, 0), be_u64(buf, 8), buf.get(20))
        else {
            return Err(short());
        };
        Ok(PrOutParams {
            reservation_key,
            service_action_key,
            spec_i_pt: flags & SPEC_I_PT != 0,
            all_tg_pt: flags & ALL_TG_PT != 0,
            aptpl: flags & APTPL != 0,
            transport_ids: Vec::new(),
        })
    }

    /// Decodes a whole parameter list. Its length must be exactly what the content
    /// implies (24, or 28 plus the TransportID list length with SPEC_I_PT), as SPC
    /// requires of the PARAMETER LIST LENGTH.
    pub fn decode(buf: &[u8]) -> Result<PrOutParams, PrDecodeError> {
        const WHAT: &str = "PR OUT parameter list";
        let mut params = PrOutParams::decode_header(buf)?;
        if params.spec_i_pt {
            let list_len = be_u32(buf, PARAMETER_LIST_LEN)
                .ok_or_else(|| too_short(WHAT, PARAMETER_LIST_LEN + 4, buf.len()))?;
            let list = buf.get(PARAMETER_LIST_LEN + 4..).unwrap_or_default();
            check_exact(WHAT, u64::from(list_len), list.len())?;
            let mut rest = list;
            while !rest.is_empty() {
                let (id, used) = TransportId::decode(rest)?;
                params.transport_ids.push(id);
                rest = rest.get(used..).unwrap_or_default();
            }
        } else {
            check_exact(WHAT, PARAMETER_LIST_LEN as u64, buf.len())?;
        }
        Ok(params)
    }
}

impl RegisterMoveParams {
    /// The parameter list: 24 bytes (UNREG is bit 1 and APTPL bit 0 of byte 17,
    /// relative target port at 18..20, TransportID length at 20..24), then the ID.
    pub fn encode(&self) -> Result<Vec<u8>, PrEncodeError> {
        let id = self.transport_id.to_bytes()?;
        let len = u32::try_from(id.len()).map_err(|_| PrEncodeError::TooLong {
            what: "transport ID",
            len: id.len(),
        })?;
        let mut out = Vec::with_capacity(PARAMETER_LIST_LEN.saturating_add(id.len()));
        out.extend_from_slice(&self.reservation_key.to_be_bytes());
        out.extend_from_slice(&self.service_action_key.to_be_bytes());
        out.push(0);
        out.push(flag(self.unreg, MOVE_UNREG) | flag(self.aptpl, MOVE_APTPL));
        out.extend_from_slice(&self.relative_target_port.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        debug_assert_eq!(out.len(), PARAMETER_LIST_LEN);
        out.extend_from_slice(&id);
        Ok(out)
    }

    /// Decodes a whole REGISTER AND MOVE list; its length must be 24 plus the
    /// TransportID length field, and the ID must fill that field exactly.
    pub fn decode(buf: &[u8]) -> Result<RegisterMoveParams, PrDecodeError> {
        const WHAT: &str = "REGISTER AND MOVE parameter list";
        let (
            Some(reservation_key),
            Some(service_action_key),
            Some(&flags),
            Some(port),
            Some(id_len),
        ) = (
            be_u64(buf, 0),
            be_u64(buf, 8),
            buf.get(17),
            be_u16(buf, 18),
            be_u32(buf, 20),
        )
        else {
            return Err(too_short(WHAT, PARAMETER_LIST_LEN, buf.len()));
        };
        let id_bytes = buf.get(PARAMETER_LIST_LEN..).unwrap_or_default();
        check_exact(WHAT, u64::from(id_len), id_bytes.len())?;
        let (transport_id, used) = TransportId::decode(id_bytes)?;
        check_exact("REGISTER AND MOVE transport ID", u64::from(id_len), used)?;
        Ok(RegisterMoveParams {
            reservation_key,
            service_action_key,
            unreg: flags & MOVE_UNREG != 0,
            aptpl: flags & MOVE_APTPL != 0,
            relative_target_port: port,
            transport_id,
        })
    }
}

const fn flag(set: bool, bit: u8) -> u8 {
    if set { bit } else { 0 }
}

fn too_short(what: &'static str, needed: usize, got: usize) -> PrDecodeError {
    PrDecodeError::TooShort { what, needed, got }
}

fn check_exact(what: &'static str, declared: u64, actual: usize) -> Result<(), PrDecodeError> {
    let actual = actual as u64;
    if declared == actual {
        Ok(())
    } else {
        Err(PrDecodeError::LengthMismatch {
            what,
            declared,
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic() -> PrOutParams {
        PrOutParams {
            reservation_key: 0x1111_2222_3333_4444,
            service_action_key: 0xAAAA_BBBB_CCCC_DDDD,
            spec_i_pt: false,
            all_tg_pt: true,
            aptpl: true,
            transport_ids: Vec::new(),
        }
    }

    #[test]
    fn basic_list_layout() {
        let bytes = basic().encode().unwrap();
        assert_eq!(bytes.len(), 24);
        assert_eq!(bytes[0..8], 0x1111_2222_3333_4444u64.to_be_bytes());
        assert_eq!(bytes[8..16], 0xAAAA_BBBB_CCCC_DDDDu64.to_be_bytes());
        assert_eq!(bytes[16..20], [0; 4]);
        assert_eq!(bytes[20], 0x05);
        assert_eq!(bytes[21..24], [0; 3]);
        assert_eq!(PrOutParams::decode(&bytes), Ok(basic()));
    }

    #[test]
    fn spec_i_pt_appends_the_transport_id_list() {
        let params = PrOutParams {
            spec_i_pt: true,
            transport_ids: vec![
                TransportId::FibreChannel { n_port_name: 1 },
                TransportId::Iscsi {
                    name: "iqn.2024-01.test:a".into(),
                    isid: None,
                },
                TransportId::Sas { address: 2 },
            ],
            ..basic()
        };
        let bytes = params.encode().unwrap();
        assert_eq!(bytes[20], 0x0D);
        let list_len = u32::from_be_bytes(bytes[24..28].try_into().unwrap());
        assert_eq!(list_len as usize, bytes.len() - 28);
        assert_eq!(list_len, 24 + 24 + 24);
        assert_eq!(PrOutParams::decode(&bytes), Ok(params));
        let empty = PrOutParams {
            spec_i_pt: true,
            ..basic()
        };
        assert_eq!(empty.encode().unwrap().len(), 28);
        assert_eq!(PrOutParams::decode(&empty.encode().unwrap()), Ok(empty));
    }

    #[test]
    fn header_decodes_keys_and_flags_whatever_follows() {
        let mut bytes = basic().encode().unwrap();
        bytes[20] |= SPEC_I_PT;
        let header = PrOutParams::decode_header(&bytes).unwrap();
        assert!(header.spec_i_pt && header.all_tg_pt && header.aptpl);
        assert_eq!(header.service_action_key, 0xAAAA_BBBB_CCCC_DDDD);
        assert!(PrOutParams::decode(&bytes).is_err());
        assert!(matches!(
            PrOutParams::decode_header(&bytes[..23]),
            Err(PrDecodeError::TooShort { needed: 24, .. })
        ));
    }

    #[test]
    fn basic_list_errors() {
        let ids = PrOutParams {
            transport_ids: vec![TransportId::Sas { address: 1 }],
            ..basic()
        };
        assert_eq!(ids.encode(), Err(PrEncodeError::TransportIdsWithoutSpecIPt));
        let bytes = basic().encode().unwrap();
        assert!(matches!(
            PrOutParams::decode(&bytes[..23]),
            Err(PrDecodeError::TooShort {
                needed: 24,
                got: 23,
                ..
            })
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            PrOutParams::decode(&long),
            Err(PrDecodeError::LengthMismatch {
                declared: 24,
                actual: 25,
                ..
            })
        ));
        let mut spec = bytes;
        spec[20] |= 0x08;
        assert!(matches!(
            PrOutParams::decode(&spec),
            Err(PrDecodeError::TooShort { needed: 28, .. })
        ));
        spec.extend_from_slice(&[0, 0, 0, 24]);
        spec.extend_from_slice(&[0; 20]);
        assert!(matches!(
            PrOutParams::decode(&spec),
            Err(PrDecodeError::LengthMismatch {
                declared: 24,
                actual: 20,
                ..
            })
        ));
        spec[27] = 20;
        assert!(matches!(
            PrOutParams::decode(&spec),
            Err(PrDecodeError::TooShort {
                needed: 24,
                got: 20,
                ..
            })
        ));
        assert_eq!(
            PrDecodeError::TooShort {
                what: "x",
                needed: 1,
                got: 0
            }
            .sense(),
            crate::Sense::PARAMETER_LIST_LENGTH_ERROR
        );
    }

    #[test]
    fn register_and_move_layout() {
        let params = RegisterMoveParams {
            reservation_key: 5,
            service_action_key: 6,
            unreg: true,
            aptpl: false,
            relative_target_port: 0x0102,
            transport_id: TransportId::Iscsi {
                name: "iqn.2024-01.test:b".into(),
                isid: Some("1".into()),
            },
        };
        let bytes = params.encode().unwrap();
        assert_eq!(bytes[0..8], 5u64.to_be_bytes());
        assert_eq!(bytes[8..16], 6u64.to_be_bytes());
        assert_eq!(bytes[16], 0);
        assert_eq!(bytes[17], 0x02, "UNREG is bit 1");
        assert_eq!(bytes[18..20], [0x01, 0x02]);
        let id_len = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!(id_len as usize, bytes.len() - 24);
        assert_eq!(bytes[24], 0x45);
        assert_eq!(RegisterMoveParams::decode(&bytes), Ok(params.clone()));
        let aptpl = RegisterMoveParams {
            unreg: false,
            aptpl: true,
            ..params
        };
        assert_eq!(aptpl.encode().unwrap()[17], 0x01, "APTPL is bit 0");
    }

    #[test]
    fn register_and_move_errors() {
        let params = RegisterMoveParams {
            reservation_key: 1,
            service_action_key: 2,
            unreg: false,
            aptpl: false,
            relative_target_port: 1,
            transport_id: TransportId::FibreChannel { n_port_name: 9 },
        };
        let bytes = params.encode().unwrap();
        assert!(matches!(
            RegisterMoveParams::decode(&bytes[..20]),
            Err(PrDecodeError::TooShort { .. })
        ));
        assert!(matches!(
            RegisterMoveParams::decode(&bytes[..40]),
            Err(PrDecodeError::LengthMismatch { .. })
        ));
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0; 4]);
        padded[23] = 28;
        assert!(matches!(
            RegisterMoveParams::decode(&padded),
            Err(PrDecodeError::LengthMismatch {
                declared: 28,
                actual: 24,
                ..
            })
        ));
        let mut none = bytes[..24].to_vec();
        none[20..24].fill(0);
        assert!(matches!(
            RegisterMoveParams::decode(&none),
            Err(PrDecodeError::TooShort { .. })
        ));
    }
}
