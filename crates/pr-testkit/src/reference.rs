//! The reference peers our daemon is compared with: Debian's
//! `qemu-pr-helper` (another helper on another socket) and
//! `qemu-system-x86_64` (the real client, driven over QMP). Also a loop
//! device on a temporary file, the block device both helpers send SG_IO to.
//!
//! Everything here owns what it starts: dropping the value stops the
//! process (SIGKILL + wait) or detaches the device, so a failed test leaves
//! nothing behind.

use std::fmt;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::ready::{NOTIFY_SOCKET, NotReady, NotifySocket};

/// Debian's helper (package `qemu-system-common`).
pub const QEMU_PR_HELPER: &str = "/usr/bin/qemu-pr-helper";
/// Debian's emulator (package `qemu-system-x86`).
pub const QEMU_SYSTEM: &str = "/usr/bin/qemu-system-x86_64";

/// How long a freshly started process may take to create its socket before
/// we give up. Only a guard against a hung start: nothing measures it.
const READY_GUARD: Duration = Duration::from_secs(60);
const READY_POLL: Duration = Duration::from_millis(20);

/// Why starting or driving a reference process failed.
#[derive(Debug)]
pub enum ReferenceError {
    /// The program could not be started at all.
    Spawn { program: PathBuf, source: io::Error },
    /// The process exited before its socket accepted a connection.
    ExitedEarly {
        program: PathBuf,
        status: ExitStatus,
    },
    /// The socket did not accept a connection within [`READY_GUARD`].
    NeverReady { socket: PathBuf },
    /// The program did not report `READY=1` within [`READY_GUARD`].
    NeverNotified { program: PathBuf },
    /// Waiting on the child failed.
    Wait { source: io::Error },
    /// `losetup` failed or printed nothing usable.
    Losetup { detail: String },
    /// Creating the backing file of a loop device failed.
    BackingFile { source: io::Error },
}

impl fmt::Display for ReferenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spawn { program, .. } => write!(f, "cannot start {}", program.display()),
            Self::ExitedEarly { program, status } => {
                write!(
                    f,
                    "{} exited before it was ready ({status})",
                    program.display()
                )
            }
            Self::NeverReady { socket } => {
                write!(f, "nothing accepted connections on {}", socket.display())
            }
            Self::NeverNotified { program } => {
                write!(
                    f,
                    "{} did not report READY=1 within {READY_GUARD:?}",
                    program.display()
                )
            }
            Self::Wait { .. } => write!(f, "cannot wait for the child process"),
            Self::Losetup { detail } => write!(f, "losetup failed: {detail}"),
            Self::BackingFile { .. } => write!(f, "cannot create the loop device's backing file"),
        }
    }
}

impl std::error::Error for ReferenceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Spawn { source, .. } | Self::Wait { source } | Self::BackingFile { source } => {
                Some(source)
            }
            _ => None,
        }
    }
}

/// True when Debian's `qemu-pr-helper` is installed.
pub fn qemu_pr_helper_available() -> bool {
    Path::new(QEMU_PR_HELPER).exists()
}

/// True when Debian's `qemu-system-x86_64` is installed.
pub fn qemu_system_available() -> bool {
    Path::new(QEMU_SYSTEM).exists()
}

/// Whether `program` reports readiness with `READY=1` on `NOTIFY_SOCKET`: our
/// `pr-helper` does; Debian's `qemu-pr-helper` has no readiness notification at
/// all, so for it the socket is probed with `connect` until it accepts.
fn notifies_readiness(program: &Path) -> bool {
    program.file_name() != Some(std::ffi::OsStr::new("qemu-pr-helper"))
}

/// Waits for `READY=1` on `notify`, or for the child to exit.
fn wait_until_notified(
    notify: &NotifySocket,
    child: &mut Child,
    program: &Path,
) -> Result<(), ReferenceError> {
    notify
        .wait(child, READY_GUARD)
        .map_err(|not_ready| match not_ready {
            NotReady::Exited(status) => ReferenceError::ExitedEarly {
                program: program.to_owned(),
                status,
            },
            NotReady::TimedOut(_) => ReferenceError::NeverNotified {
                program: program.to_owned(),
            },
            NotReady::Io(source) => ReferenceError::Wait { source },
        })
}

/// Polls until `socket` accepts a connection, the child exits, or the guard
/// expires. The probe connection is closed at once. Only for a program that
/// does not report readiness (see [`notifies_readiness`]).
fn wait_until_listening(
    child: &mut Child,
    program: &Path,
    socket: &Path,
) -> Result<(), ReferenceError> {
    let start = Instant::now();
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|source| ReferenceError::Wait { source })?
        {
            return Err(ReferenceError::ExitedEarly {
                program: program.to_owned(),
                status,
            });
        }
        if UnixStream::connect(socket).is_ok() {
            return Ok(());
        }
        if start.elapsed() > READY_GUARD {
            return Err(ReferenceError::NeverReady {
                socket: socket.to_owned(),
            });
        }
        thread::sleep(READY_POLL);
    }
}

