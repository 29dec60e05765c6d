//! Waiting on processes started by a test: bounded polling (a hang guard, never a
//! timing assertion), whether a process has exited, and signalling it.

use std::time::{Duration, Instant};

use rustix::process::Signal;

/// How long any wait may take before the test fails instead of hanging. Generous:
/// it bounds a hang, it measures nothing.
pub const HANG_LIMIT: Duration = Duration::from_secs(60);

/// Polls `done` until it holds; panics naming `what` after [`HANG_LIMIT`].
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < HANG_LIMIT, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `pid` is gone or a zombie (exited, not yet reaped), from /proc.
pub fn has_exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// Sends `signal` to `pid`; panics if it cannot (the process is the test's own).
pub fn signal(pid: u32, signal: Signal) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("a positive pid");
    rustix::process::kill_process(pid, signal).expect("signal the process");
}

/// Kills process `pid` with SIGKILL when dropped, unless it has exited: a guard for
/// a process a failing test would otherwise leave running.
#[derive(Debug)]
pub struct KillOnDrop(pub u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Never panics: a drop may run while a failing test already panics.
        if !has_exited(self.0) {
            if let Some(pid) = i32::try_from(self.0)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_seen_to_exit_once_reaped_or_a_zombie() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        wait_until("the child exits", || has_exited(pid));
        child.wait().expect("reap");
        assert!(has_exited(pid));
    }
}
