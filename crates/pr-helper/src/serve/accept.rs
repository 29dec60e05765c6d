//! The accept loop: admission (credentials, allowlist, connection cap), back-off when
//! the descriptor table is full, and the graceful drain at shutdown.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::connection::{CloseReason, Connection, Context};
use super::peer::{Allowlist, credentials};
use super::{ServeError, ServeSettings, ServeSummary, ShutdownSignal};
use crate::backend::PeerInfo;

/// First pause after `accept` runs out of descriptors; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between two `accept` attempts while out of descriptors.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How an `accept` error is handled.
#[derive(Debug, PartialEq, Eq)]
enum AcceptFailure {
    /// Out of descriptors or memory: wait, connections will close.
    Exhausted,
    /// The connection died before we took it, or a signal interrupted us: go on.
    Transient,
    /// The listener itself is unusable.
    Fatal,
}

fn classify_accept_error(error: &io::Error) -> AcceptFailure {
    match error.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            AcceptFailure::Exhausted
        }
        Some(
            libc::ECONNABORTED
            | libc::EINTR
            | libc::EAGAIN
            | libc::EPROTO
            | libc::EPERM
            | libc::ENETDOWN
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::ENONET
            | libc::EHOSTUNREACH
            | libc::EOPNOTSUPP
            | libc::ENETUNREACH,
        ) => AcceptFailure::Transient,
        _ if error.kind() == io::ErrorKind::WouldBlock => AcceptFailure::Transient,
        _ => AcceptFailure::Fatal,
    }
}

/// Shortest gap between two log lines for connections refused for the same reason.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Rate limit of one kind of refusal line: a refused peer (or one reconnecting while
/// the cap is reached) must not be able to grow the log by one line per `connect`.
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// `Some(n)` if a line may be written at `now`, `n` being how many were left out
    /// since the previous one; `None` (and one more left out) otherwise.
    fn line_at(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < REFUSAL_LOG_INTERVAL => {
                self.suppressed = self.suppressed.saturating_add(1);
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// The refusal lines the accept loop writes, each limited on its own.
#[derive(Debug, Default)]
struct RefusalLog {
    no_credentials: Throttle,
    not_allowed: Throttle,
    over_cap: Throttle,
}

/// Counters shared between the loop and the connection tasks.
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    over_cap: AtomicU64,
    refused: AtomicU64,
    next_id: AtomicU64,
}

pub(crate) async fn run(
    listener: UnixListener,
    context: Arc<Context>,
    settings: &ServeSettings,
    shutdown: ShutdownSignal,
) -> Result<ServeSummary, ServeError> {
    let allowlist = Allowlist::new(settings.allowed_uids.clone(), settings.allowed_gids.clone());
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let counters = Counters::default();
    let mut refusals = RefusalLog::default();
    let mut tasks = JoinSet::new();
    let mut backoff: Option<Duration> = None;

    let stop = loop {
        if stop_requested(&shutdown) {
            break Ok(());
        }
        let mut stop_watch = shutdown.clone();
        tokio::select! {
            _ = stop_watch.wait_for(|&stop| stop) => break Ok(()),
            // Reap finished connections so the set does not grow without bound.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if backoff.take().is_some() {
                        tracing::info!("accepting connections again");
                    }
                    let admission = Admission {
                        context: &context,
                        allowlist: &allowlist,
                        slots: &slots,
                        counters: &counters,
                        shutdown: &shutdown,
                    };
                    admission.admit(stream, &mut refusals, &mut tasks);
                }
                Err(error) => match classify_accept_error(&error) {
                    AcceptFailure::Transient => continue,
                    AcceptFailure::Fatal => break Err(ServeError::Accept(error)),
                    AcceptFailure::Exhausted => {
                        let pause = match backoff {
                            None => {
                                // One line per episode, not one per attempt.
                                tracing::warn!(
                                    error = %error,
                                    "cannot accept connections (out of descriptors or memory); \
                                     retrying with back-off until some close"
                                );
                                FIRST_BACKOFF
                            }
                            Some(previous) => (previous * 2).min(MAX_BACKOFF),
                        };
                        backoff = Some(pause);
                        let mut stop_watch = shutdown.clone();
                        tokio::select! {
                            _ = stop_watch.wait_for(|&stop| stop) => break Ok(()),
                            _ = tokio::time::sleep(pause) => {}
                        }
                    }
                },
            },
        }
    };
    // Stop accepting: the listening socket closes now; the start-up code removes its path.
    drop(listener);
    if stop.is_ok() {
        // Connections on threads of their own are blocked in `poll`: wake them.
        context.bell.ring();
    }
    let forced = drain(&mut tasks, settings.shutdown_grace).await;
    let summary = ServeSummary {
        connections_accepted: counters.accepted.load(Ordering::Relaxed),
        connections_over_cap: counters.over_cap.load(Ordering::Relaxed),
        connections_refused: counters.refused.load(Ordering::Relaxed),
        commands: context.commands(),
        forced_connections: forced,
    };
    stop.map(|()| summary)
}

