//! Who is who: the logical unit behind a descriptor and the initiator behind a peer.

use std::os::fd::BorrowedFd;

use pr_target::TransportId;

use super::EmulatedError;
use crate::backend::PeerInfo;

/// A logical unit: the image file's device and inode numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct UnitId {
    pub dev: u64,
    pub ino: u64,
}

impl UnitId {
    /// The unit of the image behind `fd`, from a `statx` with
    /// `AT_STATX_DONT_SYNC`: device and inode numbers never need a fresh look, and
    /// an image on a FUSE or NFS file system whose server does not answer must not
    /// hold the serving thread (a plain `fstat` would ask that server).
    pub fn of(fd: BorrowedFd<'_>) -> Result<Self, EmulatedError> {
        use rustix::fs::{AtFlags, StatxFlags, makedev, statx};
        let flags = AtFlags::EMPTY_PATH | AtFlags::STATX_DONT_SYNC;
        match statx(fd, c"", flags, StatxFlags::INO) {
            Ok(x) => Ok(Self {
                dev: makedev(x.stx_dev_major, x.stx_dev_minor),
                ino: x.stx_ino,
            }),
            Err(rustix::io::Errno::NOSYS) => {
                let stat = rustix::fs::fstat(fd).map_err(|e| EmulatedError::Fstat(e.into()))?;
                Ok(Self {
                    dev: stat.st_dev,
                    ino: stat.st_ino,
                })
            }
            Err(e) => Err(EmulatedError::Fstat(e.into())),
        }
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

/// What the software target counts as one initiator (`--emulated-initiator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InitiatorRule {
    /// Each peer process is an initiator (one QEMU process, one initiator).
    #[default]
    Process,
    /// Each session (`setsid`) is an initiator: all commands run from one shell or
    /// script count as one, as if they came from one host.
    Session,
}

/// The initiator port of a peer under `rule`: an iSCSI-style name made of a pid and
/// that process's start time, `iqn.2026-11.invalid.pr-helper:pid-PID.start-TICKS` for
/// [`InitiatorRule::Process`], `...:sid-SID.start-TICKS` (the session leader) for
/// [`InitiatorRule::Session`].
///
/// The start time (clock ticks after boot, field 22 of `/proc/PID/stat`) tells apart two
/// processes that got the same pid. If the process is already gone the start time reads
/// as 0; its commands then run for an initiator no live process can be again.
pub fn initiator_of(peer: &PeerInfo, rule: InitiatorRule) -> TransportId {
    let (label, pid) = match rule {
        InitiatorRule::Process => ("pid", peer.pid),
        // A peer already gone has no readable session: fall back to its pid, which no
        // live session can share with a start time of 0.
        InitiatorRule::Session => match process_session(peer.pid) {
            Some(sid) => ("sid", sid),
            None => ("pid", peer.pid),
        },
    };
    let start = process_start_ticks(pid).unwrap_or(0);
    TransportId::iscsi(format!(
        "iqn.2026-11.invalid.pr-helper:{label}-{pid}.start-{start}"
    ))
}

fn process_start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_ticks(&stat)
}

fn process_session(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_session(&stat)
}

/// Field 6 of `/proc/PID/stat` (the session id), counted from the last `)` like
/// [`parse_start_ticks`].
fn parse_session(stat: &str) -> Option<i32> {
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    after_name.split_whitespace().nth(3)?.parse().ok()
}

/// Field 22 of `/proc/PID/stat`; the command name (field 2) may hold spaces and
/// parentheses, so count from the last `)`.
fn parse_start_ticks(stat: &str) -> Option<u64> {
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
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
        assert_eq!(
            initiator_of(&peer, InitiatorRule::Process),
            initiator_of(&peer, InitiatorRule::Process)
        );
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
        assert_ne!(
            initiator_of(&a, InitiatorRule::Process),
            initiator_of(&b, InitiatorRule::Process)
        );
    }

    #[test]
    fn session_id_is_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat =
            "42 (a) b (c)) S 1 40 39 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        assert_eq!(parse_session(stat), Some(39));
    }

    #[test]
    fn processes_of_one_session_are_one_initiator_under_the_session_rule() {
        let me = PeerInfo {
            pid: i32::try_from(std::process::id()).unwrap(),
            uid: 0,
            gid: 0,
        };
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let sibling = PeerInfo {
            pid: i32::try_from(child.id()).unwrap(),
            ..me
        };
        let same = initiator_of(&me, InitiatorRule::Session)
            == initiator_of(&sibling, InitiatorRule::Session);
        let differ_by_process = initiator_of(&me, InitiatorRule::Process)
            != initiator_of(&sibling, InitiatorRule::Process);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(same, "a child in our session is the same initiator");
        assert!(differ_by_process, "but a different process");
    }

    #[test]
    fn unit_file_names_round_trip_and_foreign_names_are_ignored() {
        let id = UnitId { dev: 2049, ino: 77 };
        assert_eq!(UnitId::from_file_name(&id.file_name()), Some(id));
        assert_eq!(UnitId::from_file_name("lock"), None);
        assert_eq!(UnitId::from_file_name("lu-1-2.json.tmp"), None);
    }
}
