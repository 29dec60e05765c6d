//! Carrying one command over a map's paths: the fan-out of registrations with conflict
//! repair, single-path commands with failover on transport failures, the re-registration
//! after a PREEMPT of the map's own key, and the bounded retry after a UNIT ATTENTION.
//!
//! The paths are reached through [`PathIo`], so the logic runs against a scripted fake
//! in tests and against the real path devices in [`crate::device`].

use std::time::{Duration, Instant};

use scsi::pr::{PrInAction, PrInCdb, PrOutAction, PrOutCdb, ReadKeys, pr_in_cdb};
use scsi::sense::{Sense, key};
use scsi::sgio::SgIoOutcome;
use scsi::status::Status;

use crate::devnum::DevNum;
use crate::plan::{KeyChange, Registration, RememberedKey, Route, key_change, route};

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

    fn is_good(&self) -> bool {
        self.status == Status::GOOD
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
    /// Set when the command did not reach the device through this path.
    pub fault: Option<Fault>,
}

/// Sends commands through the individual paths of a map. Blocks.
pub trait PathIo: Sync {
    /// Sends one PR IN or PR OUT (`cdb` of the opcode's length or longer) on `path`.
    fn send(&self, path: DevNum, cdb: &[u8], data_out: &[u8]) -> PathReply;
}

/// The result of a command on a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// What the guest gets.
    pub answer: Answer,
    /// How the map's remembered key changes.
    pub key: KeyChange,
}

