//! Idle connections: open M negotiated connections, hold them, and read
//! the helper's resident set size before and after.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::Duration;

use serde::Serialize;

use crate::wire::{Connection, WireError};

/// What holding idle connections cost the helper.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct IdleReport {
    pub connections: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// (after − before) / connections, in bytes; negative if RSS shrank.
    pub rss_per_connection_bytes: f64,
}

/// What stopped the idle measurement.
#[derive(Debug, thiserror::Error)]
pub enum IdleError {
    #[error("cannot read VmRSS of process {0}")]
    Rss(u32),
    #[error("idle connection {index} could not be set up")]
    Connect {
        index: usize,
        #[source]
        source: WireError,
    },
}

/// Opens `count` connections to `socket`, waits `settle`, and compares the
/// RSS of process `pid` before and after. Connections close on return.
pub fn measure(
    socket: &Path,
    pid: u32,
    count: usize,
    settle: Duration,
) -> Result<IdleReport, IdleError> {
    thread::sleep(settle);
    let before = rss_kib(pid).ok_or(IdleError::Rss(pid))?;
    let mut held = Vec::with_capacity(count);
    for index in 0..count {
        held.push(Connection::open(socket).map_err(|source| IdleError::Connect { index, source })?);
    }
    thread::sleep(settle);
    let after = rss_kib(pid).ok_or(IdleError::Rss(pid))?;
    drop(held);
    let delta_bytes = (after as f64 - before as f64) * 1024.0;
    Ok(IdleReport {
        connections: count,
        rss_before_kib: before,
        rss_after_kib: after,
        rss_per_connection_bytes: delta_bytes / count.max(1) as f64,
    })
}

/// `VmRSS` of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_line_is_found_and_parsed() {
        let status = "Name:\tx\nVmPeak:\t  10 kB\nVmRSS:\t    6524 kB\nThreads:\t2\n";
        assert_eq!(parse_vm_rss(status), Some(6524));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn own_rss_is_readable() {
        assert!(rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }
}
