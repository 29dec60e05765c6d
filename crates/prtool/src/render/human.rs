//! Text output, readable like sg_persist's: keys in hex, the generation,
//! type names, every capability bit. Results go to standard output,
//! failures (always with the sense in words) to standard error.

use std::fmt::Write as _;

use pr_manager::{
    Decoded, FullStatus, PrInData, ReadKeys, ReadReservation, ReportCapabilities, TransportId,
};

use super::{hex_bytes, mask_entries, scope_words, type_words};
use crate::exit::Exit;
use crate::run::Outcome;

/// Standard output and standard error text for `outcome`.
pub fn render(outcome: &Outcome) -> (String, String) {
    let mut out = String::new();
    let mut err = String::new();
    if outcome.exit == Exit::Success {
        match &outcome.data {
            Some(data) => render_data(&mut out, data),
            None => line(
                &mut out,
                format_args!("PR OUT {} completed", outcome.action),
            ),
        }
        return (out, err);
    }
    let what = match (outcome.status, &outcome.failure) {
        (Some(status), _) => status.to_string(),
        (None, Some(failure)) => failure.clone(),
        (None, None) => "not sent".to_owned(),
    };
    line(
        &mut err,
        format_args!(
            "prtool: {} on {} failed: {what}",
            outcome.action,
            outcome.device.display()
        ),
    );
    if let Some(sense) = outcome.sense {
        line(
            &mut err,
            format_args!(
                "  sense: {sense} (key 0x{:02X}, ASC 0x{:02X}, ASCQ 0x{:02X})",
                sense.key, sense.asc, sense.ascq
            ),
        );
        line(
            &mut err,
            format_args!("  sense bytes: {}", hex_bytes(&outcome.sense_bytes)),
        );
    }
    if let (Some(_), Some(failure)) = (outcome.status, &outcome.failure) {
        line(&mut err, format_args!("  cause: {failure}"));
    }
    (out, err)
}

fn line(buf: &mut String, args: std::fmt::Arguments<'_>) {
    // Writing to a String cannot fail.
    let _ = buf.write_fmt(args);
    buf.push('\n');
}

fn render_data(out: &mut String, data: &PrInData) {
    match data {
        PrInData::Keys(keys) => read_keys(out, keys),
        PrInData::Reservation(reservation) => read_reservation(out, reservation),
        PrInData::Capabilities(caps) => report_capabilities(out, caps),
        PrInData::FullStatus(full) => read_full_status(out, full),
    }
}

fn truncation<T>(out: &mut String, decoded: &Decoded<T>) {
    if decoded.truncated {
        line(
            out,
            format_args!(
                "  (truncated: the device has {} bytes to return; use a larger --alloc-length)",
                decoded.advertised_len
            ),
        );
    }
}

fn read_keys(out: &mut String, decoded: &Decoded<ReadKeys>) {
    let keys = &decoded.value;
    if keys.keys.is_empty() {
        line(
            out,
            format_args!(
                "  PR generation=0x{:x}, there are NO registered reservation keys",
                keys.generation
            ),
        );
    } else {
        line(
            out,
            format_args!(
                "  PR generation=0x{:x}, {} registered reservation key{} follow{}:",
                keys.generation,
                keys.keys.len(),
                if keys.keys.len() == 1 { "" } else { "s" },
                if keys.keys.len() == 1 { "s" } else { "" },
            ),
        );
        for key in &keys.keys {
            line(out, format_args!("    0x{key:x}"));
        }
    }
    truncation(out, decoded);
}

fn read_reservation(out: &mut String, decoded: &Decoded<ReadReservation>) {
    let value = &decoded.value;
    match value.reservation {
        None => line(
            out,
            format_args!(
                "  PR generation=0x{:x}, there is NO reservation held",
                value.generation
            ),
        ),
        Some(reservation) => {
            line(
                out,
                format_args!(
                    "  PR generation=0x{:x}, Reservation follows:",
                    value.generation
                ),
            );
            line(out, format_args!("    Key=0x{:x}", reservation.key));
            line(
                out,
                format_args!(
                    "    scope: {}, type: {}",
                    scope_words(reservation.scope_type),
                    type_words(reservation.scope_type)
                ),
            );
        }
    }
    truncation(out, decoded);
}

