//! Descriptors peers send, and how they are closed without holding a serving thread.
//!
//! `close` of a descriptor runs its file's `flush` on the calling thread, every time
//! (not only for the last reference): for a file of a FUSE file system that is a
//! FLUSH request to the file system's server, for NFS a write-back, and either can
//! wait forever on a server that does not answer. A peer may send any descriptor, so
//! a [`PeerFd`] closes on the serving thread only a device node (block or character
//! device: its driver has no `flush` to wait on, and its release runs only with the
//! last reference, which a client such as QEMU keeps). Every other descriptor goes
//! to a closer thread. The check is the router's classification when the command was
//! routed, or else one `statx` with `AT_STATX_DONT_SYNC` (`sg_io::Examined`), which
//! never asks a file system's server.
//!
//! The closers: one thread at first, started on the first descriptor that needs it.
//! When every closer is inside a `close` (one is stuck on a dead server, say) another
//! is started, up to [`MAX_CLOSERS`]; beyond that, descriptors wait in the queue. The
//! queue holds at most [`MAX_QUEUED`]: a peer that keeps sending descriptors of a dead
//! file system would otherwise pin one descriptor per command until the table is
//! full, which hurts every peer. Beyond it, a descriptor is closed on the thread that
//! served it, so the connection that sent it waits (as a connection whose device
//! hangs does), and the other connections, each served by a thread of its own, go on.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use sg_io::{DescriptorKind, OtherKind};

use crate::backend::DescriptorLabel;

/// Closer threads at most.
pub(crate) const MAX_CLOSERS: usize = 4;

/// Descriptors waiting for a closer at most; beyond, closed where they were served.
pub(crate) const MAX_QUEUED: usize = 256;

/// Stack of a closer thread: it only calls `close`.
const CLOSER_STACK: usize = 64 * 1024;

/// A descriptor received from a peer. Dropping it closes it (see the module docs).
#[derive(Debug)]
pub(crate) struct PeerFd {
    fd: Option<OwnedFd>,
    /// Known to be a device node, so closing it inline cannot wait on a server.
    device_node: bool,
}

impl PeerFd {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        Self {
            fd: Some(fd),
            device_node: false,
        }
    }

    /// Records what the router found the descriptor to be.
    pub(crate) fn classified(&mut self, label: &DescriptorLabel) {
        self.device_node = matches!(
            label,
            DescriptorLabel::Kind(
                DescriptorKind::WholeBlockDevice
                    | DescriptorKind::Partition
                    | DescriptorKind::PartialDeviceMapper
                    | DescriptorKind::SgCharDevice
                    | DescriptorKind::Other(OtherKind::CharDevice { .. })
            )
        );
    }
}

impl AsFd for PeerFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.fd {
            Some(fd) => fd.as_fd(),
            // Only `drop` takes the descriptor out.
            None => unreachable!("a PeerFd is used after it was closed"),
        }
    }
}

impl Drop for PeerFd {
    fn drop(&mut self) {
        let Some(fd) = self.fd.take() else {
            return;
        };
        if self.device_node || is_device_node(fd.as_fd()) {
            drop(fd);
        } else {
            close_elsewhere(fd);
        }
    }
}

/// Whether `fd` is a device node, asked without waiting on any server.
fn is_device_node(fd: BorrowedFd<'_>) -> bool {
    sg_io::Examined::of(fd).is_ok_and(|examined| examined.key().is_device_node())
}

/// The closer threads and their queue.
struct Closers {
    queue: Mutex<Sender<OwnedFd>>,
    receiver: Arc<Mutex<Receiver<OwnedFd>>>,
    started: AtomicUsize,
    /// Closers inside a `close` now.
    busy: Arc<AtomicUsize>,
    /// Descriptors handed over and not closed yet.
    queued: Arc<AtomicUsize>,
}

static CLOSERS: OnceLock<Closers> = OnceLock::new();

