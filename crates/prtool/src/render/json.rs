//! JSON output: one object per run, schema version 1, documented in the
//! README. Fields are only ever added, never renamed or retyped, within a
//! schema version. Keys and port names are hex strings ("0x...") because
//! a u64 does not fit a JSON number everyone can read.

use pr_manager::{
    Decoded, FullStatus, PrInData, ReadKeys, ReadReservation, ReportCapabilities, TransportId,
};
use scsi::pr::ScopeType;
use scsi::sense::key;
use serde::Serialize;

use super::{hex_bytes, mask_entries};
use crate::run::{Outcome, Via};

/// Bumped only for an incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Report<'a> {
    schema: u32,
    command: &'a str,
    service_action: &'a str,
    device: String,
    via: &'static str,
    socket: Option<String>,
    outcome: &'static str,
    exit_code: u8,
    status: Option<StatusJson>,
    sense: Option<SenseJson>,
    failure: Option<&'a str>,
    data: Option<DataJson>,
}

#[derive(Serialize)]
struct StatusJson {
    code: u8,
    name: String,
}

#[derive(Serialize)]
struct SenseJson {
    key: u8,
    asc: u8,
    ascq: u8,
    key_name: Option<&'static str>,
    description: Option<&'static str>,
    text: String,
    bytes: String,
}

