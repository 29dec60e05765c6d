//! What [`serve`](super::serve) is given, returns, and fails with.

use std::time::Duration;

/// Everything [`serve`](super::serve) needs to know, already validated by the configuration step.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Connections served at once; a connection beyond it is closed at once.
    pub max_connections: usize,
    /// Time a peer has, from connecting, to send its requested-features word.
    pub handshake_timeout: Duration,
    /// Time a peer has, from the first byte of a request, to send all of it; also the
    /// time it has to take a response off the socket.
    pub request_timeout: Duration,
    /// After shutdown is requested, how long in-flight commands may still run.
    pub shutdown_grace: Duration,
    /// Peers whose uid is not listed are refused (`None`: any uid).
    pub allowed_uids: Option<Vec<u32>>,
    /// Peers whose gid is not listed are refused (`None`: any gid).
    pub allowed_gids: Option<Vec<u32>>,
    /// Busy connections served at once, each on a thread of its own.
    pub blocking_threads: usize,
    /// After a reply, how long a connection's thread polls for the next request
    /// before it blocks (only while the peer has been answering that fast; 0: never).
    pub busy_poll: Duration,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            allowed_uids: None,
            allowed_gids: None,
            blocking_threads: 64,
            busy_poll: Duration::ZERO,
        }
    }
}

/// What happened while serving, returned when [`serve`](super::serve) stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServeSummary {
    /// Connections accepted (including those refused by the cap or the allowlist).
    pub connections_accepted: u64,
    /// Connections closed at once because the cap was reached.
    pub connections_over_cap: u64,
    /// Connections refused by the uid/gid allowlist.
    pub connections_refused: u64,
    /// Commands executed and answered (on connections cut off after the grace
    /// period, those answered before their last turn on a thread).
    pub commands: u64,
    /// Connections still open when the grace period ran out (dropped by force).
    pub forced_connections: u64,
}

/// Why [`serve`](super::serve) could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Preparing the backends failed (e.g. the emulated state directory).
    #[error("cannot prepare the backends")]
    Backends(#[source] crate::backend::BackendError),
    /// The epoll set, its eventfds or the first serving thread could not be made.
    #[error("setting up the serving threads failed")]
    Setup(#[source] std::io::Error),
}
