//! Service actions, reservation types and scope of PERSISTENT RESERVE IN/OUT (SPC-4 6.16, 6.17).

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// PERSISTENT RESERVE IN service actions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PrInAction {
    ReadKeys,
    ReadReservation,
    ReportCapabilities,
    ReadFullStatus,
}

/// PERSISTENT RESERVE OUT service actions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PrOutAction {
    Register,
    Reserve,
    Release,
    Clear,
    Preempt,
    PreemptAndAbort,
    RegisterAndIgnoreExistingKey,
    RegisterAndMove,
    ReplaceLostReservation,
}

/// Persistent reservation types.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ReservationType {
    WriteExclusive,
    ExclusiveAccess,
    WriteExclusiveRegistrantsOnly,
    ExclusiveAccessRegistrantsOnly,
    WriteExclusiveAllRegistrants,
    ExclusiveAccessAllRegistrants,
}

/// Reservation scope; SPC-4 keeps only LU_SCOPE (the others are obsolete).
/// Serialised as its SCOPE code, the number the field carries on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(into = "u8", try_from = "u8")
)]
pub enum Scope {
    #[default]
    LogicalUnit,
}

/// The SCOPE (high nibble) / TYPE (low nibble) byte as it travels in CDBs and PR IN
/// data. Kept raw so a device's byte round-trips even when it names no known type
/// (e.g. 0 for registrants that hold no reservation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct ScopeType(pub u8);

/// A SCOPE code that names no scope SPC-4 keeps.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Error)]
#[error("unknown SCOPE code 0x{0:X}")]
pub struct UnknownScopeCode(pub u8);

/// A name that matches no service action or reservation type.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
#[error("unknown {what}: {input:?}")]
pub struct ParseNameError {
    pub what: &'static str,
    pub input: String,
}

impl PrInAction {
    pub const ALL: [PrInAction; 4] = [
        PrInAction::ReadKeys,
        PrInAction::ReadReservation,
        PrInAction::ReportCapabilities,
        PrInAction::ReadFullStatus,
    ];

    /// The SERVICE ACTION code (CDB byte 1, bits 4-0).
    pub const fn code(self) -> u8 {
        match self {
            PrInAction::ReadKeys => 0x00,
            PrInAction::ReadReservation => 0x01,
            PrInAction::ReportCapabilities => 0x02,
            PrInAction::ReadFullStatus => 0x03,
        }
    }

    pub const fn from_code(code: u8) -> Option<PrInAction> {
        Some(match code {
            0x00 => PrInAction::ReadKeys,
            0x01 => PrInAction::ReadReservation,
            0x02 => PrInAction::ReportCapabilities,
            0x03 => PrInAction::ReadFullStatus,
            _ => return None,
        })
    }

    /// The standard name, e.g. "READ KEYS".
    pub const fn name(self) -> &'static str {
        match self {
            PrInAction::ReadKeys => "READ KEYS",
            PrInAction::ReadReservation => "READ RESERVATION",
            PrInAction::ReportCapabilities => "REPORT CAPABILITIES",
            PrInAction::ReadFullStatus => "READ FULL STATUS",
        }
    }
}

impl PrOutAction {
    pub const ALL: [PrOutAction; 9] = [
        PrOutAction::Register,
        PrOutAction::Reserve,
        PrOutAction::Release,
        PrOutAction::Clear,
        PrOutAction::Preempt,
        PrOutAction::PreemptAndAbort,
        PrOutAction::RegisterAndIgnoreExistingKey,
        PrOutAction::RegisterAndMove,
        PrOutAction::ReplaceLostReservation,
    ];

