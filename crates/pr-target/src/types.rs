//! Reservation types and the access each one leaves to whom.

use serde::{Deserialize, Serialize};

/// A persistent reservation type (the TYPE field of PR OUT and READ RESERVATION).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReservationType {
    /// 1h: only the holder writes; everyone reads.
    WriteExclusive,
    /// 3h: only the holder reads or writes.
    ExclusiveAccess,
    /// 5h: registrants write; everyone reads.
    WriteExclusiveRegistrantsOnly,
    /// 6h: only registrants read or write.
    ExclusiveAccessRegistrantsOnly,
    /// 7h: like 5h, and every registrant is a holder.
    WriteExclusiveAllRegistrants,
    /// 8h: like 6h, and every registrant is a holder.
    ExclusiveAccessAllRegistrants,
}

impl ReservationType {
    /// The type for a TYPE field value; `None` for obsolete or reserved values.
    pub fn from_code(code: u8) -> Option<ReservationType> {
        Some(match code {
            0x1 => ReservationType::WriteExclusive,
            0x3 => ReservationType::ExclusiveAccess,
            0x5 => ReservationType::WriteExclusiveRegistrantsOnly,
            0x6 => ReservationType::ExclusiveAccessRegistrantsOnly,
            0x7 => ReservationType::WriteExclusiveAllRegistrants,
            0x8 => ReservationType::ExclusiveAccessAllRegistrants,
            _ => return None,
        })
    }

    /// The TYPE field value.
    pub fn code(self) -> u8 {
        match self {
            ReservationType::WriteExclusive => 0x1,
            ReservationType::ExclusiveAccess => 0x3,
            ReservationType::WriteExclusiveRegistrantsOnly => 0x5,
            ReservationType::ExclusiveAccessRegistrantsOnly => 0x6,
            ReservationType::WriteExclusiveAllRegistrants => 0x7,
            ReservationType::ExclusiveAccessAllRegistrants => 0x8,
        }
    }

    /// Every registered I_T nexus is a holder of this reservation.
    pub fn is_all_registrants(self) -> bool {
        matches!(
            self,
            ReservationType::WriteExclusiveAllRegistrants
                | ReservationType::ExclusiveAccessAllRegistrants
        )
    }

    /// Registered I_T nexuses that are not holders still get access.
    pub fn admits_registrants(self) -> bool {
        !matches!(
            self,
            ReservationType::WriteExclusive | ReservationType::ExclusiveAccess
        )
    }

    /// Reads are restricted too, not only writes.
    pub fn restricts_reads(self) -> bool {
        matches!(
            self,
            ReservationType::ExclusiveAccess
                | ReservationType::ExclusiveAccessRegistrantsOnly
                | ReservationType::ExclusiveAccessAllRegistrants
        )
    }
}

/// The SCOPE field value for a logical-unit reservation (the only scope SPC-4 keeps).
pub const SCOPE_LU: u8 = 0x0;

/// The kind of medium access a command makes, for the conflict question.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// READ and other commands that only read the medium.
    Read,
    /// WRITE and other commands that change the medium.
    Write,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_codes_round_trip_and_reserved_codes_are_refused() {
        for code in 0..16u8 {
            match ReservationType::from_code(code) {
                Some(t) => assert_eq!(t.code(), code),
                None => assert!(![1, 3, 5, 6, 7, 8].contains(&code)),
            }
        }
    }
}
