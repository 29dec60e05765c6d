//! How a command completed: the status a device server returns, with the data-in
//! payload or the sense of a refusal (`scsi`'s vocabulary).

use scsi::sense::Sense;
use scsi::status::Status;

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
        let status = match self {
            Outcome::Good(_) => Status::GOOD,
            Outcome::ReservationConflict => Status::RESERVATION_CONFLICT,
            Outcome::CheckCondition(_) => Status::CHECK_CONDITION,
        };
        status.as_u8()
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
    fn outcome_status_bytes_match_scsi_values() {
        assert_eq!(Outcome::good().status(), 0x00);
        assert_eq!(Outcome::ReservationConflict.status(), 0x18);
        assert_eq!(
            Outcome::CheckCondition(Sense::INVALID_FIELD_IN_CDB).status(),
            0x02
        );
    }

    #[test]
    fn invalid_release_sense_is_illegal_request_26_04_in_fixed_format() {
        let bytes = Sense::INVALID_RELEASE_OF_PERSISTENT_RESERVATION.fixed_bytes();
        assert_eq!(
            bytes,
            [0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x26, 4, 0, 0, 0, 0]
        );
    }
}