    /// The SERVICE ACTION code (CDB byte 1, bits 4-0).
    pub const fn code(self) -> u8 {
        match self {
            PrOutAction::Register => 0x00,
            PrOutAction::Reserve => 0x01,
            PrOutAction::Release => 0x02,
            PrOutAction::Clear => 0x03,
            PrOutAction::Preempt => 0x04,
            PrOutAction::PreemptAndAbort => 0x05,
            PrOutAction::RegisterAndIgnoreExistingKey => 0x06,
            PrOutAction::RegisterAndMove => 0x07,
            PrOutAction::ReplaceLostReservation => 0x08,
        }
    }

    pub const fn from_code(code: u8) -> Option<PrOutAction> {
        Some(match code {
            0x00 => PrOutAction::Register,
            0x01 => PrOutAction::Reserve,
            0x02 => PrOutAction::Release,
            0x03 => PrOutAction::Clear,
            0x04 => PrOutAction::Preempt,
            0x05 => PrOutAction::PreemptAndAbort,
            0x06 => PrOutAction::RegisterAndIgnoreExistingKey,
            0x07 => PrOutAction::RegisterAndMove,
            0x08 => PrOutAction::ReplaceLostReservation,
            _ => return None,
        })
    }

    /// The standard name, e.g. "PREEMPT AND ABORT".
    pub const fn name(self) -> &'static str {
        match self {
            PrOutAction::Register => "REGISTER",
            PrOutAction::Reserve => "RESERVE",
            PrOutAction::Release => "RELEASE",
            PrOutAction::Clear => "CLEAR",
            PrOutAction::Preempt => "PREEMPT",
            PrOutAction::PreemptAndAbort => "PREEMPT AND ABORT",
            PrOutAction::RegisterAndIgnoreExistingKey => "REGISTER AND IGNORE EXISTING KEY",
            PrOutAction::RegisterAndMove => "REGISTER AND MOVE",
            PrOutAction::ReplaceLostReservation => "REPLACE LOST RESERVATION",
        }
    }

    /// Whether the CDB's TYPE field means something for this action (RESERVE,
    /// RELEASE, PREEMPT, PREEMPT AND ABORT, REGISTER AND MOVE, REPLACE LOST
    /// RESERVATION); REGISTER, REGISTER AND IGNORE and CLEAR ignore it.
    pub const fn uses_type(self) -> bool {
        !matches!(
            self,
            PrOutAction::Register | PrOutAction::RegisterAndIgnoreExistingKey | PrOutAction::Clear
        )
    }
}

impl ReservationType {
    pub const ALL: [ReservationType; 6] = [
        ReservationType::WriteExclusive,
        ReservationType::ExclusiveAccess,
        ReservationType::WriteExclusiveRegistrantsOnly,
        ReservationType::ExclusiveAccessRegistrantsOnly,
        ReservationType::WriteExclusiveAllRegistrants,
        ReservationType::ExclusiveAccessAllRegistrants,
    ];

    /// The TYPE code (4 bits).
    pub const fn code(self) -> u8 {
        match self {
            ReservationType::WriteExclusive => 1,
            ReservationType::ExclusiveAccess => 3,
            ReservationType::WriteExclusiveRegistrantsOnly => 5,
            ReservationType::ExclusiveAccessRegistrantsOnly => 6,
            ReservationType::WriteExclusiveAllRegistrants => 7,
            ReservationType::ExclusiveAccessAllRegistrants => 8,
        }
    }

    pub const fn from_code(code: u8) -> Option<ReservationType> {
        Some(match code {
            1 => ReservationType::WriteExclusive,
            3 => ReservationType::ExclusiveAccess,
            5 => ReservationType::WriteExclusiveRegistrantsOnly,
            6 => ReservationType::ExclusiveAccessRegistrantsOnly,
            7 => ReservationType::WriteExclusiveAllRegistrants,
            8 => ReservationType::ExclusiveAccessAllRegistrants,
            _ => return None,
        })
    }

