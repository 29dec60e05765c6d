//! Our daemon, started on a temporary socket for one test.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::ready::{NOTIFY_SOCKET, NotReady, NotifySocket};

/// How long [`Daemon::start`] waits for readiness before giving up. Generous: it only
/// bounds a hang, it does not measure anything.
const STARTUP_LIMIT: Duration = Duration::from_secs(60);

/// How to start the daemon.
#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    /// The binary (default: `pr-helper` next to the test executable).
    pub program: Option<PathBuf>,
    /// Arguments after `-k SOCKET`.
    pub args: Vec<OsString>,
    /// Extra environment variables (not `NOTIFY_SOCKET`: the kit uses it to learn
    /// that the daemon is ready).
    pub env: Vec<(OsString, OsString)>,
    /// RLIMIT_NOFILE (soft and hard) for the daemon, set before it starts.
    pub max_open_files: Option<u64>,
    /// Whether the daemon writes a pid file (`-f`) in its temporary directory.
    pub pid_file: bool,
}

impl DaemonOptions {
    /// Options running `program` with `args`.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: Some(program.into()),
            ..Self::default()
        }
    }

    /// Options starting `pr-helper-slow` (a binary of the pr-helper package): the daemon's own
    /// start-up and serving code with a backend that waits `latency_ms` before every
    /// command, so commands stay in flight. Panics if that binary was not built.
    pub fn slow(latency_ms: u64) -> Self {
        let program = crate::workspace_bin("pr-helper-slow");
        assert!(
            program.exists(),
            "{} is missing: build it with `cargo build -p pr-helper --bin pr-helper-slow`",
            program.display()
        );
        Self::new(program).env("PR_HELPER_TEST_LATENCY_MS", latency_ms.to_string())
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the daemon.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Has the daemon write a pid file in its directory (see [`Daemon::pid_file`]).
    pub fn with_pid_file(mut self) -> Self {
        self.pid_file = true;
        self
    }

    /// Runs the daemon with at most `limit` open descriptors.
    pub fn max_open_files(mut self, limit: u64) -> Self {
        self.max_open_files = Some(limit);
        self
    }
}

/// A running daemon on a socket in its own temporary directory; killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    dir: TempDir,
    socket: PathBuf,
    log: PathBuf,
    pid_file: Option<PathBuf>,
}

impl Daemon {
    /// Starts `pr-helper` (found next to the test executable) with `args`.
    pub fn start<I, S>(args: I) -> io::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self::start_with(DaemonOptions::default().args(args))
    }

    /// Starts the daemon as `options` say and waits until it reports `READY=1` on a
    /// notify socket of the test's own (it does so once its socket listens and its
    /// signal handlers are in place).
    pub fn start_with(options: DaemonOptions) -> io::Result<Self> {
        if options.env.iter().any(|(key, _)| key == NOTIFY_SOCKET) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "DaemonOptions::env must not set NOTIFY_SOCKET: the test kit waits for READY=1 \
                 on a socket of its own (start the daemon with std::process::Command to test \
                 the notification itself)",
            ));
        }
        let program = options
            .program
            .clone()
            .unwrap_or_else(|| crate::workspace_bin("pr-helper"));
        let dir = tempfile::Builder::new()
            .prefix("pr-helper-test")
            .tempdir()?;
        let socket = dir.path().join("helper.sock");
        let log = dir.path().join("helper.log");
        let pid_file = options.pid_file.then(|| dir.path().join("helper.pid"));
        let notify = NotifySocket::bind()?;
        // One open file description for both streams, so their lines interleave.
        let log_file = File::create(&log)?;
        // A descriptor limit goes through util-linux `prlimit`, which sets it and then
        // execs the daemon (same pid), so no code has to run between fork and exec.
        let mut command = match options.max_open_files {
            Some(limit) => {
                let mut command = Command::new("prlimit");
                command
                    .arg(format!("--nofile={limit}:{limit}"))
                    .arg("--")
                    .arg(&program);
                command
            }
            None => Command::new(&program),
        };
        command
            .arg("-k")
            .arg(&socket)
            .args(pid_file.iter().flat_map(|path| [Path::new("-f"), path]))
            .args(&options.args)
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .env(NOTIFY_SOCKET, notify.env_value())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        let child = command.spawn()?;
        let mut daemon = Self {
            child,
            dir,
            socket,
            log,
            pid_file,
        };
        daemon.wait_until_ready(&notify)?;
        Ok(daemon)
    }

    /// Waits for `READY=1` on `notify`, or for the daemon to exit, whichever comes
    /// first.
    fn wait_until_ready(&mut self, notify: &NotifySocket) -> io::Result<()> {
        match notify.wait(&mut self.child, STARTUP_LIMIT) {
            Ok(()) => Ok(()),
            Err(NotReady::Exited(status)) => Err(io::Error::other(format!(
                "pr-helper exited during start-up ({status}); log:\n{}",
                self.log_text()
            ))),
            Err(NotReady::TimedOut(limit)) => Err(io::Error::other(format!(
                "pr-helper did not report READY=1 within {limit:?}; log:\n{}",
                self.log_text()
            ))),
            Err(NotReady::Io(error)) => Err(error),
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The socket it listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Its pid file, if [`DaemonOptions::with_pid_file`] asked for one.
    pub fn pid_file(&self) -> Option<&Path> {
        self.pid_file.as_deref()
    }

    /// Its temporary directory (socket and log live there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything it wrote to standard output and error so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Connects a raw client (the feature word is not read yet).
    pub fn connect(&self) -> io::Result<crate::RawClient> {
        crate::RawClient::connect(&self.socket)
    }

    /// Connects and completes the handshake (requests no features).
    pub fn client(&self) -> io::Result<crate::RawClient> {
        let mut client = self.connect()?;
        client.handshake()?;
        Ok(client)
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: rustix::process::Signal) -> io::Result<()> {
        let pid = i32::try_from(self.pid())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .ok_or_else(|| io::Error::other("pid out of range"))?;
        rustix::process::kill_process(pid, signal).map_err(io::Error::from)
    }

    /// Waits for the daemon to exit (after a signal).
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
