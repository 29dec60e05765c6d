//! Daemons that detach themselves (`-d`): no child of the test, known by the pid
//! their pid file holds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::process::Signal;

use crate::wait::{KillOnDrop, has_exited, signal, wait_until};

/// A daemon started with `-d`, its socket and pid file in a directory of the test's.
/// Dropping it kills the daemon if it still runs: nothing else would, since it is no
/// child of the test.
#[derive(Debug)]
pub struct Detached {
    socket: PathBuf,
    pid_file: PathBuf,
    pid: u32,
    _kill: KillOnDrop,
}

impl Detached {
    /// Runs `command` (the daemon, or a wrapper that execs it) with
    /// `-d -f DIR/d.pid -k DIR/d.sock` appended, to its end. Its foreground process
    /// exits 0 once the daemon serves; panics with its standard error otherwise.
    pub fn start(command: &mut Command, dir: &Path) -> Self {
        let socket = dir.join("d.sock");
        let pid_file = dir.join("d.pid");
        let output = command
            .arg("-d")
            .arg("-f")
            .arg(&pid_file)
            .arg("-k")
            .arg(&socket)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("run {:?}: {error}", command.get_program()));
        assert!(
            output.status.success(),
            "{:?} (pr-helper -d) failed ({}): {}",
            command.get_program(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let pid = read_pid(&pid_file);
        Self {
            socket,
            pid_file,
            pid,
            _kill: KillOnDrop(pid),
        }
    }

    /// The daemon's process id, from its pid file.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The socket it serves on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Its pid file.
    pub fn pid_file(&self) -> &Path {
        &self.pid_file
    }

    /// SIGTERM, then waits until the daemon has exited.
    pub fn stop(&self) {
        signal(self.pid, Signal::TERM);
        wait_until("the detached daemon exits", || has_exited(self.pid));
    }
}

/// The pid in pid file `path`; panics if there is none.
pub fn read_pid(path: &Path) -> u32 {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("read the pid file {}: {error}", path.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("no pid in {}: {text:?}", path.display()))
}
