//! Closed-loop load: N connections, one thread each, each sending the next
//! request as soon as the previous reply is read.
//!
//! Two client shapes: every connection sends the same open file (one open of the
//! device for the whole run, as one VM with many queues), or each connection opens
//! the device itself (`--file-per-connection`: many VMs, one helper). The request
//! loop is lean in both: the request is encoded once, the reply read into a fixed
//! buffer and counted by status and sense in a small table; nothing is allocated or
//! formatted per request (the latency vector is reserved up front).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::stats::{self, LatencySummary};
use crate::wire::{Connection, LeanRequest, ReplyHeader, WireError};
use pr_protocol::CDB_SIZE;

/// When the measured phase ends.
#[derive(Debug, Clone, Copy)]
pub enum StopRule {
    /// After this long.
    After(Duration),
    /// After this many requests in total (over all connections).
    Requests(u64),
}

/// One load run against one helper socket.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub socket: PathBuf,
    pub connections: usize,
    pub warmup: Duration,
    pub stop: StopRule,
    pub device: PathBuf,
    pub cdb: [u8; CDB_SIZE],
    /// The helper's process, to charge it the CPU time of the measured phase.
    pub server_pid: Option<u32>,
    /// Each connection opens the device itself instead of all sending one
    /// shared open file.
    pub file_per_connection: bool,
}

/// One run's (round's) own figures, kept apart so that scripts can compare
/// round by round (interleaved rounds see the same noise) and report the
/// median and the worst round.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RoundFigures {
    pub requests: u64,
    pub ops_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Raw outcome of one run.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// Latency of every measured request, in nanoseconds.
    pub latencies_ns: Vec<u64>,
    /// Measured wall time: start of the measured phase to the last reply.
    pub elapsed: Duration,
    /// Replies seen, by status and sense.
    pub replies: BTreeMap<String, u64>,
    /// Measured requests of each connection (shows how fairly the helper
    /// serves its peers).
    pub per_connection: Vec<u64>,
    /// CPU time the helper used during the measured phase, when known.
    pub server_cpu: Option<Duration>,
    /// Each merged run's own figures, in the order they ran.
    pub rounds: Vec<RoundFigures>,
}

impl LoadOutcome {
    /// Adds another run's samples (rounds of the same target).
    pub fn merge(&mut self, other: LoadOutcome) {
        // CPU time is known for the sum only if known for every part.
        let first = self.per_connection.is_empty();
        self.server_cpu = if first {
            other.server_cpu
        } else {
            self.server_cpu
                .zip(other.server_cpu)
                .map(|(total, more)| total + more)
        };
        self.latencies_ns.extend(other.latencies_ns);
        self.elapsed += other.elapsed;
        for (reply, count) in other.replies {
            *self.replies.entry(reply).or_default() += count;
        }
        self.per_connection.extend(other.per_connection);
        self.rounds.extend(other.rounds);
    }
}

/// What stopped a run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot open the descriptor to send, {0}")]
    OpenDevice(PathBuf, #[source] io::Error),
    #[error("connection {index} could not be set up")]
    Setup {
        index: usize,
        #[source]
        source: WireError,
    },
    #[error("connection {index} failed during the run")]
    Request {
        index: usize,
        #[source]
        source: WireError,
    },
    #[error("cannot start a worker thread")]
    Spawn(#[source] io::Error),
    #[error("a worker thread panicked")]
    WorkerPanicked,
}

const WARMING: u8 = 0;
const MEASURING: u8 = 1;
const STOPPED: u8 = 2;

struct Shared {
    phase: AtomicU8,
    /// Requests left in `StopRule::Requests` mode.
    remaining: AtomicU64,
    counted: AtomicBool,
    start_barrier: Barrier,
}

struct WorkerLog {
    latencies_ns: Vec<u64>,
    last_reply: Option<Instant>,
    replies: ReplyCounts,
}

/// Replies counted by what they said: a handful of kinds at most (one per
/// status and sense the helper answers with), so a linear search in a small
/// vector, with no allocation once a kind was seen.
#[derive(Debug, Default)]
struct ReplyCounts {
    kinds: Vec<(ReplyHeader, u64)>,
}

impl ReplyCounts {
    fn count(&mut self, reply: ReplyHeader) {
        match self.kinds.iter_mut().find(|(kind, _)| *kind == reply) {
            Some((_, count)) => *count += 1,
            None => self.kinds.push((reply, 1)),
        }
    }
}

/// Opens the descriptor every request carries: read-write when allowed,
/// else read-only (enough for PR IN).
pub fn open_device(path: &Path) -> Result<File, LoadError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .or_else(|_| File::open(path))
        .map_err(|source| LoadError::OpenDevice(path.to_owned(), source))
}