    /// Short command-line name: we, ea, we-ro, ea-ro, we-ar, ea-ar.
    pub const fn short_name(self) -> &'static str {
        match self {
            ReservationType::WriteExclusive => "we",
            ReservationType::ExclusiveAccess => "ea",
            ReservationType::WriteExclusiveRegistrantsOnly => "we-ro",
            ReservationType::ExclusiveAccessRegistrantsOnly => "ea-ro",
            ReservationType::WriteExclusiveAllRegistrants => "we-ar",
            ReservationType::ExclusiveAccessAllRegistrants => "ea-ar",
        }
    }

    /// The standard's name, e.g. "Write Exclusive - Registrants Only".
    pub const fn long_name(self) -> &'static str {
        match self {
            ReservationType::WriteExclusive => "Write Exclusive",
            ReservationType::ExclusiveAccess => "Exclusive Access",
            ReservationType::WriteExclusiveRegistrantsOnly => "Write Exclusive - Registrants Only",
            ReservationType::ExclusiveAccessRegistrantsOnly => {
                "Exclusive Access - Registrants Only"
            }
            ReservationType::WriteExclusiveAllRegistrants => "Write Exclusive - All Registrants",
            ReservationType::ExclusiveAccessAllRegistrants => "Exclusive Access - All Registrants",
        }
    }

    /// Whether every registrant (not only the holder) may write under this type.
    pub const fn registrants_share(self) -> bool {
        !matches!(
            self,
            ReservationType::WriteExclusive | ReservationType::ExclusiveAccess
        )
    }

    /// Whether reads are restricted too, not only writes (the Exclusive Access types).
    pub const fn restricts_reads(self) -> bool {
        matches!(
            self,
            ReservationType::ExclusiveAccess
                | ReservationType::ExclusiveAccessRegistrantsOnly
                | ReservationType::ExclusiveAccessAllRegistrants
        )
    }

    /// Whether the type is one of the "all registrants" types, whose holder is
    /// every registrant.
    pub const fn all_registrants(self) -> bool {
        matches!(
            self,
            ReservationType::WriteExclusiveAllRegistrants
                | ReservationType::ExclusiveAccessAllRegistrants
        )
    }
}

impl Scope {
    /// The SCOPE code (4 bits).
    pub const fn code(self) -> u8 {
        match self {
            Scope::LogicalUnit => 0,
        }
    }

    pub const fn from_code(code: u8) -> Option<Scope> {
        match code {
            0 => Some(Scope::LogicalUnit),
            _ => None,
        }
    }
}

impl From<Scope> for u8 {
    fn from(scope: Scope) -> u8 {
        scope.code()
    }
}

impl TryFrom<u8> for Scope {
    type Error = UnknownScopeCode;

    fn try_from(code: u8) -> Result<Scope, UnknownScopeCode> {
        Scope::from_code(code).ok_or(UnknownScopeCode(code))
    }
}

impl ScopeType {
    /// Packs a scope and an optional type (absent: TYPE 0).
    pub const fn new(scope: Scope, rtype: Option<ReservationType>) -> ScopeType {
        let type_code = match rtype {
            Some(t) => t.code(),
            None => 0,
        };
        ScopeType(scope.code() << 4 | type_code)
    }

    pub const fn scope_code(self) -> u8 {
        self.0 >> 4
    }

    pub const fn type_code(self) -> u8 {
        self.0 & 0x0f
    }

    pub const fn scope(self) -> Option<Scope> {
        Scope::from_code(self.scope_code())
    }

    pub const fn rtype(self) -> Option<ReservationType> {
        ReservationType::from_code(self.type_code())
    }
}

/// Lower case, every run of separators (space, dash, underscore, comma...) made one dash.
fn normalized(input: &str) -> String {
    input
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join("-")
}

fn parse_number(input: &str) -> Option<u8> {
    let text = input.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u8::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

impl FromStr for ReservationType {
    type Err = ParseNameError;

    /// Accepts the short name, the long name (any case, spaces, dashes or
    /// underscores) or the type code in decimal or 0x-hex.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let wanted = normalized(input);
        let by_name = ReservationType::ALL
            .into_iter()
            .find(|t| t.short_name() == wanted || normalized(t.long_name()) == wanted);
        by_name
            .or_else(|| parse_number(input).and_then(ReservationType::from_code))
            .ok_or_else(|| ParseNameError {
                what: "reservation type",
                input: input.to_owned(),
            })
    }
}

