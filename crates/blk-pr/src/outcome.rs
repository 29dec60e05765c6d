//! How a SCSI PR command completed when it was answered by translation: the status,
//! the sense of a CHECK CONDITION and the PR IN data.

use scsi::sense::Sense;
use scsi::status::Status;

/// The answer to one SCSI PERSISTENT RESERVE IN/OUT command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScsiOutcome {
    /// The SCSI status.
    pub status: Status,
    /// The sense, with CHECK CONDITION only.
    pub sense: Option<Sense>,
    /// The PR IN data (GOOD only), already cut to the allocation length.
    pub data: Vec<u8>,
    /// The errno of the ioctl that failed when the command never got an answer from
    /// the device (the status and sense then say so in SCSI terms).
    pub transport_errno: Option<i32>,
}

impl ScsiOutcome {
    /// GOOD with this data-in.
    pub fn good(data: Vec<u8>) -> ScsiOutcome {
        ScsiOutcome {
            status: Status::GOOD,
            sense: None,
            data,
            transport_errno: None,
        }
    }

    /// RESERVATION CONFLICT, no sense.
    pub fn conflict() -> ScsiOutcome {
        ScsiOutcome {
            status: Status::RESERVATION_CONFLICT,
            sense: None,
            data: Vec::new(),
            transport_errno: None,
        }
    }

    /// CHECK CONDITION with this sense.
    pub fn check(sense: Sense) -> ScsiOutcome {
        ScsiOutcome {
            status: Status::CHECK_CONDITION,
            sense: Some(sense),
            data: Vec::new(),
            transport_errno: None,
        }
    }

    /// The ioctl failed with `errno` before the device answered: ABORTED COMMAND, I/O
    /// PROCESS TERMINATED (0B/00/06), what the SG_IO paths answer for a failed ioctl.
    pub fn transport_failure(errno: i32) -> ScsiOutcome {
        ScsiOutcome {
            transport_errno: Some(errno),
            ..ScsiOutcome::check(Sense::IO_PROCESS_TERMINATED)
        }
    }

    /// The sense in fixed format (0x70, 18 bytes), as the SG_IO paths report it.
    pub fn sense_fixed(&self) -> Option<[u8; 18]> {
        self.sense.map(|sense| sense.fixed_bytes())
    }

    /// Whether the command failed on the way to the device rather than being
    /// answered by it.
    pub fn is_transport_failure(&self) -> bool {
        self.transport_errno.is_some()
    }
}

impl From<pr_target::Outcome> for ScsiOutcome {
    fn from(outcome: pr_target::Outcome) -> ScsiOutcome {
        match outcome {
            pr_target::Outcome::Good(data) => ScsiOutcome::good(data),
            pr_target::Outcome::ReservationConflict => ScsiOutcome::conflict(),
            pr_target::Outcome::CheckCondition(sense) => ScsiOutcome::check(sense),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_carry_status_sense_and_data() {
        let conflict = ScsiOutcome::from(pr_target::Outcome::ReservationConflict);
        assert_eq!(conflict.status, Status::RESERVATION_CONFLICT);
        assert_eq!(conflict.sense_fixed(), None);
        let refused = ScsiOutcome::check(Sense::INVALID_FIELD_IN_CDB);
        assert_eq!(refused.sense_fixed().unwrap()[12..14], [0x24, 0x00]);
        let failed = ScsiOutcome::transport_failure(25);
        assert!(failed.is_transport_failure());
        assert_eq!(failed.sense, Some(Sense::IO_PROCESS_TERMINATED));
        assert_eq!(ScsiOutcome::good(vec![1]).data, [1]);
    }
}
