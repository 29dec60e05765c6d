//! Answers, path faults and the per-path I/O ([`PathIo`]), and [`execute`]: one command
//! carried over a map's paths by [`crate::fence`] with no memory of earlier ones.
//!
//! The paths are reached through [`PathIo`], so the logic runs against a scripted fake
//! in tests and against the real path devices in [`crate::device`].

use std::sync::atomic::AtomicBool;

use scsi::pr::{PrInAction, PrInCdb, PrOutAction, PrOutCdb, ReadKeys, pr_in_cdb};
use scsi::sense::{Sense, key};
use scsi::sgio::SgIoOutcome;
use scsi::status::Status;

use crate::devnum::DevNum;
use crate::fence::{HostKey, MapMemory, NexusId, Run, in_parallel, send_once};
use crate::map::MapPaths;
use crate::plan::{KeyChange, RememberedKey};

/// Sense bytes carried in an answer (the helper protocol's size).
pub const SENSE_LEN: usize = 96;

/// How often a command is sent again on a path that answered UNIT ATTENTION. A device
/// reports one pending unit attention per command; a few cover a preemption, a reset
/// and a path coming back, and the bound keeps a misbehaving device from looping us.
pub const UNIT_ATTENTION_RETRIES: u32 = 4;

/// The sense sent when the map has no usable path: ABORTED COMMAND, LOGICAL UNIT
/// COMMUNICATION FAILURE (0B/08/00), what a disk whose every port is down reports.
pub const NO_PATH_SENSE: Sense = Sense::LUN_COMM_FAILURE;

/// An answer to a command: what a device (or we) said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// SCSI status.
    pub status: Status,
    /// Sense bytes, zero-padded.
    pub sense: [u8; SENSE_LEN],
    /// PR IN payload (GOOD only).
    pub data: Vec<u8>,
}

impl Answer {
    /// GOOD with a payload.
    pub fn good(data: Vec<u8>) -> Self {
        Self {
            status: Status::GOOD,
            sense: [0; SENSE_LEN],
            data,
        }
    }

    /// CHECK CONDITION with fixed-format `sense`.
    pub fn check_condition(sense: Sense) -> Self {
        let mut bytes = [0; SENSE_LEN];
        sense.write_fixed(&mut bytes);
        Self {
            status: Status::CHECK_CONDITION,
            sense: bytes,
            data: Vec::new(),
        }
    }

    /// A status without sense.
    pub fn plain(status: Status) -> Self {
        Self {
            status,
            sense: [0; SENSE_LEN],
            data: Vec::new(),
        }
    }

    /// The parsed sense of a CHECK CONDITION.
    pub fn sense_code(&self) -> Option<Sense> {
        (self.status == Status::CHECK_CONDITION).then(|| Sense::parse(&self.sense))
    }

    /// CHECK CONDITION with sense key UNIT ATTENTION.
    pub fn is_unit_attention(&self) -> bool {
        self.sense_code()
            .is_some_and(|s| s.key == key::UNIT_ATTENTION)
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.status.name(), self.sense_code()) {
            (_, Some(sense)) => write!(f, "CHECK CONDITION {sense}"),
            (Some(name), None) => f.write_str(name),
            (None, None) => write!(f, "status 0x{:02x}", self.status.as_u8()),
        }
    }
}

/// Why a path did not carry a command to the device: the only reason to try another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The ioctl failed with this errno (the device is gone, the path is down).
    Errno(i32),
    /// The host adapter reported this host status (no connection, reset, ...).
    HostStatus(u16),
    /// The command timed out in the driver.
    Timeout,
    /// The path's device node could not be opened or is not the path's device.
    Unreachable(String),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Errno(errno) => write!(
                f,
                "SG_IO failed: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
            Fault::HostStatus(host) => write!(f, "host status 0x{host:02x}"),
            Fault::Timeout => f.write_str("timed out"),
            Fault::Unreachable(why) => f.write_str(why),
        }
    }
}

/// The transport failure an SG_IO outcome shows, if any; `None` when the device
/// answered (whatever it answered) or nothing was sent.
pub fn fault_of(outcome: Option<&SgIoOutcome>) -> Option<Fault> {
    let outcome = outcome?;
    if let Some(errno) = outcome.errno.filter(|&e| e != 0) {
        return Some(Fault::Errno(errno));
    }
    if outcome.host_status != scsi::sgio::host::DID_OK {
        return Some(Fault::HostStatus(outcome.host_status));
    }
    if outcome.driver_status & scsi::sgio::driver::DRIVER_STATUS_MASK
        == scsi::sgio::driver::DRIVER_TIMEOUT
    {
        return Some(Fault::Timeout);
    }
    None
}

/// What one path did with one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathReply {
    /// The answer (for a transport failure, the one the daemon would give for it).
    pub answer: Answer,
    /// Set when the path failed the command (see [`crate::fence::delivery`] for
    /// whether it may still have reached the device).
    pub fault: Option<Fault>,
}

