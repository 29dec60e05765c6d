//! SCSI status codes (SAM-5), the byte a logical unit returns when a command completes.

use std::fmt;

/// One SCSI status byte. A newtype rather than an enum so that any byte a device
/// returns can be carried through unchanged, named or not.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct Status(pub u8);

impl Status {
    pub const GOOD: Status = Status(0x00);
    pub const CHECK_CONDITION: Status = Status(0x02);
    pub const CONDITION_MET: Status = Status(0x04);
    pub const BUSY: Status = Status(0x08);
    /// Obsolete in SAM-4 and later, still seen from old devices.
    pub const INTERMEDIATE: Status = Status(0x10);
    /// Obsolete in SAM-4 and later, still seen from old devices.
    pub const INTERMEDIATE_CONDITION_MET: Status = Status(0x14);
    pub const RESERVATION_CONFLICT: Status = Status(0x18);
    /// Obsolete (was COMMAND TERMINATED).
    pub const COMMAND_TERMINATED: Status = Status(0x22);
    pub const TASK_SET_FULL: Status = Status(0x28);
    pub const ACA_ACTIVE: Status = Status(0x30);
    pub const TASK_ABORTED: Status = Status(0x40);

    /// The raw status byte.
    pub const fn as_u8(self) -> u8 {
        self.0
    }

    /// True for GOOD and CONDITION MET, the two statuses that mean success.
    pub const fn is_success(self) -> bool {
        matches!(self.0, 0x00 | 0x04)
    }

    /// The standard name of the status, `None` for reserved values.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x00 => "GOOD",
            0x02 => "CHECK CONDITION",
            0x04 => "CONDITION MET",
            0x08 => "BUSY",
            0x10 => "INTERMEDIATE",
            0x14 => "INTERMEDIATE-CONDITION MET",
            0x18 => "RESERVATION CONFLICT",
            0x22 => "COMMAND TERMINATED",
            0x28 => "TASK SET FULL",
            0x30 => "ACA ACTIVE",
            0x40 => "TASK ABORTED",
            _ => return None,
        })
    }
}

impl From<u8> for Status {
    fn from(value: u8) -> Self {
        Status(value)
    }
}

impl From<Status> for u8 {
    fn from(value: Status) -> Self {
        value.0
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "STATUS 0x{:02X}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_statuses_have_their_standard_values() {
        assert_eq!(Status::GOOD.as_u8(), 0x00);
        assert_eq!(Status::CHECK_CONDITION.as_u8(), 0x02);
        assert_eq!(Status::CONDITION_MET.as_u8(), 0x04);
        assert_eq!(Status::BUSY.as_u8(), 0x08);
        assert_eq!(Status::RESERVATION_CONFLICT.as_u8(), 0x18);
        assert_eq!(Status::TASK_SET_FULL.as_u8(), 0x28);
        assert_eq!(Status::ACA_ACTIVE.as_u8(), 0x30);
        assert_eq!(Status::TASK_ABORTED.as_u8(), 0x40);
    }

    #[test]
    fn display_names_known_and_shows_hex_for_reserved() {
        assert_eq!(
            Status::RESERVATION_CONFLICT.to_string(),
            "RESERVATION CONFLICT"
        );
        assert_eq!(Status::TASK_SET_FULL.to_string(), "TASK SET FULL");
        assert_eq!(Status(0x7e).to_string(), "STATUS 0x7E");
        assert_eq!(Status(0x7e).name(), None);
    }

    #[test]
    fn success_covers_good_and_condition_met_only() {
        assert!(Status::GOOD.is_success());
        assert!(Status::CONDITION_MET.is_success());
        assert!(!Status::CHECK_CONDITION.is_success());
        assert!(!Status::BUSY.is_success());
    }

    #[test]
    fn converts_to_and_from_u8() {
        assert_eq!(Status::from(0x18), Status::RESERVATION_CONFLICT);
        assert_eq!(u8::from(Status::BUSY), 0x08);
    }
}