#[derive(Serialize)]
pub(super) struct Truncation {
    truncated: bool,
    advertised_length: u64,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(super) enum DataJson {
    ReadKeys {
        generation: u32,
        keys: Vec<String>,
        #[serde(flatten)]
        truncation: Truncation,
    },
    ReadReservation {
        generation: u32,
        reservation: Option<ReservationJson>,
        #[serde(flatten)]
        truncation: Truncation,
    },
    ReportCapabilities {
        rlr_c: bool,
        crh: bool,
        sip_c: bool,
        atp_c: bool,
        ptpl_c: bool,
        tmv: bool,
        allow_commands: u8,
        ptpl_a: bool,
        type_mask: Vec<MaskEntry>,
        #[serde(flatten)]
        truncation: Truncation,
    },
    ReadFullStatus {
        generation: u32,
        registrants: Vec<RegistrantJson>,
        #[serde(flatten)]
        truncation: Truncation,
    },
}

#[derive(Serialize)]
pub(super) struct TypeJson {
    code: u8,
    name: Option<&'static str>,
    description: Option<&'static str>,
}

#[derive(Serialize)]
pub(super) struct ReservationJson {
    key: String,
    scope: u8,
    #[serde(rename = "type")]
    rtype: TypeJson,
}

#[derive(Serialize)]
pub(super) struct MaskEntry {
    name: &'static str,
    description: &'static str,
    supported: bool,
}

#[derive(Serialize)]
pub(super) struct RegistrantJson {
    key: String,
    all_tg_pt: bool,
    reservation_holder: bool,
    scope: Option<u8>,
    #[serde(rename = "type")]
    rtype: Option<TypeJson>,
    relative_target_port: u16,
    transport_id: TransportIdJson,
}

#[derive(Serialize)]
#[serde(tag = "protocol", rename_all = "kebab-case")]
pub(super) enum TransportIdJson {
    Fc { n_port_name: String },
    Sas { address: String },
    Srp { id: String },
    Iscsi { name: String, isid: Option<String> },
    Other { protocol_id: u8, bytes: String },
}

/// The JSON text for `outcome` (one line, newline-terminated).
pub fn render(outcome: &Outcome) -> String {
    let (via, socket) = match &outcome.via {
        Via::Socket(path) => ("socket", Some(path.display().to_string())),
        Via::Direct => ("direct", None),
    };
    let report = Report {
        schema: SCHEMA_VERSION,
        command: outcome.command,
        service_action: outcome.action,
        device: outcome.device.display().to_string(),
        via,
        socket,
        outcome: outcome.exit.name(),
        exit_code: outcome.exit.code(),
        status: outcome.status.map(|s| StatusJson {
            code: s.0,
            name: s.to_string(),
        }),
        sense: outcome.sense.map(|s| SenseJson {
            key: s.key,
            asc: s.asc,
            ascq: s.ascq,
            key_name: key::name(s.key),
            description: s.asc_description(),
            text: s.to_string(),
            bytes: hex_bytes(&outcome.sense_bytes).replace(' ', ""),
        }),
        failure: outcome.failure.as_deref(),
        data: outcome.data.as_ref().map(data_json),
    };
    // Serialising plain structs of strings and integers cannot fail.
    let mut text = serde_json::to_string_pretty(&report).unwrap_or_default();
    text.push('\n');
    text
}

fn truncation<T>(d: &Decoded<T>) -> Truncation {
    Truncation {
        truncated: d.truncated,
        advertised_length: d.advertised_len,
    }
}

pub(super) fn key_hex(key: u64) -> String {
    format!("0x{key:016x}")
}

fn type_json(scope_type: ScopeType) -> TypeJson {
    let rtype = scope_type.rtype();
    TypeJson {
        code: scope_type.type_code(),
        name: rtype.map(|t| t.short_name()),
        description: rtype.map(|t| t.long_name()),
    }
}

fn data_json(data: &PrInData) -> DataJson {
    match data {
        PrInData::Keys(d) => keys_json(d),
        PrInData::Reservation(d) => reservation_json(d),
        PrInData::Capabilities(d) => capabilities_json(d),
        PrInData::FullStatus(d) => full_status_json(d),
    }
}

fn keys_json(d: &Decoded<ReadKeys>) -> DataJson {
    DataJson::ReadKeys {
        generation: d.value.generation,
        keys: d.value.keys.iter().copied().map(key_hex).collect(),
        truncation: truncation(d),
    }
}

fn reservation_json(d: &Decoded<ReadReservation>) -> DataJson {
    DataJson::ReadReservation {
        generation: d.value.generation,
        reservation: d.value.reservation.map(|r| ReservationJson {
            key: key_hex(r.key),
            scope: r.scope_type.scope_code(),
            rtype: type_json(r.scope_type),
        }),
        truncation: truncation(d),
    }
}

pub(super) fn capabilities_json(d: &Decoded<ReportCapabilities>) -> DataJson {
    let c = &d.value;
    DataJson::ReportCapabilities {
        rlr_c: c.rlr_c,
        crh: c.crh,
        sip_c: c.sip_c,
        atp_c: c.atp_c,
        ptpl_c: c.ptpl_c,
        tmv: c.tmv,
        allow_commands: c.allow_commands,
        ptpl_a: c.ptpl_a,
        type_mask: mask_entries(&c.type_mask)
            .into_iter()
            .map(|(rtype, supported)| MaskEntry {
                name: rtype.short_name(),
                description: rtype.long_name(),
                supported,
            })
            .collect(),
        truncation: truncation(d),
    }
}

pub(super) fn full_status_json(d: &Decoded<FullStatus>) -> DataJson {
    DataJson::ReadFullStatus {
        generation: d.value.generation,
        registrants: d
            .value
            .descriptors
            .iter()
            .map(|r| RegistrantJson {
                key: key_hex(r.reservation_key),
                all_tg_pt: r.all_tg_pt,
                reservation_holder: r.r_holder,
                scope: r.r_holder.then(|| r.scope_type.scope_code()),
                rtype: r.r_holder.then(|| type_json(r.scope_type)),
                relative_target_port: r.relative_target_port,
                transport_id: transport_id_json(&r.transport_id),
            })
            .collect(),
        truncation: truncation(d),
    }
}

pub(super) fn transport_id_json(id: &TransportId) -> TransportIdJson {
    match id {
        TransportId::FibreChannel { n_port_name } => TransportIdJson::Fc {
            n_port_name: key_hex(*n_port_name),
        },
        TransportId::Sas { address } => TransportIdJson::Sas {
            address: key_hex(*address),
        },
        TransportId::Srp { id } => TransportIdJson::Srp {
            id: format!("0x{}", hex_bytes(id).replace(' ', "")),
        },
        TransportId::Iscsi { name, isid } => TransportIdJson::Iscsi {
            name: name.clone(),
            isid: isid.clone(),
        },
        TransportId::Other { bytes } => TransportIdJson::Other {
            protocol_id: id.protocol_id(),
            bytes: hex_bytes(bytes).replace(' ', ""),
        },
    }
}
