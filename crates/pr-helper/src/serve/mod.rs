//! Serving: the accept loop, connections, shutdown.
//!
//! The request path: the listening socket and every idle connection sit in one epoll
//! set (`hub.rs`). A serving thread woken by a new connection admits it (credentials,
//! allowlist, cap), sends the greeting and puts it back in the set. A thread woken by a
//! readable connection serves it itself (`connection.rs`): it receives the CDB with its
//! descriptor (`recvmsg`, `MSG_CMSG_CLOEXEC`), the connection's [`session`] decodes and
//! validates it, the router in [`crate::backend`] classifies the descriptor and runs
//! the backend (an `SG_IO` ioctl, or the software target), the session encodes the
//! reply and the thread writes it, then closes the descriptor. It goes on with the
//! connection's next requests with plain blocking calls, and puts the connection back
//! in the set once it has been idle for [`IDLE_PARK`].
//!
//! One connection's whole protocol (handshake, request assembly, deadlines, the
//! shutdown drain, close reasons, reply encoding and its fallback, the per-command log
//! line) is the sans-I/O [`session::Session`]; `connection.rs` is the only driver.
//!
//! Shutdown ([`Shutdown`], triggered from the signal handlers): the listening socket
//! closes; every connection's reading side is shut (`shutdown(SHUT_RD)`), so its peer
//! can add nothing and any blocked read returns; each connection answers the command it
//! is executing and the requests already waiting in its socket, then closes with one
//! log line (`daemon shutting down`). An idle connection therefore closes at once.
//! Connections still open when the grace period ends are cut off.
//!
//! Why this model (measured with `scripts/bench.sh`, see the README's performance
//! section): the protocol is one command at a time per connection, so a thread that
//! owns a busy connection and blocks in `recvmsg` does the least work per request that
//! the protocol allows (`recvmsg`, `fstat`, the ioctl, `send`: the yardstick's three
//! calls plus the descriptor check), with no hand-off between threads. Idle connections
//! hold no thread, only their session (a few hundred bytes), so thousands of idle VMs
//! cost little. A hung device holds only the threads of connections whose commands are
//! stuck on it; the others keep being served, up to `blocking_threads` busy connections
//! at once. The previous design (tokio tasks for idle connections, a connection lent to
//! a blocking thread while busy, a pool for queued commands) had three readers of
//! requests and three shutdown signals, and a tokio runtime's threads besides.

mod accept;
mod connection;
mod hub;
mod log;
mod peer;
pub(crate) mod session;
mod shutdown;
mod sys;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::backend::Backends;

pub use peer::Allowlist;
pub use shutdown::Shutdown;

/// How long an idle connection keeps its thread before it goes back to the epoll set.
/// Long against the gap between a closed-loop peer's requests (tens of microseconds),
/// short against how long an idle connection should hold a thread.
pub const IDLE_PARK: Duration = Duration::from_millis(20);

/// Everything [`serve`] needs to know, already validated by the configuration step.
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
    /// Timeout handed to the SG_IO ioctl.
    pub sgio_timeout: Duration,
    /// Whether a partition descriptor may receive SG_IO (it reaches the whole LUN).
    pub allow_partitions: bool,
    /// Whether dm-multipath maps get PR on every path (`--no-multipath` turns it off).
    pub multipath: bool,
    /// Where the emulated target keeps its state; `None` disables the emulated backend.
    pub emulated_state_dir: Option<PathBuf>,
    /// What the emulated target counts as one initiator.
    pub emulated_initiator: crate::backend::emulated::InitiatorRule,
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
            sgio_timeout: Duration::from_secs(30),
            allow_partitions: false,
            multipath: false,
            emulated_state_dir: None,
            emulated_initiator: crate::backend::emulated::InitiatorRule::default(),
        }
    }
}

/// What happened while serving, returned when [`serve`] stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServeSummary {
    /// Connections accepted (including those refused by the cap or the allowlist).
    pub connections_accepted: u64,
    /// Connections closed at once because the cap was reached.
    pub connections_over_cap: u64,
    /// Connections refused by the uid/gid allowlist.
    pub connections_refused: u64,
    /// Commands executed and answered.
    pub commands: u64,
    /// Connections still open when the grace period ran out (dropped by force).
    pub forced_connections: u64,
}

/// Why [`serve`] could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Preparing the backends failed (e.g. the emulated state directory).
    #[error("cannot prepare the backends")]
    Backends(#[source] crate::backend::BackendError),
    /// The epoll set, its eventfds or the first serving thread could not be made.
    #[error("setting up the serving threads failed")]
    Setup(#[source] std::io::Error),
}

/// Serves `listener` with `backends` until `shutdown` is triggered, then drains the
/// connections for at most `settings.shutdown_grace`. Blocks the calling thread.
pub fn serve(
    listener: std::os::unix::net::UnixListener,
    settings: &ServeSettings,
    backends: Arc<Backends>,
    shutdown: Arc<Shutdown>,
) -> Result<ServeSummary, ServeError> {
    let drive = connection::Drive {
        backends,
        shutdown: Arc::clone(&shutdown),
        idle: IDLE_PARK,
        busy_poll: settings.busy_poll,
        commands: AtomicU64::new(0),
    };
    let hub = Arc::new(hub::Hub::new(listener, settings, drive)?);
    hub.start()?;
    shutdown.wait();
    Ok(hub.stop(settings.shutdown_grace))
}