/// Runs one closed-loop load and returns its samples.
pub fn run(config: &LoadConfig) -> Result<LoadOutcome, LoadError> {
    let request =
        LeanRequest::new(&config.cdb).map_err(|source| LoadError::Setup { index: 0, source })?;
    let request = Arc::new(request);
    let shared_device = Arc::new(open_device(&config.device)?);
    let connections = (0..config.connections)
        .map(|index| {
            let connection = Connection::open(&config.socket)
                .map_err(|source| LoadError::Setup { index, source })?;
            let device = if config.file_per_connection {
                Arc::new(open_device(&config.device)?)
            } else {
                Arc::clone(&shared_device)
            };
            Ok((connection, device))
        })
        .collect::<Result<Vec<_>, LoadError>>()?;

    let (remaining, counted) = match config.stop {
        StopRule::Requests(count) => (count, true),
        StopRule::After(_) => (0, false),
    };
    let shared = Arc::new(Shared {
        phase: AtomicU8::new(WARMING),
        remaining: AtomicU64::new(remaining),
        counted: AtomicBool::new(counted),
        start_barrier: Barrier::new(config.connections + 1),
    });

    let mut workers = Vec::with_capacity(connections.len());
    for (index, (connection, device)) in connections.into_iter().enumerate() {
        let worker_shared = Arc::clone(&shared);
        let request = Arc::clone(&request);
        let handle = thread::Builder::new()
            .name(format!("conn-{index}"))
            .spawn(move || {
                let shared = worker_shared;
                shared.start_barrier.wait();
                let log = drive(connection, &device, &request, &shared);
                if log.is_err() {
                    shared.phase.store(STOPPED, Ordering::Release);
                }
                log.map_err(|source| LoadError::Request { index, source })
            });
        match handle {
            Ok(handle) => workers.push(handle),
            Err(source) => {
                // Release the threads already waiting, then report.
                shared.phase.store(STOPPED, Ordering::Release);
                return Err(LoadError::Spawn(source));
            }
        }
    }

    shared.start_barrier.wait();
    thread::sleep(config.warmup);
    let cpu_before = config.server_pid.and_then(crate::cpu::cpu_time);
    let measure_start = Instant::now();
    shared.phase.store(MEASURING, Ordering::Release);
    if let StopRule::After(duration) = config.stop {
        thread::sleep(duration);
        shared.phase.store(STOPPED, Ordering::Release);
    }

    let mut outcome = LoadOutcome::default();
    let mut last_reply = measure_start;
    let mut first_error = None;
    for worker in workers {
        match worker.join() {
            Ok(Ok(log)) => {
                last_reply = last_reply.max(log.last_reply.unwrap_or(measure_start));
                let count = u64::try_from(log.latencies_ns.len()).unwrap_or(u64::MAX);
                outcome.per_connection.push(count);
                outcome.latencies_ns.extend(log.latencies_ns);
                for (reply, count) in log.replies.kinds {
                    *outcome.replies.entry(describe(&reply)).or_default() += count;
                }
            }
            Ok(Err(error)) => {
                first_error.get_or_insert(error);
            }
            Err(_) => {
                first_error.get_or_insert(LoadError::WorkerPanicked);
            }
        }
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    let cpu_after = config.server_pid.and_then(crate::cpu::cpu_time);
    outcome.server_cpu = cpu_before
        .zip(cpu_after)
        .map(|(before, after)| after.saturating_sub(before));
    outcome.elapsed = last_reply.saturating_duration_since(measure_start);
    outcome.rounds.push(round_figures(&outcome));
    Ok(outcome)
}

/// The figures of one run.
fn round_figures(outcome: &LoadOutcome) -> RoundFigures {
    let mut sorted = outcome.latencies_ns.clone();
    let latency: Option<LatencySummary> = stats::summarise(&mut sorted);
    let requests = u64::try_from(sorted.len()).unwrap_or(u64::MAX);
    let seconds = outcome.elapsed.as_secs_f64();
    RoundFigures {
        requests,
        ops_per_sec: if seconds > 0.0 {
            requests as f64 / seconds
        } else {
            0.0
        },
        p50_us: latency.map_or(f64::NAN, |l| l.p50_us),
        p99_us: latency.map_or(f64::NAN, |l| l.p99_us),
    }
}

/// One connection's loop: warm up, then measure until told to stop or the
/// request budget is spent.
fn drive(
    mut connection: Connection,
    device: &File,
    request: &LeanRequest,
    shared: &Shared,
) -> Result<WorkerLog, WireError> {
    let mut log = WorkerLog {
        // Room for a long round at full speed, so the vector does not grow
        // (and copy) while measuring.
        latencies_ns: Vec::with_capacity(1 << 18),
        last_reply: None,
        replies: ReplyCounts {
            kinds: Vec::with_capacity(4),
        },
    };
    let fd = device.as_fd();
    loop {
        let phase = shared.phase.load(Ordering::Acquire);
        if phase == STOPPED {
            break;
        }
        let measured = phase == MEASURING;
        if measured && shared.counted.load(Ordering::Relaxed) && !take_one(&shared.remaining) {
            break;
        }
        let start = Instant::now();
        let reply = connection.call_lean(request, fd)?;
        let end = Instant::now();
        if measured {
            let ns = end.saturating_duration_since(start).as_nanos();
            log.latencies_ns.push(u64::try_from(ns).unwrap_or(u64::MAX));
            log.last_reply = Some(end);
            log.replies.count(reply);
        }
    }
    Ok(log)
}

/// Takes one request from the shared budget; false when it is spent.
fn take_one(remaining: &AtomicU64) -> bool {
    remaining
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
            left.checked_sub(1)
        })
        .is_ok()
}

