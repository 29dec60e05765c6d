//! Starting a daemon the way systemd's socket activation does.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use rustix::io::{FdFlags, fcntl_setfd};

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
