//! Notices a dead helper while the client is idle: a small thread polls
//! the idle connections for hang-up, so a restart or crash is reported
//! without waiting for the next command (QEMU only notices then).

use std::os::fd::AsFd;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec, poll};

/// An idle connection the watcher may poll.
pub(crate) trait IdleConn: AsFd + Send + Sync {
    /// Identifies the connection across snapshots.
    fn id(&self) -> u64;
}

/// A client whose idle connections are watched.
pub(crate) trait IdleSource: Send + Sync {
    /// The idle connections right now.
    fn idle(&self) -> Vec<Arc<dyn IdleConn>>;
    /// Re-checks the flagged connections under the pool lock, closes the
    /// ones that are still idle and dead, and reports the loss.
    fn reap(&self, flagged: &[u64]);
}

/// Starts the watcher; it exits once the client is dropped.
pub(crate) fn spawn(source: Weak<dyn IdleSource>, interval: Duration) {
    let spawned = thread::Builder::new()
        .name("pr-manager-watch".into())
        .spawn(move || run(&source, interval));
    // Without the thread the client still works; it only loses early notice.
    drop(spawned);
}

fn run(source: &Weak<dyn IdleSource>, interval: Duration) {
    let timeout = Timespec::try_from(interval).unwrap_or(Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    });
    loop {
        // Hold the client only while touching it, so dropping it ends us.
        let Some(client) = source.upgrade() else {
            return;
        };
        let idle = client.idle();
        drop(client);

        let flags = PollFlags::IN | PollFlags::RDHUP;
        let mut fds: Vec<PollFd<'_>> = idle
            .iter()
            .map(|conn| PollFd::from_borrowed_fd(conn.as_fd(), flags))
            .collect();
        let ready = match poll(&mut fds, Some(&timeout)) {
            Ok(n) => n,
            Err(_) => {
                thread::sleep(interval);
                continue;
            }
        };
        if ready == 0 {
            continue;
        }
        let flagged: Vec<u64> = fds
            .iter()
            .zip(&idle)
            .filter(|(fd, _)| !fd.revents().is_empty())
            .map(|(_, conn)| conn.id())
            .collect();
        drop(fds);
        drop(idle);
        let Some(client) = source.upgrade() else {
            return;
        };
        client.reap(&flagged);
    }
}
