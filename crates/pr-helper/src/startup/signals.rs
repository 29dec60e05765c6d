//! Termination signals: SIGTERM, SIGINT and SIGHUP ask for a graceful shutdown.
//!
//! The handlers trigger the serving code's [`Shutdown`] themselves (an atomic store
//! and a one-byte write, both async-signal-safe), so connections stop taking new
//! requests from the signal on. A second signal changes nothing: the drain already
//! runs, bounded by the grace period.

use crate::serve::Shutdown;

/// The signals that stop the daemon gracefully.
pub const STOP_SIGNALS: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Makes [`STOP_SIGNALS`] trigger `shutdown`.
pub fn stop_on_signals(shutdown: &Shutdown) -> std::io::Result<()> {
    shutdown.trigger_on_signals(&STOP_SIGNALS)
}