/// A PR helper daemon (ours or Debian's) started with the flags both
/// understand: `-k SOCKET -f PIDFILE`, plus any extra arguments.
#[derive(Debug)]
pub struct HelperProcess {
    child: Option<Child>,
    program: PathBuf,
    socket: PathBuf,
    pidfile: PathBuf,
}

impl HelperProcess {
    /// Starts `program -k SOCKET -f PIDFILE EXTRA...` and waits until it is
    /// ready: our `pr-helper` reports `READY=1` on a notify socket of the
    /// test's own; Debian's `qemu-pr-helper`, which cannot, is waited for
    /// until its socket accepts connections. Standard output is discarded,
    /// standard error is inherited (test logs show the daemon's messages).
    pub fn spawn(
        program: &Path,
        socket: &Path,
        pidfile: &Path,
        extra_args: &[&str],
    ) -> Result<Self, ReferenceError> {
        let notify = if notifies_readiness(program) {
            Some(
                NotifySocket::bind().map_err(|source| ReferenceError::Spawn {
                    program: program.to_owned(),
                    source,
                })?,
            )
        } else {
            None
        };
        let mut command = Command::new(program);
        if let Some(notify) = &notify {
            command.env(NOTIFY_SOCKET, notify.env_value());
        }
        let child = command
            .arg("-k")
            .arg(socket)
            .arg("-f")
            .arg(pidfile)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|source| ReferenceError::Spawn {
                program: program.to_owned(),
                source,
            })?;
        let mut helper = Self {
            child: Some(child),
            program: program.to_owned(),
            socket: socket.to_owned(),
            pidfile: pidfile.to_owned(),
        };
        if let Some(child) = helper.child.as_mut() {
            match &notify {
                Some(notify) => wait_until_notified(notify, child, program)?,
                None => wait_until_listening(child, program, socket)?,
            }
        }
        Ok(helper)
    }

    /// Starts Debian's `qemu-pr-helper` with its socket and pid file in `dir`.
    pub fn spawn_reference(dir: &Path) -> Result<Self, ReferenceError> {
        Self::spawn(
            Path::new(QEMU_PR_HELPER),
            &dir.join("qemu-pr-helper.sock"),
            &dir.join("qemu-pr-helper.pid"),
            &[],
        )
    }

    /// The program this process runs.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The listening socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The pid file given with `-f`.
    pub fn pidfile(&self) -> &Path {
        &self.pidfile
    }

    /// Process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Resident set size from `/proc/PID/status` (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        self.pid().and_then(rss_kib)
    }

    /// Connects a new client to the helper.
    pub fn connect(&self) -> io::Result<UnixStream> {
        UnixStream::connect(&self.socket)
    }

    /// Kills the helper with SIGKILL and reaps it. Idempotent.
    pub fn kill(&mut self) -> Result<(), ReferenceError> {
        kill_and_reap(&mut self.child)
    }
}

impl Drop for HelperProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// SIGKILL and reap the child, if it is still ours. Idempotent.
fn kill_and_reap(child: &mut Option<std::process::Child>) -> Result<(), ReferenceError> {
    if let Some(mut child) = child.take() {
        // An already exited child makes kill fail; wait still reaps it.
        let _ = child.kill();
        child
            .wait()
            .map_err(|source| ReferenceError::Wait { source })?;
    }
    Ok(())
}

/// `VmRSS` of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `qemu-system-x86_64 -M none` with one `pr-manager-helper` object per
/// entry and a QMP server on a Unix socket.
#[derive(Debug)]
pub struct QemuProcess {
    child: Option<Child>,
    qmp_socket: PathBuf,
}

impl QemuProcess {
    /// Starts QEMU with `-object pr-manager-helper,id=ID,path=SOCKET` for
    /// each `(id, socket)` and waits until the QMP socket accepts
    /// connections. QEMU refuses to start when a helper socket does not
    /// answer, which shows as [`ReferenceError::ExitedEarly`].
    pub fn spawn(pr_managers: &[(&str, &Path)], qmp_socket: &Path) -> Result<Self, ReferenceError> {
        let mut command = Command::new(QEMU_SYSTEM);
        command.args([
            "-M",
            "none",
            "-accel",
            "tcg",
            "-nodefaults",
            "-display",
            "none",
        ]);
        for (id, socket) in pr_managers {
            command.arg("-object").arg(format!(
                "pr-manager-helper,id={id},path={}",
                socket.display()
            ));
        }
        command
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp_socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let program = PathBuf::from(QEMU_SYSTEM);
        let child = command.spawn().map_err(|source| ReferenceError::Spawn {
            program: program.clone(),
            source,
        })?;
        let mut qemu = Self {
            child: Some(child),
            qmp_socket: qmp_socket.to_owned(),
        };
        if let Some(child) = qemu.child.as_mut() {
            wait_until_listening(child, &program, qmp_socket)?;
        }
        Ok(qemu)
    }