impl FromStr for PrInAction {
    type Err = ParseNameError;

    /// Accepts the standard name (any case, spaces, dashes or underscores) or the code.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let wanted = normalized(input);
        PrInAction::ALL
            .into_iter()
            .find(|a| normalized(a.name()) == wanted)
            .or_else(|| parse_number(input).and_then(PrInAction::from_code))
            .ok_or_else(|| ParseNameError {
                what: "PR IN service action",
                input: input.to_owned(),
            })
    }
}

impl FromStr for PrOutAction {
    type Err = ParseNameError;

    /// Accepts the standard name (any case, spaces, dashes or underscores) or the code.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let wanted = normalized(input);
        PrOutAction::ALL
            .into_iter()
            .find(|a| normalized(a.name()) == wanted)
            .or_else(|| parse_number(input).and_then(PrOutAction::from_code))
            .ok_or_else(|| ParseNameError {
                what: "PR OUT service action",
                input: input.to_owned(),
            })
    }
}

impl fmt::Display for PrInAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for PrOutAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for ReservationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.long_name())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::LogicalUnit => f.write_str("LU_SCOPE"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "serde")]
    #[test]
    fn serde_names_types_by_variant_and_scope_by_its_code() {
        let json = serde_json::to_string(&ReservationType::WriteExclusiveAllRegistrants).unwrap();
        assert_eq!(json, "\"WriteExclusiveAllRegistrants\"");
        assert_eq!(serde_json::to_string(&Scope::LogicalUnit).unwrap(), "0");
        assert_eq!(
            serde_json::from_str::<Scope>("0").unwrap(),
            Scope::LogicalUnit
        );
        let refused = serde_json::from_str::<Scope>("2").unwrap_err();
        assert!(
            refused.to_string().contains("unknown SCOPE code 0x2"),
            "{refused}"
        );
    }

    #[test]
    fn only_the_exclusive_access_types_restrict_reads() {
        let restricting: Vec<u8> = ReservationType::ALL
            .into_iter()
            .filter(|t| t.restricts_reads())
            .map(ReservationType::code)
            .collect();
        assert_eq!(restricting, [3, 6, 8]);
    }

    #[test]
    fn service_action_codes_round_trip() {
        for (i, action) in PrInAction::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(action.code()), i);
            assert_eq!(PrInAction::from_code(action.code()), Some(action));
        }
        for (i, action) in PrOutAction::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(action.code()), i);
            assert_eq!(PrOutAction::from_code(action.code()), Some(action));
        }
        assert_eq!(PrOutAction::ReplaceLostReservation.code(), 8);
        assert_eq!(PrInAction::from_code(4), None);
        assert_eq!(PrOutAction::from_code(9), None);
    }

    #[test]
    fn reservation_type_codes_and_names() {
        let expected = [
            (1, "we", "Write Exclusive"),
            (3, "ea", "Exclusive Access"),
            (5, "we-ro", "Write Exclusive - Registrants Only"),
            (6, "ea-ro", "Exclusive Access - Registrants Only"),
            (7, "we-ar", "Write Exclusive - All Registrants"),
            (8, "ea-ar", "Exclusive Access - All Registrants"),
        ];
        for (rtype, (code, short, long)) in ReservationType::ALL.into_iter().zip(expected) {
            assert_eq!(rtype.code(), code);
            assert_eq!(rtype.short_name(), short);
            assert_eq!(rtype.long_name(), long);
            assert_eq!(rtype.to_string(), long);
            assert_eq!(ReservationType::from_code(code), Some(rtype));
        }
        for code in [0, 2, 4, 9, 15] {
            assert_eq!(ReservationType::from_code(code), None);
        }
    }

    #[test]
    fn reservation_type_parses_names_and_numbers() {
        for rtype in ReservationType::ALL {
            assert_eq!(rtype.short_name().parse(), Ok(rtype));
            assert_eq!(rtype.short_name().to_uppercase().parse(), Ok(rtype));
            assert_eq!(rtype.long_name().parse(), Ok(rtype));
            assert_eq!(rtype.code().to_string().parse(), Ok(rtype));
            assert_eq!(format!("0x{:x}", rtype.code()).parse(), Ok(rtype));
        }
        assert_eq!(
            "write exclusive, registrants only".parse(),
            Ok(ReservationType::WriteExclusiveRegistrantsOnly)
        );
        assert_eq!(
            "EA_AR".parse(),
            Ok(ReservationType::ExclusiveAccessAllRegistrants)
        );
        let err = "we-xx".parse::<ReservationType>().unwrap_err();
        assert_eq!(err.input, "we-xx");
        assert!("2".parse::<ReservationType>().is_err());
        assert!("".parse::<ReservationType>().is_err());
        assert!("0x1ff".parse::<ReservationType>().is_err());
    }

    #[test]
    fn service_actions_parse_names_and_numbers() {
        assert_eq!("read keys".parse(), Ok(PrInAction::ReadKeys));
        assert_eq!("READ_FULL_STATUS".parse(), Ok(PrInAction::ReadFullStatus));
        assert_eq!("2".parse(), Ok(PrInAction::ReportCapabilities));
        assert_eq!(
            "preempt-and-abort".parse(),
            Ok(PrOutAction::PreemptAndAbort)
        );
        assert_eq!(
            "Replace Lost Reservation".parse(),
            Ok(PrOutAction::ReplaceLostReservation)
        );
        assert_eq!("0x07".parse(), Ok(PrOutAction::RegisterAndMove));
        assert!("read".parse::<PrInAction>().is_err());
        assert!("9".parse::<PrOutAction>().is_err());
        assert_eq!(
            PrOutAction::RegisterAndIgnoreExistingKey.to_string(),
            "REGISTER AND IGNORE EXISTING KEY"
        );
        assert_eq!(PrInAction::ReadReservation.to_string(), "READ RESERVATION");
    }

    #[test]
    fn scope_type_packs_scope_high_and_type_low() {
        let packed = ScopeType::new(
            Scope::LogicalUnit,
            Some(ReservationType::ExclusiveAccessAllRegistrants),
        );
        assert_eq!(packed, ScopeType(0x08));
        assert_eq!(
            packed.rtype(),
            Some(ReservationType::ExclusiveAccessAllRegistrants)
        );
        assert_eq!(packed.scope(), Some(Scope::LogicalUnit));
        assert_eq!(ScopeType::new(Scope::LogicalUnit, None), ScopeType(0));
        let odd = ScopeType(0x23);
        assert_eq!((odd.scope_code(), odd.type_code()), (2, 3));
        assert_eq!(odd.scope(), None);
        assert_eq!(odd.rtype(), Some(ReservationType::ExclusiveAccess));
        assert_eq!(Scope::LogicalUnit.to_string(), "LU_SCOPE");
    }

    #[test]
    fn type_semantics_helpers() {
        assert!(!PrOutAction::Register.uses_type());
        assert!(!PrOutAction::Clear.uses_type());
        assert!(PrOutAction::Reserve.uses_type());
        assert!(PrOutAction::ReplaceLostReservation.uses_type());
        assert!(!ReservationType::WriteExclusive.registrants_share());
        assert!(ReservationType::WriteExclusiveRegistrantsOnly.registrants_share());
        assert!(ReservationType::ExclusiveAccessAllRegistrants.all_registrants());
        assert!(!ReservationType::ExclusiveAccessRegistrantsOnly.all_registrants());
    }
}
