//! Who is who: the logical unit behind a descriptor and the initiator behind a peer.

use std::os::fd::BorrowedFd;

use pr_target::Initiator;

use super::EmulatedError;
use crate::backend::PeerInfo;

/// A logical unit: the image file's device and inode numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct UnitId {
    pub dev: u64,
    pub ino: u64,
}

impl UnitId {
    pub fn of(fd: BorrowedFd<'_>) -> Result<Self, EmulatedError> {
        let stat = rustix::fs::fstat(fd).map_err(|e| EmulatedError::Fstat(e.into()))?;
        Ok(Self {
            dev: stat.st_dev,
            ino: stat.st_ino,
        })
    }

    /// The state file name of this unit.
    pub fn file_name(self) -> String {
        format!("lu-{}-{}.json", self.dev, self.ino)
    }

    /// The unit a state file name stands for.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("lu-")?.strip_suffix(".json")?;
        let (dev, ino) = rest.split_once('-')?;
        Some(Self {
            dev: dev.parse().ok()?,
            ino: ino.parse().ok()?,
        })
    }
}

/// The initiator port of a peer process: an iSCSI-style name made of its pid and start
/// time, `iqn.2026-11.invalid.pr-helper:pid-PID.start-TICKS`.
///
/// The start time (clock ticks after boot, field 22 of `/proc/PID/stat`) tells apart two
/// processes that got the same pid. If the process is already gone the start time reads
/// as 0; its commands then run for an initiator no live process can be again.
pub fn initiator_of(peer: &PeerInfo) -> Initiator {
    let start = process_start_ticks(peer.pid).unwrap_or(0);
    Initiator::iscsi(&format!(
        "iqn.2026-11.invalid.pr-helper:pid-{}.start-{start}",
        peer.pid
    ))
}

fn process_start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_ticks(&stat)
}

/// Field 22 of `/proc/PID/stat`; the command name (field 2) may hold spaces and
/// parentheses, so count from the last `)`.
fn parse_start_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields after the name start at field 3 (state); field 22 is the 20th of them.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat =
            "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        assert_eq!(parse_start_ticks(stat), Some(987_654));
    }

    #[test]
    fn own_process_has_a_start_time_and_a_stable_initiator() {
        let peer = PeerInfo {
            pid: i32::try_from(std::process::id()).unwrap(),
            uid: 0,
            gid: 0,
        };
        assert!(process_start_ticks(peer.pid).is_some());
        assert_eq!(initiator_of(&peer), initiator_of(&peer));
    }

    #[test]
    fn different_pids_are_different_initiators() {
        let a = PeerInfo {
            pid: 1,
            uid: 0,
            gid: 0,
        };
        let b = PeerInfo {
            pid: 2,
            uid: 0,
            gid: 0,
        };
        assert_ne!(initiator_of(&a), initiator_of(&b));
    }

    #[test]
    fn unit_file_names_round_trip_and_foreign_names_are_ignored() {
        let id = UnitId { dev: 2049, ino: 77 };
        assert_eq!(UnitId::from_file_name(&id.file_name()), Some(id));
        assert_eq!(UnitId::from_file_name("lock"), None);
        assert_eq!(UnitId::from_file_name("lu-1-2.json.tmp"), None);
    }
}
