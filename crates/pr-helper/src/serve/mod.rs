//! Accept loop and connection tasks.
//!
//! [`serve`] owns a listening socket until the shutdown handle fires. Each accepted
//! connection becomes one tokio task (`connection.rs`): while a connection is idle it
//! costs only that task (about 2-3 KiB), and the I/O threads never block.
//!
//! A command that needs a blocking call (SG_IO, the emulated target) normally moves the
//! whole connection to a blocking thread of its own (`affine.rs`): that thread runs the
//! command, writes the response and keeps serving the connection's next requests with
//! plain blocking calls, until the connection has been idle for 20 ms; then the task
//! takes the socket back. Only when no seat (`blocking_threads`
//! of them) or no free device or pool slot is available at once does a command go the
//! queued way: it waits for its device's slot and a pool slot (`pool.rs`), holding no
//! thread, and runs with `spawn_blocking` while the task waits. Either way at most
//! `blocking_threads` backend calls run at once and at most four per device, so a hung
//! device holds only the threads of the connections whose commands are stuck on it.
//!
//! Shutdown (the handle fires; the start-up code wires SIGTERM, SIGINT and SIGHUP to
//! it): the listening socket closes at once, and each connection, wherever it is served,
//! (a) finishes and answers the command it is executing, (b) answers the requests that
//! are already in its socket when it notices the shutdown: it notes how many bytes are
//! waiting then and reads only those, without waiting for more; a request not complete
//! within them is dropped and its descriptor closed, and (c) closes, with the usual
//! single log line (`daemon shutting down`). An idle connection therefore closes at
//! once, and so does one still in its handshake. A connection's own thread polls its
//! socket together with a shutdown eventfd
//! ([`ShutdownBell`]), so it notices while waiting, not only at its next request; the
//! start-up code rings that bell straight from the signal handlers, so busy connections
//! stop taking requests from the signal on rather than once the runtime has woken up
//! to it. Nothing the peer sends later is read, so a peer that keeps sending cannot
//! keep its connection open (`drain.rs`). Connections still open when the grace period
//! ends are dropped.
//!
//! Why: in a closed loop every cross-thread hand-off is a futex wake-up and a context
//! switch, and on the 2-core development machine the load generator shares the cores.
//! `scripts/bench.sh` (loop device, `BENCH_DURATION=4 BENCH_ROUNDS=3`, three runs, medians),
//! ours against qemu-pr-helper at 4 / 16 connections:
//!
//! | serving design | throughput | p99 | daemon CPU per request |
//! |---|---|---|---|
//! | SG_IO sent from a pool thread per request, sysfs lookups per request | 0.64-0.81x / 0.65-0.74x | 1.1-1.2x / 0.7-0.9x | 32-41 us (qemu-pr-helper 18-24 us) |
//! | busy connection on its own thread, classifications cached | 2.26x / 2.20x | 0.39x / 0.41x | 11-12 us (qemu-pr-helper 20-26 us) |
//!
//! (single runs ranged 1.83-2.60x / 2.09-2.23x: the machine is shared.) Idle RSS stays
//! 4.5-4.7 MiB (qemu-pr-helper: 6.4 MiB) and 2.9 KiB per idle connection (9.5 KiB).
//! What remains is kernel time: one sleep and wake-up per request, `recvmsg` (which
//! also wakes the load generator's blocked reader), `sendto`, `fstat`, the ioctl.

mod accept;
mod affine;
mod connection;
mod drain;
mod peer;
mod pool;
mod recv;
mod sys;
#[cfg(all(test, feature = "test-hooks"))]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;

use crate::backend::{BackendError, Backends};

pub use drain::Bell as ShutdownBell;
pub use peer::Allowlist;

/// The handle that tells [`serve`] to stop: send `true` (or drop the sender).
///
/// The start-up code wires SIGTERM, SIGINT and SIGHUP to the sending half.
pub type ShutdownSignal = tokio::sync::watch::Receiver<bool>;

/// Creates a shutdown handle pair: keep the sender, give the receiver to [`serve`].
pub fn shutdown_channel() -> (tokio::sync::watch::Sender<bool>, ShutdownSignal) {
    tokio::sync::watch::channel(false)
}

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
    /// Backend calls that may block at once (size of the blocking pool).
    pub blocking_threads: usize,
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
    Backends(#[source] BackendError),
    /// The eventfd that wakes connection threads at shutdown could not be made.
    #[error("creating the shutdown eventfd failed")]
    ShutdownBell(#[source] std::io::Error),
    /// `accept` failed with an error that retrying cannot fix.
    #[error("accepting a connection failed")]
    Accept(#[source] std::io::Error),
}

/// Serves `listener` until `shutdown` fires, then drains in-flight commands for at most
/// `settings.shutdown_grace`.
///
/// Must run inside a multi-threaded tokio runtime (blocking backend calls use
/// `spawn_blocking`).
pub async fn serve(
    listener: UnixListener,
    settings: ServeSettings,
    shutdown: ShutdownSignal,
) -> Result<ServeSummary, ServeError> {
    let backends = Backends::new(&settings).map_err(ServeError::Backends)?;
    serve_with_backends(listener, settings, backends, shutdown).await
}

/// [`serve`] with backends the caller prepared (tests use it to inject latency).
pub async fn serve_with_backends(
    listener: UnixListener,
    settings: ServeSettings,
    backends: Backends,
    shutdown: ShutdownSignal,
) -> Result<ServeSummary, ServeError> {
    let bell = drain::Bell::new().map_err(ServeError::ShutdownBell)?;
    serve_with_bell(listener, settings, backends, shutdown, Arc::new(bell)).await
}

/// [`serve_with_backends`] with a bell the caller may also ring early, e.g. straight
/// from a signal handler ([`ShutdownBell::ring_on_signals`]). A rung bell counts as a
/// shutdown request for the connections; the accept loop stops on `shutdown`, which
/// must fire too.
pub async fn serve_with_bell(
    listener: UnixListener,
    settings: ServeSettings,
    backends: Backends,
    shutdown: ShutdownSignal,
    bell: Arc<ShutdownBell>,
) -> Result<ServeSummary, ServeError> {
    let context = Arc::new(connection::Context::new(backends, &settings, bell));
    accept::run(listener, context, &settings, shutdown).await
}
