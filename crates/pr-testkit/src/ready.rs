//! Waiting for a daemon to say it is ready, systemd's way (`Type=notify`):
//! the daemon sends a datagram with `READY=1` to the socket that
//! `NOTIFY_SOCKET` names. Our `pr-helper` does so once its socket listens
//! and its signal handlers are in place, so a test that waits for it never
//! needs to poll `connect`.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};

/// The environment variable naming the notify socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Why [`NotifySocket::wait`] returned without `READY=1`.
#[derive(Debug)]
pub enum NotReady {
    /// The process exited first.
    Exited(ExitStatus),
    /// Nothing happened within the limit.
    TimedOut(Duration),
    /// Waiting itself failed.
    Io(io::Error),
}

/// A datagram socket of the test's own for one daemon to report to.
///
/// It has an abstract name (no file, no permissions), so a daemon that has
/// dropped to another user (`-u nobody`) can still send to it, and nothing
/// is left behind.
#[derive(Debug)]
pub struct NotifySocket {
    socket: UnixDatagram,
    name: String,
}

impl NotifySocket {
    /// Binds a fresh abstract name, unique to this process and call.
    pub fn bind() -> io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "pr-testkit-notify-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let socket = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name)?)?;
        Ok(Self { socket, name })
    }

    /// The value to give the daemon in `NOTIFY_SOCKET` (`@` marks an
    /// abstract name).
    pub fn env_value(&self) -> String {
        format!("@{}", self.name)
    }

    /// Waits for `READY=1`, or for `child` to exit, whichever comes first.
    /// Both are events (a datagram, the pidfd of the child becoming
    /// readable), so nothing is polled on a timer; `limit` only bounds a
    /// hang. An exited child is reaped.
    pub fn wait(&self, child: &mut Child, limit: Duration) -> Result<(), NotReady> {
        let pid = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .ok_or_else(|| NotReady::Io(io::Error::other("pid out of range")))?;
        let exited = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
            .map_err(|errno| NotReady::Io(errno.into()))?;
        let started = Instant::now();
        let mut datagram = [0u8; 4096];
        loop {
            let left = limit.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(NotReady::TimedOut(limit));
            }
            let timeout = Timespec {
                tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            let mut fds = [
                PollFd::new(&self.socket, PollFlags::IN),
                PollFd::new(&exited, PollFlags::IN),
            ];
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(errno) => return Err(NotReady::Io(errno.into())),
            }
            let [message, process] = fds.map(|fd| !fd.revents().is_empty());
            if message {
                let len = self.socket.recv(&mut datagram).map_err(NotReady::Io)?;
                let text = String::from_utf8_lossy(datagram.get(..len).unwrap_or_default());
                // Newline-separated assignments, READY=1 among them.
                if text.lines().any(|line| line == "READY=1") {
                    return Ok(());
                }
                continue;
            }
            if process {
                let status = child.wait().map_err(NotReady::Io)?;
                return Err(NotReady::Exited(status));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_ready_datagram_ends_the_wait() {
        let notify = NotifySocket::bind().unwrap();
        let sender = UnixDatagram::unbound().unwrap();
        let address = SocketAddr::from_abstract_name(&notify.name).unwrap();
        sender.send_to_addr(b"STATUS=starting\n", &address).unwrap();
        sender
            .send_to_addr(b"MAINPID=1\nREADY=1\n", &address)
            .unwrap();
        let mut child = Command::new("sleep").arg("600").spawn().unwrap();
        let result = notify.wait(&mut child, Duration::from_secs(60));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(result.is_ok(), "{result:?}");
    }

    #[test]
    fn an_exit_before_ready_ends_the_wait() {
        let notify = NotifySocket::bind().unwrap();
        let mut child = Command::new("false").spawn().unwrap();
        match notify.wait(&mut child, Duration::from_secs(60)) {
            Err(NotReady::Exited(status)) => assert_eq!(status.code(), Some(1)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_are_unique() {
        let a = NotifySocket::bind().unwrap();
        let b = NotifySocket::bind().unwrap();
        assert_ne!(a.env_value(), b.env_value());
        assert!(a.env_value().starts_with('@'));
    }
}