fn report_capabilities(out: &mut String, decoded: &Decoded<ReportCapabilities>) {
    let caps = &decoded.value;
    let bit = |b: bool| u8::from(b);
    line(out, format_args!("Report capabilities response:"));
    let rows: [(&str, u8); 8] = [
        ("Replace Lost Reservation Capable (RLR_C)", bit(caps.rlr_c)),
        ("Compatible Reservation Handling (CRH)", bit(caps.crh)),
        ("Specify Initiator Ports Capable (SIP_C)", bit(caps.sip_c)),
        ("All Target Ports Capable (ATP_C)", bit(caps.atp_c)),
        (
            "Persist Through Power Loss Capable (PTPL_C)",
            bit(caps.ptpl_c),
        ),
        ("Type Mask Valid (TMV)", bit(caps.tmv)),
        ("Allow Commands", caps.allow_commands),
        (
            "Persist Through Power Loss Active (PTPL_A)",
            bit(caps.ptpl_a),
        ),
    ];
    for (name, value) in rows {
        line(out, format_args!("  {name}: {value}"));
    }
    line(out, format_args!("  Support indicated in Type mask:"));
    for (rtype, supported) in mask_entries(&caps.type_mask) {
        line(
            out,
            format_args!(
                "    {} ({}): {}",
                rtype.long_name(),
                rtype.short_name(),
                bit(supported)
            ),
        );
    }
    truncation(out, decoded);
}

fn read_full_status(out: &mut String, decoded: &Decoded<FullStatus>) {
    let full = &decoded.value;
    let count = full.descriptors.len();
    if count == 0 {
        line(
            out,
            format_args!(
                "  PR generation=0x{:x}, there are NO registrants",
                full.generation
            ),
        );
    }
    if count > 0 {
        line(
            out,
            format_args!(
                "  PR generation=0x{:x}, {count} registrant{} follow{}:",
                full.generation,
                if count == 1 { "" } else { "s" },
                if count == 1 { "s" } else { "" },
            ),
        );
    }
    for d in &full.descriptors {
        line(out, format_args!("    Key=0x{:x}", d.reservation_key));
        line(
            out,
            format_args!(
                "      All target ports bit {}",
                if d.all_tg_pt { "set" } else { "clear" }
            ),
        );
        line(
            out,
            format_args!(
                "      Relative port address: 0x{:x}",
                d.relative_target_port
            ),
        );
        if d.r_holder {
            line(out, format_args!("      << Reservation holder >>"));
            line(
                out,
                format_args!(
                    "      scope: {}, type: {}",
                    scope_words(d.scope_type),
                    type_words(d.scope_type)
                ),
            );
        } else {
            line(out, format_args!("      not reservation holder"));
        }
        line(out, format_args!("      Transport Id of initiator:"));
        line(
            out,
            format_args!("        {}", transport_id_words(&d.transport_id)),
        );
    }
    truncation(out, decoded);
}

/// A transport ID in words.
pub fn transport_id_words(id: &TransportId) -> String {
    match id {
        TransportId::FibreChannel { n_port_name } => {
            format!("FCP-2 World Wide Name: 0x{n_port_name:016x}")
        }
        TransportId::Sas { address } => format!("SAS address: 0x{address:016x}"),
        TransportId::Srp { id } => {
            format!("SRP initiator port: 0x{}", hex_bytes(id).replace(' ', ""))
        }
        TransportId::Iscsi { name, isid: None } => format!("iSCSI name: {name}"),
        TransportId::Iscsi {
            name,
            isid: Some(isid),
        } => format!("iSCSI name and session id: {name},i,0x{isid}"),
        TransportId::Other { bytes } => {
            format!("protocol 0x{:x}: {}", id.protocol_id(), hex_bytes(bytes))
        }
    }
}
