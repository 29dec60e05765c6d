//! Checks that several tests share: "another client is still served", "the daemon's
//! descriptor count is back to its baseline".

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::{Daemon, cdb, descriptors, fd_count, proc::fd_targets};

/// How long [`wait_for_fd_count`] waits for the daemon to close what it should. It
/// bounds a hang (a leak), it measures nothing: the count usually settles at once.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// Waits until process `pid` has exactly `expected` open descriptors. Connections are
/// closed by the daemon asynchronously, so the count is polled; a leak shows as an
/// error listing the descriptors still open.
pub fn wait_for_fd_count(pid: u32, expected: usize) -> io::Result<()> {
    let started = Instant::now();
    loop {
        let now = fd_count(pid)?;
        if now == expected {
            return Ok(());
        }
        if started.elapsed() > SETTLE_LIMIT {
            return Err(io::Error::other(format!(
                "daemon {pid} has {now} descriptors open, expected {expected}: {:?}",
                fd_targets(pid).unwrap_or_default()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Consecutive equal readings, 50 ms apart, that make a descriptor count stable.
const STABLE_READINGS: u32 = 5;

/// The daemon's descriptor count once it is idle: measured after one client has been
/// served and has left, so lazily created runtime descriptors are already there.
/// The served connection's socket and its descriptor close asynchronously (the
/// descriptor of a regular file on a closer thread), and on a loaded machine the
/// closing threads may wait for a CPU: the count must hold still for
/// [`STABLE_READINGS`] readings.
pub fn idle_fd_baseline(daemon: &Daemon) -> io::Result<usize> {
    expect_served(daemon)?;
    let mut previous = fd_count(daemon.pid())?;
    let mut equal = 0;
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = fd_count(daemon.pid())?;
        equal = if now == previous { equal + 1 } else { 0 };
        if equal >= STABLE_READINGS || started.elapsed() > SETTLE_LIMIT {
            return Ok(now);
        }
        previous = now;
    }
}

/// A fresh client completes the handshake and gets the expected answer to a PR IN on a
/// regular file (CHECK CONDITION, ABORTED COMMAND / I/O PROCESS TERMINATED: no ioctl
/// is sent to a regular file without the emulated backend).
pub fn expect_served(daemon: &Daemon) -> io::Result<()> {
    expect_served_at(daemon.socket())
}

/// [`expect_served`] for a daemon the test started itself, by its socket.
pub fn expect_served_at(socket: &Path) -> io::Result<()> {
    let file = descriptors::regular_file(4096)?;
    expect_served_with(socket, file.as_file().as_fd())
}

/// [`expect_served_at`] with the PR IN sent on `fd`, which must not be a SCSI device
/// (such as `/dev/null`): the answer is the same, and no ioctl is sent.
pub fn expect_served_with(socket: &Path, fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut client = crate::RawClient::connect(socket)?;
    client.handshake()?;
    let response = client.call(&cdb::read_keys(64), fd, &[])?;
    if response.is_check_condition(0x0b, 0x00, 0x06) {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "unexpected answer to a served client: {response:?}"
        )))
    }
}
