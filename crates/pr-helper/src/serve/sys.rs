//! The one `unsafe` call of the serving code: ringing the shutdown bell from a signal
//! handler.

use std::io;
use std::sync::Arc;

use super::drain::Bell;

/// Adds "ring `bell`" to the handler of `signal`, alongside any other registered action
/// (tokio's own handlers use the same registry).
pub(super) fn ring_on_signal(signal: i32, bell: Arc<Bell>) -> io::Result<()> {
    let action = move || bell.ring();
    // SAFETY: the action runs in signal context, so it must be async-signal-safe:
    // `Bell::ring` does one atomic swap and one `write(2)` on an eventfd, takes no lock
    // and allocates nothing. The closure owns an `Arc` of the bell, so the eventfd
    // stays open for as long as the action is registered.
    unsafe { signal_hook_registry::register(signal, action) }.map(drop)
}