fn stop_requested(shutdown: &ShutdownSignal) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

/// What deciding on a new connection looks at.
struct Admission<'a> {
    context: &'a Arc<Context>,
    allowlist: &'a Allowlist,
    slots: &'a Arc<Semaphore>,
    counters: &'a Counters,
    shutdown: &'a ShutdownSignal,
}

impl Admission<'_> {
    /// Decides whether `stream` is served and, if so, starts its task.
    fn admit(&self, stream: UnixStream, refusals: &mut RefusalLog, tasks: &mut JoinSet<()>) {
        let counters = self.counters;
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        let id = counters.next_id.fetch_add(1, Ordering::Relaxed);
        let peer = match credentials(&stream) {
            Ok(peer) => peer,
            Err(error) => {
                if let Some(suppressed) = refusals.no_credentials.line_at(Instant::now()) {
                    tracing::warn!(
                        conn = id,
                        error = %error,
                        suppressed,
                        "connection closed: cannot read peer credentials"
                    );
                }
                return;
            }
        };
        if !self.allowlist.admits(&peer) {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = refusals.not_allowed.line_at(Instant::now()) {
                tracing::warn!(
                    conn = id,
                    peer = %peer,
                    suppressed,
                    "connection refused: peer not in the uid/gid allowlist"
                );
            }
            return;
        }
        let Ok(slot) = Arc::clone(self.slots).try_acquire_owned() else {
            counters.over_cap.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = refusals.over_cap.line_at(Instant::now()) {
                tracing::warn!(
                    conn = id,
                    peer = %peer,
                    suppressed,
                    "connection refused: connection limit reached"
                );
            }
            return;
        };
        tracing::info!(conn = id, peer = %peer, "connection opened");
        let connection = Connection::new(
            Arc::clone(self.context),
            stream,
            peer,
            self.shutdown.clone(),
            id,
        );
        tasks.spawn(async move {
            let reason = connection.run().await;
            log_close(id, &peer, &reason);
            drop(slot);
        });
    }
}

fn log_close(id: u64, peer: &PeerInfo, reason: &CloseReason) {
    if reason.is_peer_fault() {
        tracing::warn!(conn = id, peer = %peer, reason = %reason, "connection closed");
    } else {
        tracing::info!(conn = id, peer = %peer, reason = %reason, "connection closed");
    }
}

/// Waits up to `grace` for the connection tasks to finish (each answers the command it
/// is executing and closes when idle), then drops the rest. Returns how many were dropped.
async fn drain(tasks: &mut JoinSet<()>, grace: Duration) -> u64 {
    if tasks.is_empty() {
        return 0;
    }
    tracing::info!(connections = tasks.len(), grace = ?grace, "draining connections");
    let all_done = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, all_done).await.is_ok() {
        return 0;
    }
    let forced = u64::try_from(tasks.len()).unwrap_or(u64::MAX);
    tracing::warn!(
        connections = forced,
        "grace period over: closing the remaining connections"
    );
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    forced
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_lines_are_limited_and_count_what_they_left_out() {
        let mut throttle = Throttle::default();
        let start = Instant::now();
        assert_eq!(throttle.line_at(start), Some(0));
        for _ in 0..1000 {
            assert_eq!(throttle.line_at(start), None);
        }
        let almost = start + REFUSAL_LOG_INTERVAL - Duration::from_millis(1);
        assert_eq!(throttle.line_at(almost), None);
        let later = start + REFUSAL_LOG_INTERVAL;
        assert_eq!(throttle.line_at(later), Some(1001));
        assert_eq!(throttle.line_at(later), None);
        assert_eq!(throttle.line_at(later + REFUSAL_LOG_INTERVAL * 5), Some(1));
    }

    #[test]
    fn descriptor_exhaustion_backs_off() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            let error = io::Error::from_raw_os_error(errno);
            assert_eq!(classify_accept_error(&error), AcceptFailure::Exhausted);
        }
    }

    #[test]
    fn aborted_connections_are_skipped_and_a_broken_listener_is_fatal() {
        let aborted = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert_eq!(classify_accept_error(&aborted), AcceptFailure::Transient);
        let not_socket = io::Error::from_raw_os_error(libc::ENOTSOCK);
        assert_eq!(classify_accept_error(&not_socket), AcceptFailure::Fatal);
    }
}
