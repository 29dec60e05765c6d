//! The refusals a device server reports: status codes and the sense triples it uses.

use serde::{Deserialize, Serialize};

/// SCSI status GOOD.
pub const STATUS_GOOD: u8 = 0x00;
/// SCSI status CHECK CONDITION.
pub const STATUS_CHECK_CONDITION: u8 = 0x02;
/// SCSI status RESERVATION CONFLICT.
pub const STATUS_RESERVATION_CONFLICT: u8 = 0x18;

/// Sense key, additional sense code and qualifier of a CHECK CONDITION.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sense {
    /// Sense key (e.g. 0x05 ILLEGAL REQUEST).
    pub key: u8,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
}

const ILLEGAL_REQUEST: u8 = 0x05;

impl Sense {
    /// ILLEGAL REQUEST / INVALID FIELD IN CDB.
    pub const INVALID_FIELD_IN_CDB: Sense = Sense::illegal(0x24, 0x00);
    /// ILLEGAL REQUEST / INVALID FIELD IN PARAMETER LIST.
    pub const INVALID_FIELD_IN_PARAMETER_LIST: Sense = Sense::illegal(0x26, 0x00);
    /// ILLEGAL REQUEST / PARAMETER LIST LENGTH ERROR.
    pub const PARAMETER_LIST_LENGTH_ERROR: Sense = Sense::illegal(0x1A, 0x00);
    /// ILLEGAL REQUEST / INVALID RELEASE OF PERSISTENT RESERVATION.
    pub const INVALID_RELEASE_OF_PERSISTENT_RESERVATION: Sense = Sense::illegal(0x26, 0x04);
    /// ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE.
    pub const INVALID_COMMAND_OPERATION_CODE: Sense = Sense::illegal(0x20, 0x00);

    const fn illegal(asc: u8, ascq: u8) -> Sense {
        Sense {
            key: ILLEGAL_REQUEST,
            asc,
            ascq,
        }
    }

    /// Fixed-format sense data (response code 0x70, 18 bytes).
    pub fn fixed_bytes(&self) -> [u8; 18] {
        let mut out = [0u8; 18];
        out[0] = 0x70;
        out[2] = self.key & 0x0F;
        out[7] = 10; // additional sense length: bytes 8..18
        out[12] = self.asc;
        out[13] = self.ascq;
        out
    }
}

impl std::fmt::Display for Sense {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words = match *self {
            Sense::INVALID_FIELD_IN_CDB => "invalid field in CDB",
            Sense::INVALID_FIELD_IN_PARAMETER_LIST => "invalid field in parameter list",
            Sense::PARAMETER_LIST_LENGTH_ERROR => "parameter list length error",
            Sense::INVALID_RELEASE_OF_PERSISTENT_RESERVATION => {
                "invalid release of persistent reservation"
            }
            Sense::INVALID_COMMAND_OPERATION_CODE => "invalid command operation code",
            _ => "sense",
        };
        write!(
            f,
            "{words} ({:02X}/{:02X}/{:02X})",
            self.key, self.asc, self.ascq
        )
    }
}

/// How a command completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// GOOD status, with the data-in payload (empty for PR OUT).
    Good(Vec<u8>),
    /// RESERVATION CONFLICT status, no sense.
    ReservationConflict,
    /// CHECK CONDITION with this sense.
    CheckCondition(Sense),
}

impl Outcome {
    /// The SCSI status byte.
    pub fn status(&self) -> u8 {
        match self {
            Outcome::Good(_) => STATUS_GOOD,
            Outcome::ReservationConflict => STATUS_RESERVATION_CONFLICT,
            Outcome::CheckCondition(_) => STATUS_CHECK_CONDITION,
        }
    }

    /// The sense of a CHECK CONDITION, if any.
    pub fn sense(&self) -> Option<Sense> {
        match self {
            Outcome::CheckCondition(sense) => Some(*sense),
            _ => None,
        }
    }

    /// The data-in payload (empty unless GOOD).
    pub fn data(&self) -> &[u8] {
        match self {
            Outcome::Good(data) => data,
            _ => &[],
        }
    }

    pub(crate) fn good() -> Outcome {
        Outcome::Good(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_sense_places_key_asc_ascq_at_standard_offsets() {
        let bytes = Sense::PARAMETER_LIST_LENGTH_ERROR.fixed_bytes();
        assert_eq!(
            bytes,
            [0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x1A, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn outcome_status_bytes_match_scsi_values() {
        assert_eq!(Outcome::good().status(), 0x00);
        assert_eq!(Outcome::ReservationConflict.status(), 0x18);
        assert_eq!(
            Outcome::CheckCondition(Sense::INVALID_FIELD_IN_CDB).status(),
            0x02
        );
    }
}
