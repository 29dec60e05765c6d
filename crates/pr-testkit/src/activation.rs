//! Starting a daemon the way systemd's socket activation does.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rustix::io::{FdFlags, fcntl_setfd};
use tempfile::TempDir;

use crate::wait::HANG_LIMIT;

/// What systemd hands a socket-activated daemon, in a temporary directory: a
/// listening stream socket (for descriptor 3) and a datagram socket bound at a path
/// for its readiness (`NOTIFY_SOCKET`).
#[derive(Debug)]
pub struct ActivationSockets {
    _dir: TempDir,
    socket: PathBuf,
    listener: UnixListener,
    notify_path: PathBuf,
    notify: UnixDatagram,
}

impl ActivationSockets {
    /// Binds both; reads from the notify socket give up after [`HANG_LIMIT`].
    pub fn bind() -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let socket = dir.path().join("activated.sock");
        let listener = UnixListener::bind(&socket)?;
        let notify_path = dir.path().join("notify");
        let notify = UnixDatagram::bind(&notify_path)?;
        notify.set_read_timeout(Some(HANG_LIMIT))?;
        Ok(Self {
            _dir: dir,
            socket,
            listener,
            notify_path,
            notify,
        })
    }

    /// The listening socket's path (clients connect there).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The listening socket, to pass as descriptor 3.
    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }

    /// The notify socket's path, the daemon's `NOTIFY_SOCKET`.
    pub fn notify_path(&self) -> &OsStr {
        self.notify_path.as_os_str()
    }

    /// Waits for the daemon's readiness; see [`expect_ready`].
    pub fn expect_ready(&self) {
        expect_ready(&self.notify);
    }
}

/// Receives one datagram on `notify` and panics unless it is exactly `READY=1\n` (all
/// our daemon sends). `notify` should have a read timeout, so that a daemon that never
/// reports fails the test instead of hanging it.
pub fn expect_ready(notify: &UnixDatagram) {
    let mut buf = [0u8; 64];
    let n = notify
        .recv(&mut buf)
        .unwrap_or_else(|error| panic!("no READY=1 on NOTIFY_SOCKET: {error}"));
    assert_eq!(&buf[..n], b"READY=1\n");
}

/// Starts `program` with `args` the way systemd starts a socket-activated
/// service: `fd3` on descriptor 3, `LISTEN_FDS` set to `listen_fds`, and
/// `LISTEN_PID` set to the daemon's own pid (a shell exports its `$$` and
/// `exec`s the daemon, which keeps the pid). `env` is added; stdout and stderr
/// are piped together to the child's stdout.
pub fn spawn_activated(
    program: &Path,
    fd3: BorrowedFd<'_>,
    listen_fds: &str,
    env: &[(&str, &OsStr)],
    args: &[&str],
) -> std::io::Result<Child> {
    // The shell must inherit the descriptor to place it on 3.
    fcntl_setfd(fd3, FdFlags::empty())?;
    let script = format!(
        "export LISTEN_PID=$$; exec \"$0\" \"$@\" 3<&{} 2>&1",
        fd3.as_raw_fd()
    );
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(program)
        .args(args)
        .env("LISTEN_FDS", listen_fds)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn();
    // Back to close-on-exec whatever happened, so later children do not get it.
    fcntl_setfd(fd3, FdFlags::CLOEXEC)?;
    child
}