/// Sends commands through the individual paths of a map. Blocks.
pub trait PathIo: Sync {
    /// Sends one PR IN or PR OUT (`cdb` of the opcode's length or longer) on `path`.
    fn send(&self, path: DevNum, cdb: &[u8], data_out: &[u8]) -> PathReply;

    /// The I_T nexus `path` is (its initiator port's TransportID and the relative
    /// target port), as READ FULL STATUS names it; `None` when it cannot be told.
    fn identity(&self, _path: DevNum) -> Option<NexusId> {
        None
    }

    /// The path came back (its node may be another device now): forget what was
    /// opened or learned about it.
    fn reset(&self, _path: DevNum) {}
}

/// The result of a command on a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// What the guest gets.
    pub answer: Answer,
    /// How the map's remembered key changes.
    pub key: KeyChange,
}

/// Runs `cdb` on the map whose usable paths are `usable` (in the order to try them),
/// as one command with no memory beyond `remembered` (the service keeps a map's
/// memory between commands; see [`crate::fence`]). `map` names the map in log lines.
pub fn execute(
    io: &dyn PathIo,
    map: &str,
    usable: &[DevNum],
    cdb: &[u8],
    data_out: &[u8],
    remembered: Option<RememberedKey>,
) -> Executed {
    let paths = MapPaths::all_usable(usable);
    let mut memory = MapMemory::knowing(remembered);
    let answer = Run::new(io, map, &paths, &mut memory).command(cdb, data_out);
    let key = match memory.key {
        HostKey::Registered(key) if Some(key) != remembered => KeyChange::Remember(key),
        HostKey::Unregistered => KeyChange::Forget,
        _ => KeyChange::Keep,
    };
    Executed { answer, key }
}

/// Registers `key` with REGISTER AND IGNORE EXISTING KEY on `paths`, in parallel.
/// Returns the paths where it failed. One info line per path re-registered or failed.
pub fn register_paths(
    io: &dyn PathIo,
    map: &str,
    paths: &[DevNum],
    key: RememberedKey,
    why: &str,
) -> Vec<DevNum> {
    let (cdb, data) = register_ignore(key.key, key.aptpl);
    let recheck = AtomicBool::new(false);
    let replies = in_parallel(paths, |&path| {
        send_once(io, map, path, &cdb, &data, &recheck)
    });
    let mut failed = Vec::new();
    for (path, reply) in paths.iter().zip(replies) {
        if reply.answer.status == Status::GOOD && reply.fault.is_none() {
            tracing::info!(map, path = %path, key = format_args!("0x{:x}", key.key), why, "path re-registered");
        } else {
            tracing::info!(map, path = %path, answer = %reply.answer, fault = ?reply.fault, why, "path re-registration failed");
            failed.push(*path);
        }
    }
    failed
}

/// The CDB and parameter list of REGISTER AND IGNORE EXISTING KEY with `key`.
pub fn register_ignore(key: u64, aptpl: bool) -> ([u8; 10], Vec<u8>) {
    let mut data = vec![0u8; scsi::pr::PARAMETER_LIST_LEN];
    data[8..16].copy_from_slice(&key.to_be_bytes());
    if aptpl {
        data[20] = 0x01;
    }
    let cdb = scsi::pr::pr_out_cdb(
        PrOutAction::RegisterAndIgnoreExistingKey,
        scsi::pr::Scope::LogicalUnit,
        None,
        data.len() as u32,
    );
    (cdb, data)
}

/// READ KEYS through the first path that carries it; `None` if none does or the
/// device refuses it. (Says which keys exist, not which nexus holds them: fencing
/// decisions use READ FULL STATUS.)
pub fn read_keys(io: &dyn PathIo, map: &str, usable: &[DevNum]) -> Option<Vec<u64>> {
    let cdb = pr_in_cdb(PrInAction::ReadKeys, 8192);
    let recheck = AtomicBool::new(false);
    for &path in usable {
        let reply = send_once(io, map, path, &cdb, &[], &recheck);
        if reply.fault.is_some() {
            continue;
        }
        if reply.answer.status != Status::GOOD {
            return None;
        }
        return ReadKeys::decode(&reply.answer.data)
            .ok()
            .map(|decoded| decoded.value.keys);
    }
    None
}

/// "PR OUT REGISTER", "PR IN READ KEYS", ... for log lines.
pub fn command_name(cdb: &[u8]) -> String {
    if let Ok(out) = PrOutCdb::decode(cdb) {
        return format!("PR OUT {}", out.action.name());
    }
    if let Ok(inp) = PrInCdb::decode(cdb) {
        return format!("PR IN {}", inp.action.name());
    }
    format!("opcode 0x{:02x}", cdb.first().copied().unwrap_or(0))
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