/// Hands `fd` to a closer thread (starting one if none is free), or closes it here if
/// no thread can be started.
fn close_elsewhere(fd: OwnedFd) {
    let closers = CLOSERS.get_or_init(|| {
        let (sender, receiver) = channel();
        Closers {
            queue: Mutex::new(sender),
            receiver: Arc::new(Mutex::new(receiver)),
            started: AtomicUsize::new(0),
            busy: Arc::new(AtomicUsize::new(0)),
            queued: Arc::new(AtomicUsize::new(0)),
        }
    });
    if closers.queued.load(Ordering::Acquire) >= MAX_QUEUED {
        // The closers are stuck and the queue is full: this connection waits.
        drop(fd);
        return;
    }
    if closers.busy.load(Ordering::Acquire) >= closers.started.load(Ordering::Acquire) {
        closers.start_one();
    }
    if closers.started.load(Ordering::Acquire) == 0 {
        // No closer could be started: better a slow close than a leaked descriptor.
        drop(fd);
        return;
    }
    let queue = closers.queue.lock().unwrap_or_else(PoisonError::into_inner);
    closers.queued.fetch_add(1, Ordering::AcqRel);
    if let Err(returned) = queue.send(fd) {
        // Every receiver is gone (cannot happen: they never exit); close it here.
        drop(queue);
        closers.queued.fetch_sub(1, Ordering::AcqRel);
        drop(returned.0);
    }
}

impl Closers {
    /// Starts a closer unless [`MAX_CLOSERS`] are running (the slot is taken first,
    /// so threads racing here never start more).
    fn start_one(&self) {
        let reserved = self
            .started
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |started| {
                (started < MAX_CLOSERS).then_some(started + 1)
            });
        if reserved.is_err() {
            return;
        }
        let receiver = Arc::clone(&self.receiver);
        let busy = Arc::clone(&self.busy);
        let queued = Arc::clone(&self.queued);
        let spawned = std::thread::Builder::new()
            .name("pr-helper-close".into())
            .stack_size(CLOSER_STACK)
            .spawn(move || {
                loop {
                    // The lock is held while waiting, not while closing: the next
                    // descriptor goes to a closer that is not stuck.
                    let next = receiver
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .recv();
                    let Ok(fd) = next else {
                        return;
                    };
                    busy.fetch_add(1, Ordering::AcqRel);
                    drop(fd);
                    busy.fetch_sub(1, Ordering::AcqRel);
                    queued.fetch_sub(1, Ordering::AcqRel);
                }
            });
        if let Err(error) = spawned {
            self.started.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(error = %error, "cannot start a thread to close peer descriptors");
        }
    }
}

/// Closer threads running now (for tests).
#[cfg(test)]
pub(crate) fn closers_started() -> usize {
    CLOSERS
        .get()
        .map_or(0, |closers| closers.started.load(Ordering::Acquire))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    fn is_open(raw: i32) -> bool {
        std::path::Path::new(&format!("/proc/self/fd/{raw}")).exists()
    }

    fn wait_closed(raw: i32) {
        let until = Instant::now() + Duration::from_secs(10);
        while is_open(raw) {
            assert!(Instant::now() < until, "descriptor {raw} never closed");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_device_node_is_closed_inline() {
        let null = std::fs::File::open("/dev/null").unwrap();
        let peer = PeerFd::new(OwnedFd::from(null));
        let raw = peer.as_fd().as_raw_fd();
        drop(peer);
        assert!(!is_open(raw));
    }

    #[test]
    fn other_descriptors_are_closed_by_a_closer_thread() {
        let (reader, writer) = rustix::pipe::pipe().unwrap();
        let raw = reader.as_raw_fd();
        drop(PeerFd::new(reader));
        wait_closed(raw);
        assert!(closers_started() >= 1);
        let file = tempfile::tempfile().unwrap();
        let mut peer = PeerFd::new(OwnedFd::from(file));
        peer.classified(&DescriptorLabel::Kind(DescriptorKind::RegularFile));
        let raw = peer.as_fd().as_raw_fd();
        drop(peer);
        wait_closed(raw);
        drop(writer);
    }
}