/// Runs `cdb` on the map whose usable paths are `usable` (in the order to try them).
/// `map` names the map in log lines.
pub fn execute(
    io: &dyn PathIo,
    map: &str,
    usable: &[DevNum],
    cdb: &[u8],
    data_out: &[u8],
    remembered: Option<RememberedKey>,
) -> Executed {
    if usable.is_empty() {
        tracing::info!(
            map,
            command = command_name(cdb),
            "no usable path: CHECK CONDITION"
        );
        return Executed {
            answer: Answer::check_condition(NO_PATH_SENSE),
            key: KeyChange::Keep,
        };
    }
    let answer = match route(cdb, data_out) {
        Route::EveryPath(registration) => fan_out(io, map, usable, cdb, data_out, registration),
        Route::OnePath { reregister } => {
            let (through, answer) = one_path(io, map, usable, cdb, data_out);
            if let (Some(own), Some(through), true) = (reregister, through, answer.is_good()) {
                let others: Vec<DevNum> =
                    usable.iter().copied().filter(|&p| p != through).collect();
                register_paths(io, map, &others, own, "after PREEMPT of the map's own key");
            }
            answer
        }
    };
    let key = if answer.is_good() {
        key_change(cdb, data_out, remembered)
    } else {
        KeyChange::Keep
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
    let replies = in_parallel(paths, |path| send_retrying(io, map, path, &cdb, &data));
    let mut failed = Vec::new();
    for (path, reply) in paths.iter().zip(replies) {
        if reply.answer.is_good() && reply.fault.is_none() {
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
/// device refuses it.
pub fn read_keys(io: &dyn PathIo, map: &str, usable: &[DevNum]) -> Option<Vec<u64>> {
    let cdb = pr_in_cdb(PrInAction::ReadKeys, 8192);
    let (_, answer) = one_path(io, map, usable, &cdb, &[]);
    if !answer.is_good() {
        return None;
    }
    ReadKeys::decode(&answer.data)
        .ok()
        .map(|decoded| decoded.value.keys)
}

fn fan_out(
    io: &dyn PathIo,
    map: &str,
    usable: &[DevNum],
    cdb: &[u8],
    data_out: &[u8],
    registration: Registration,
) -> Answer {
    let mut replies = in_parallel(usable, |path| send_retrying(io, map, path, cdb, data_out));
    // REGISTER answers RESERVATION CONFLICT on a path whose registration differs from
    // the reservation key sent: it already carries the new key (a repeated command) or
    // an old one (it was away while the key changed). Such a path is brought in line
    // with REGISTER AND IGNORE, but only while the device still holds this host's key:
    // a host that was preempted or cleared must stay fenced.
    let conflicted: Vec<usize> = replies
        .iter()
        .enumerate()
        .filter(|(_, reply)| {
            reply.fault.is_none() && reply.answer.status == Status::RESERVATION_CONFLICT
        })
        .map(|(i, _)| i)
        .collect();
    if !registration.ignore_existing && !conflicted.is_empty() {
        let conflicted_paths: Vec<DevNum> = conflicted.iter().map(|&i| usable[i]).collect();
        let still_ours = registration.service_action_key == 0
            || read_keys(io, map, &conflicted_paths).is_some_and(|keys| {
                keys.contains(&registration.service_action_key)
                    || (registration.reservation_key != 0
                        && keys.contains(&registration.reservation_key))
            });
        if still_ours {
            let mut repair_cdb = cdb.to_vec();
            if let Some(action) = repair_cdb.get_mut(1) {
                *action = (*action & !0x1f) | PrOutAction::RegisterAndIgnoreExistingKey.code();
            }
            let repaired = in_parallel(&conflicted_paths, |path| {
                send_retrying(io, map, path, &repair_cdb, data_out)
            });
            for (&i, reply) in conflicted.iter().zip(repaired) {
                if reply.answer.is_good() && reply.fault.is_none() {
                    tracing::info!(map, path = %usable[i], "path brought in line with REGISTER AND IGNORE EXISTING KEY");
                }
                replies[i] = reply;
            }
        } else {
            tracing::info!(
                map,
                "REGISTER conflicts and the device holds neither key: not repaired"
            );
        }
    }
    let failed: Vec<String> = usable
        .iter()
        .zip(&replies)
        .filter(|(_, reply)| !reply.answer.is_good() || reply.fault.is_some())
        .map(|(path, reply)| match &reply.fault {
            Some(fault) => format!("{path} ({fault})"),
            None => format!("{path} ({})", reply.answer),
        })
        .collect();
    if failed.is_empty() {
        return replies.swap_remove(0).answer;
    }
    tracing::info!(map, command = command_name(cdb), paths = %failed.join(", "), "registration failed on some paths");
    // The most meaningful failure: what a device said (first in path order) before
    // what a broken path produced.
    let device_answer = replies
        .iter()
        .position(|reply| reply.fault.is_none() && !reply.answer.is_good());
    let chosen = device_answer.unwrap_or_else(|| {
        replies
            .iter()
            .position(|reply| reply.fault.is_some())
            .unwrap_or(0)
    });
    replies.swap_remove(chosen).answer
}

/// The command on the first path that carries it to the device; the next path only
/// after a transport failure. Returns the path that answered.
fn one_path(
    io: &dyn PathIo,
    map: &str,
    usable: &[DevNum],
    cdb: &[u8],
    data_out: &[u8],
) -> (Option<DevNum>, Answer) {
    let mut last = None;
    for &path in usable {
        let reply = send_retrying(io, map, path, cdb, data_out);
        match &reply.fault {
            None => return (Some(path), reply.answer),
            Some(fault) => {
                tracing::info!(map, path = %path, command = command_name(cdb), fault = %fault, "path failed, trying the next");
                last = Some(reply.answer);
            }
        }
    }
    (
        None,
        last.unwrap_or_else(|| Answer::check_condition(NO_PATH_SENSE)),
    )
}

/// One command on one path, sent again (a bounded number of times) while the path
/// answers UNIT ATTENTION: the condition is reported once per command and then cleared,
/// so the retry gets the device's real answer.
fn send_retrying(
    io: &dyn PathIo,
    map: &str,
    path: DevNum,
    cdb: &[u8],
    data_out: &[u8],
) -> PathReply {
    let mut attempt = 0;
    loop {
        let started = Instant::now();
        let reply = io.send(path, cdb, data_out);
        log_path_command(map, path, cdb, &reply, started.elapsed());
        if reply.fault.is_none()
            && reply.answer.is_unit_attention()
            && attempt < UNIT_ATTENTION_RETRIES
        {
            attempt += 1;
            continue;
        }
        return reply;
    }
}

fn log_path_command(map: &str, path: DevNum, cdb: &[u8], reply: &PathReply, latency: Duration) {
    match &reply.fault {
        None => {
            tracing::debug!(map, path = %path, command = command_name(cdb), answer = %reply.answer, latency_us = latency.as_micros() as u64, "path command")
        }
        Some(fault) => {
            tracing::debug!(map, path = %path, command = command_name(cdb), fault = %fault, latency_us = latency.as_micros() as u64, "path command")
        }
    }
}

/// `work` for every path, the first on this thread and the others on threads of their
/// own, so that a registration on four paths takes about as long as on one.
fn in_parallel<F>(paths: &[DevNum], work: F) -> Vec<PathReply>
where
    F: Fn(DevNum) -> PathReply + Sync,
{
    match paths {
        [] => Vec::new(),
        [only] => vec![work(*only)],
        [first, rest @ ..] => std::thread::scope(|scope| {
            let work = &work;
            let handles: Vec<_> = rest
                .iter()
                .map(|&path| (path, scope.spawn(move || work(path))))
                .collect();
            let mut replies = vec![work(*first)];
            for (path, handle) in handles {
                replies.push(handle.join().unwrap_or_else(|_| PathReply {
                    answer: Answer::check_condition(Sense::IO_ERROR),
                    fault: Some(Fault::Unreachable(format!(
                        "the thread sending on {path} panicked"
                    ))),
                }));
            }
            replies
        }),
    }
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
