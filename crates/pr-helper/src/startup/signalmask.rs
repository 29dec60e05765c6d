//! Holding the termination signals pending during start-up.

use std::io;

use nix::sys::signal::{SigSet, Signal};

/// The signals that ask the daemon to stop.
const TERMINATION_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// Blocks (holds pending) or unblocks the termination signals for the
/// calling thread; threads created afterwards inherit the mask. Start-up
/// blocks them so that a stop request arriving before the handlers exist
/// is handled as a graceful shutdown once they do, instead of killing the
/// process half-started.
pub fn block_termination_signals(block: bool) -> io::Result<()> {
    let mut set = SigSet::empty();
    for signal in TERMINATION_SIGNALS {
        set.add(signal);
    }
    let changed = if block {
        set.thread_block()
    } else {
        set.thread_unblock()
    };
    changed.map_err(io::Error::from)
}

/// Blocks `signals` on the calling thread (the janitor, which never
/// unblocks them: they stay pending and are never delivered).
pub fn block_for_good(signals: &[Signal]) -> io::Result<()> {
    let mut set = SigSet::empty();
    for signal in signals {
        set.add(*signal);
    }
    set.thread_block().map_err(io::Error::from)
}
