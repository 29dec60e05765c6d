//! Parsers for option values: keys, reservation types, transport IDs.

use pr_manager::{ReservationType, TransportId};

/// A reservation key: hexadecimal, with or without `0x`, at most 16 digits.
pub fn parse_key(text: &str) -> Result<u64, String> {
    let digits = strip_hex_prefix(text);
    if digits.is_empty() || digits.len() > 16 {
        return Err(format!("{text:?} is not a key of 1 to 16 hex digits"));
    }
    u64::from_str_radix(digits, 16).map_err(|_| format!("{text:?} is not a hexadecimal key"))
}

/// A reservation type by short name, standard name or code.
pub fn parse_type(text: &str) -> Result<ReservationType, String> {
    text.parse::<ReservationType>().map_err(|_| {
        format!(
            "{text:?} is not a reservation type (we, ea, we-ro, ea-ro, we-ar, ea-ar or 1, 3, 5-8)"
        )
    })
}

/// A transport ID: `fc:HEX16` (N_Port name), `sas:HEX16` (SAS address),
/// `iscsi:NAME` or `iscsi:NAME,i,0xISID`.
pub fn parse_transport_id(text: &str) -> Result<TransportId, String> {
    let (kind, rest) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: expected fc:HEX16, sas:HEX16 or iscsi:NAME"))?;
    match kind.to_ascii_lowercase().as_str() {
        "fc" | "fcp" => Ok(TransportId::FibreChannel {
            n_port_name: parse_wwn(rest)?,
        }),
        "sas" => Ok(TransportId::Sas {
            address: parse_wwn(rest)?,
        }),
        "iscsi" => parse_iscsi(rest),
        other => Err(format!(
            "{other:?} is not a transport (use fc, sas or iscsi)"
        )),
    }
}

fn parse_wwn(text: &str) -> Result<u64, String> {
    let digits = strip_hex_prefix(text);
    if digits.len() != 16 {
        return Err(format!("{text:?} is not a 16-hex-digit port name"));
    }
    u64::from_str_radix(digits, 16).map_err(|_| format!("{text:?} is not hexadecimal"))
}

fn parse_iscsi(text: &str) -> Result<TransportId, String> {
    let (name, isid) = match text.split_once(pr_manager_isid_separator()) {
        Some((name, isid)) => (name, Some(isid)),
        None => (text, None),
    };
    if name.is_empty() || name.contains('\0') {
        return Err(format!("{text:?} is not an iSCSI name"));
    }
    if let Some(isid) = isid {
        if isid.is_empty() || !isid.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("{isid:?} is not a hexadecimal ISID"));
        }
    }
    Ok(TransportId::Iscsi {
        name: name.to_owned(),
        isid: isid.map(str::to_owned),
    })
}

fn pr_manager_isid_separator() -> &'static str {
    scsi::pr::ISCSI_ISID_SEPARATOR
}

fn strip_hex_prefix(text: &str) -> &str {
    text.strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hex() {
        assert_eq!(parse_key("0x1234abcd"), Ok(0x1234_abcd));
        assert_eq!(parse_key("ff"), Ok(0xff));
        assert_eq!(parse_key("0"), Ok(0));
        assert_eq!(parse_key("ffffffffffffffff"), Ok(u64::MAX));
        assert!(parse_key("").is_err());
        assert!(parse_key("0x").is_err());
        assert!(parse_key("12345678901234567").is_err());
        assert!(parse_key("xyz").is_err());
    }

    #[test]
    fn types_by_name_and_code() {
        assert_eq!(parse_type("we"), Ok(ReservationType::WriteExclusive));
        assert_eq!(
            parse_type("ea-ar"),
            Ok(ReservationType::ExclusiveAccessAllRegistrants)
        );
        assert_eq!(
            parse_type("5"),
            Ok(ReservationType::WriteExclusiveRegistrantsOnly)
        );
        assert!(parse_type("2").is_err());
        assert!(parse_type("shared").is_err());
    }

    #[test]
    fn transport_ids_in_three_forms() {
        assert_eq!(
            parse_transport_id("fc:0x2100001b32a9e2c1"),
            Ok(TransportId::FibreChannel {
                n_port_name: 0x2100_001b_32a9_e2c1
            })
        );
        assert_eq!(
            parse_transport_id("sas:5000c50012345678"),
            Ok(TransportId::Sas {
                address: 0x5000_c500_1234_5678
            })
        );
        assert_eq!(
            parse_transport_id("iscsi:iqn.2026-11.org.example:a"),
            Ok(TransportId::Iscsi {
                name: "iqn.2026-11.org.example:a".into(),
                isid: None
            })
        );
        assert_eq!(
            parse_transport_id("iscsi:iqn.2026-11.org.example:a,i,0x23d000001"),
            Ok(TransportId::Iscsi {
                name: "iqn.2026-11.org.example:a".into(),
                isid: Some("23d000001".into())
            })
        );
        assert!(parse_transport_id("fc:12").is_err());
        assert!(parse_transport_id("usb:1").is_err());
        assert!(parse_transport_id("iqn.no-kind").is_err());
        assert!(parse_transport_id("iscsi:n,i,0xzz").is_err());
    }
}
