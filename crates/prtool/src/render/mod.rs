//! Turning an [`Outcome`](crate::run::Outcome) into text or JSON.

pub mod check;
pub mod human;
pub mod json;

use pr_manager::ReservationType;
use scsi::pr::ScopeType;

/// The type named in a scope/type byte, in words.
fn type_words(scope_type: ScopeType) -> String {
    match scope_type.rtype() {
        Some(rtype) => format!("{} ({})", rtype.long_name(), rtype.short_name()),
        None => format!("reserved type code 0x{:x}", scope_type.type_code()),
    }
}

/// The scope named in a scope/type byte, in words.
fn scope_words(scope_type: ScopeType) -> String {
    match scope_type.scope_code() {
        0 => "logical unit".to_owned(),
        code => format!("reserved scope code 0x{code:x}"),
    }
}

/// The type mask entries in the order of the REPORT CAPABILITIES bits.
fn mask_entries(mask: &scsi::pr::TypeMask) -> [(ReservationType, bool); 6] {
    [
        (ReservationType::WriteExclusiveAllRegistrants, mask.wr_ex_ar),
        (
            ReservationType::ExclusiveAccessRegistrantsOnly,
            mask.ex_ac_ro,
        ),
        (
            ReservationType::WriteExclusiveRegistrantsOnly,
            mask.wr_ex_ro,
        ),
        (ReservationType::ExclusiveAccess, mask.ex_ac),
        (ReservationType::WriteExclusive, mask.wr_ex),
        (
            ReservationType::ExclusiveAccessAllRegistrants,
            mask.ex_ac_ar,
        ),
    ]
}

/// Space-separated lowercase hex.
fn hex_bytes(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
