//! The one shutdown primitive: a flag and a pipe, set together.
//!
//! Triggering stores an atomic and writes a byte to the pipe, both async-signal-safe,
//! so the signal handlers do it themselves (through `signal-hook`'s safe registration):
//! the daemon starts stopping from the signal on, not once some thread gets round to it.
//! The pipe is never read, so once triggered it stays readable for every waiter.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::event::{PollFd, PollFlags};
use rustix::pipe::PipeFlags;

/// Tells [`serve`](super::serve) to stop. Shared by the signal handlers, the serving
/// threads and whoever else may ask for a stop (tests).
#[derive(Debug)]
pub struct Shutdown {
    requested: Arc<AtomicBool>,
    /// Readable once triggered (never read from, so it stays readable).
    event: OwnedFd,
    /// The pipe's other end; signal handlers write to copies of it.
    trigger_end: OwnedFd,
}

impl Shutdown {
    /// A shutdown handle that has not fired.
    pub fn new() -> io::Result<Self> {
        let (event, trigger_end) =
            rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        Ok(Self {
            requested: Arc::new(AtomicBool::new(false)),
            event,
            trigger_end,
        })
    }

    /// Asks for the stop. Repeated calls do nothing more.
    pub fn trigger(&self) {
        if !self.requested.swap(true, Ordering::AcqRel) {
            let _ = rustix::io::write(&self.trigger_end, &[1]);
        }
    }

    /// Whether the stop was asked for.
    pub fn is_triggered(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// Makes `signals` trigger this shutdown, from their handlers.
    pub fn trigger_on_signals(&self, signals: &[i32]) -> io::Result<()> {
        for &signal in signals {
            // The flag first: whoever the pipe wakes must see it set.
            signal_hook::flag::register(signal, Arc::clone(&self.requested))?;
            signal_hook::low_level::pipe::register(signal, self.trigger_end.try_clone()?)?;
        }
        Ok(())
    }

    /// Blocks until the stop is asked for.
    pub(super) fn wait(&self) {
        while !self.is_triggered() {
            let mut fds = [PollFd::new(&self.event, PollFlags::IN)];
            // EINTR and spurious wake-ups just loop; the flag decides.
            let _ = rustix::event::poll(&mut fds, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(shutdown: &Shutdown) -> bool {
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let mut fds = [PollFd::new(&shutdown.event, PollFlags::IN)];
        rustix::event::poll(&mut fds, Some(&zero)).expect("poll") == 1
    }

    #[test]
    fn a_signal_triggers_it_from_its_handler() {
        let shutdown = Shutdown::new().expect("shutdown");
        shutdown
            .trigger_on_signals(&[libc::SIGUSR2])
            .expect("handler");
        assert!(!shutdown.is_triggered());
        rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::USR2)
            .expect("kill");
        shutdown.wait();
        assert!(shutdown.is_triggered());
        assert!(readable(&shutdown));
    }

    #[test]
    fn it_stays_readable_once_triggered() {
        let shutdown = Shutdown::new().expect("shutdown");
        assert!(!readable(&shutdown));
        shutdown.trigger();
        shutdown.trigger();
        assert!(readable(&shutdown));
        assert!(readable(&shutdown));
    }
}
