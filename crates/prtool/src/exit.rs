//! Exit codes: one per kind of outcome, documented in the README and in
//! `prtool --help`.

use std::process::ExitCode;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// GOOD (0).
    Success,
    /// Device cannot be opened, payload malformed, ... (1).
    Other,
    /// Bad command line (2, as clap).
    Usage,
    /// RESERVATION CONFLICT (3).
    ReservationConflict,
    /// Any other non-GOOD status: CHECK CONDITION, BUSY, TASK SET FULL (4).
    ScsiError,
    /// Helper unreachable or connection lost (5); the sense is 0B/08/00.
    Transport,
    /// `check`: the device is ready for a cluster's reservations (0).
    Ready,
    /// `check`: it is not; a finding says why (1).
    NotReady,
    /// `check`: it works now, but a finding will break fencing later (2).
    Degraded,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Other => 1,
            Self::Usage => 2,
            Self::ReservationConflict => 3,
            Self::ScsiError => 4,
            Self::Transport => 5,
            Self::Ready => 0,
            Self::NotReady => 1,
            Self::Degraded => 2,
        }
    }

    /// A stable name for JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Other => "other-failure",
            Self::Usage => "usage-error",
            Self::ReservationConflict => "reservation-conflict",
            Self::ScsiError => "scsi-error",
            Self::Transport => "transport-failure",
            Self::Ready => "ready",
            Self::NotReady => "not-ready",
            Self::Degraded => "degraded",
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}
