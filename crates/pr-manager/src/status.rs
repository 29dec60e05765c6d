//! Connection status and its subscribers: the library's equivalent of
//! QEMU's `query-pr-managers` and `PR_MANAGER_STATUS_CHANGED`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

/// A change of the client's connection status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusEvent {
    /// A connection to the helper was established (after being down).
    Connected,
    /// A connection to the helper was lost or could not be made.
    Disconnected {
        /// What was observed, in words.
        reason: String,
    },
}

/// Tracks "connected" and fans transitions out to subscribers.
///
/// With a pool, "connected" means: the last thing observed about the helper
/// was a successful connect (or a command on a live connection), not a loss.
#[derive(Debug, Default)]
pub(crate) struct StatusHub {
    connected: AtomicBool,
    subscribers: Mutex<Vec<Sender<StatusEvent>>>,
}

impl StatusHub {
    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub(crate) fn subscribe(&self) -> Receiver<StatusEvent> {
        let (tx, rx) = channel();
        self.lock().push(tx);
        rx
    }

    pub(crate) fn mark_connected(&self) {
        // Hold the lock across the swap so events reach subscribers in the
        // order the transitions happened.
        let mut subs = self.lock();
        if !self.connected.swap(true, Ordering::AcqRel) {
            broadcast(&mut subs, StatusEvent::Connected);
        }
    }

    pub(crate) fn mark_disconnected(&self, reason: impl FnOnce() -> String) {
        let mut subs = self.lock();
        if self.connected.swap(false, Ordering::AcqRel) {
            broadcast(&mut subs, StatusEvent::Disconnected { reason: reason() });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Sender<StatusEvent>>> {
        // A poisoned list of senders is still a valid list.
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn broadcast(subs: &mut Vec<Sender<StatusEvent>>, event: StatusEvent) {
    // Dropped receivers unsubscribe themselves.
    subs.retain(|tx| tx.send(event.clone()).is_ok());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transitions_are_broadcast() {
        let hub = StatusHub::default();
        let rx = hub.subscribe();
        hub.mark_disconnected(|| "never up".into());
        hub.mark_connected();
        hub.mark_connected();
        hub.mark_disconnected(|| "gone".into());
        hub.mark_disconnected(|| "gone again".into());
        let events: Vec<_> = rx.try_iter().collect();
        assert_eq!(
            events,
            vec![
                StatusEvent::Connected,
                StatusEvent::Disconnected {
                    reason: "gone".into()
                }
            ]
        );
        assert!(!hub.is_connected());
    }

    #[test]
    fn dropped_subscribers_are_pruned() {
        let hub = StatusHub::default();
        drop(hub.subscribe());
        let rx = hub.subscribe();
        hub.mark_connected();
        assert_eq!(hub.lock().len(), 1);
        assert_eq!(rx.try_recv(), Ok(StatusEvent::Connected));
    }
}