    /// The QMP socket path.
    pub fn qmp_socket(&self) -> &Path {
        &self.qmp_socket
    }

    /// Process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process has exited (reaping it if so).
    pub fn has_exited(&mut self) -> Result<bool, ReferenceError> {
        match self.child.as_mut() {
            None => Ok(true),
            Some(child) => child
                .try_wait()
                .map(|status| status.is_some())
                .map_err(|source| ReferenceError::Wait { source }),
        }
    }

    /// Kills QEMU with SIGKILL and reaps it. Idempotent.
    pub fn kill(&mut self) -> Result<(), ReferenceError> {
        kill_and_reap(&mut self.child)
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// A loop device over a sparse temporary file; detached on drop.
#[derive(Debug)]
pub struct LoopDevice {
    path: PathBuf,
    _backing: tempfile::NamedTempFile,
}

/// A temporary file of `size` bytes with no blocks allocated, to back a loop device.
fn sparse_backing_file(size: u64) -> Result<tempfile::NamedTempFile, ReferenceError> {
    let backing =
        tempfile::NamedTempFile::new().map_err(|source| ReferenceError::BackingFile { source })?;
    backing
        .as_file()
        .set_len(size)
        .map_err(|source| ReferenceError::BackingFile { source })?;
    Ok(backing)
}

impl LoopDevice {
    /// Creates a sparse backing file of `size` bytes and attaches it to the
    /// first free loop device (needs root and the loop driver).
    pub fn attach(size: u64) -> Result<Self, ReferenceError> {
        Self::losetup(sparse_backing_file(size)?, &[])
    }

    /// Like [`attach`](Self::attach), but the backing file carries an MBR
    /// partition table with one partition (from sector 2048 to the end) and
    /// the kernel scans it (`losetup -P`): [`partition`](Self::partition)
    /// is then a partition device, e.g. `/dev/loop0p1`.
    pub fn attach_partitioned(size: u64) -> Result<Self, ReferenceError> {
        let backing = sparse_backing_file(size)?;
        let sectors = u32::try_from(size / 512).unwrap_or(u32::MAX);
        let mbr = mbr_with_one_partition(2048, sectors.saturating_sub(2048));
        std::os::unix::fs::FileExt::write_all_at(backing.as_file(), &mbr, 0)
            .map_err(|source| ReferenceError::BackingFile { source })?;
        let device = Self::losetup(backing, &["-P"])?;
        let partition = device.partition();
        if !partition.exists() {
            // Kernels without the MBR parser scan nothing; `partx -a`
            // declares the partition through BLKPG instead.
            let status = Command::new("partx")
                .arg("-a")
                .arg(&device.path)
                .stdout(Stdio::null())
                .status()
                .map_err(|source| ReferenceError::Losetup {
                    detail: format!("partx: {source}"),
                })?;
            if !status.success() && !partition.exists() {
                return Err(ReferenceError::Losetup {
                    detail: format!("partx -a {} failed: {status}", device.path.display()),
                });
            }
        }
        let start = Instant::now();
        while !partition.exists() {
            if start.elapsed() > READY_GUARD {
                return Err(ReferenceError::Losetup {
                    detail: format!("{} never appeared", partition.display()),
                });
            }
            thread::sleep(READY_POLL);
        }
        Ok(device)
    }

    fn losetup(backing: tempfile::NamedTempFile, extra: &[&str]) -> Result<Self, ReferenceError> {
        let output = Command::new("losetup")
            .args(["-f", "--show"])
            .args(extra)
            .arg(backing.path())
            .output()
            .map_err(|source| ReferenceError::Losetup {
                detail: source.to_string(),
            })?;
        if !output.status.success() {
            return Err(ReferenceError::Losetup {
                detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if !path.starts_with("/dev/loop") {
            return Err(ReferenceError::Losetup {
                detail: format!("unexpected output {path:?}"),
            });
        }
        Ok(Self {
            path: PathBuf::from(path),
            _backing: backing,
        })
    }

    /// The device node, e.g. `/dev/loop0`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The node of the first partition, e.g. `/dev/loop0p1` (it exists
    /// only for [`attach_partitioned`](Self::attach_partitioned)).
    pub fn partition(&self) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push("p1");
        PathBuf::from(name)
    }
}

/// A 512-byte MBR with one Linux partition (type 0x83) of `sectors`
/// sectors starting at `first_sector`.
fn mbr_with_one_partition(first_sector: u32, sectors: u32) -> [u8; 512] {
    let mut mbr = [0u8; 512];
    let entry = 446;
    mbr[entry + 4] = 0x83;
    mbr[entry + 8..entry + 12].copy_from_slice(&first_sector.to_le_bytes());
    mbr[entry + 12..entry + 16].copy_from_slice(&sectors.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    mbr
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup")
            .arg("-d")
            .arg(&self.path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