/// "GOOD, 8 bytes" or "status 0x02, sense 0B/00/06".
fn describe(reply: &ReplyHeader) -> String {
    if reply.status == 0 {
        format!("GOOD, {} bytes", reply.size)
    } else {
        let [key, asc, ascq] = reply.sense;
        format!(
            "status 0x{:02X}, sense {key:02X}/{asc:02X}/{ascq:02X}",
            reply.status
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_runs_out_exactly() {
        let remaining = AtomicU64::new(2);
        assert!(take_one(&remaining));
        assert!(take_one(&remaining));
        assert!(!take_one(&remaining));
        assert_eq!(remaining.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn replies_are_counted_by_kind_without_growing() {
        let check = ReplyHeader {
            status: 2,
            size: 0,
            sense: [0x05, 0x24, 0x00],
        };
        let good = ReplyHeader {
            status: 0,
            size: 8,
            sense: [0; 3],
        };
        let mut counts = ReplyCounts::default();
        for _ in 0..1000 {
            counts.count(check);
        }
        counts.count(good);
        counts.count(check);
        assert_eq!(counts.kinds, vec![(check, 1001), (good, 1)]);
    }

    #[test]
    fn replies_are_described_by_status_and_sense() {
        let check = ReplyHeader {
            status: 2,
            size: 0,
            sense: [0x0B, 0x00, 0x06],
        };
        assert_eq!(describe(&check), "status 0x02, sense 0B/00/06");
        let good = ReplyHeader {
            status: 0,
            size: 8,
            sense: [0; 3],
        };
        assert_eq!(describe(&good), "GOOD, 8 bytes");
    }
}
