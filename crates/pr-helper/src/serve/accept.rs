//! What accepting needs besides `accept` itself: how its errors are handled (back-off
//! when the descriptor table is full) and the rate limit of refusal log lines.

use std::io;
use std::time::{Duration, Instant};

/// First pause after `accept` runs out of descriptors; doubled up to [`MAX_BACKOFF`].
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between two `accept` attempts while out of descriptors.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How an `accept` error is handled.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AcceptFailure {
    /// Out of descriptors or memory: wait, connections will close.
    Exhausted,
    /// The connection died before we took it, or a signal interrupted us: go on.
    Transient,
    /// The listener itself is unusable.
    Fatal,
}

pub(super) fn classify_accept_error(error: &io::Error) -> AcceptFailure {
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
pub(super) struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// `Some(n)` if a line may be written at `now`, `n` being how many were left out
    /// since the previous one; `None` (and one more left out) otherwise.
    pub(super) fn line_at(&mut self, now: Instant) -> Option<u64> {
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
pub(super) struct RefusalLog {
    pub no_credentials: Throttle,
    pub not_allowed: Throttle,
    pub over_cap: Throttle,
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
