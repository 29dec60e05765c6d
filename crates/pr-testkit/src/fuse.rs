//! A FUSE file system whose server stops answering: a file on it can be opened, and
//! then every request about it (GETATTR, FLUSH on close, ...) waits forever, the way
//! a FUSE or NFS server that died or hangs behaves. Built on `/dev/fuse` and
//! `mount -i -t fuse` (needs root), speaking just enough of the kernel's FUSE
//! protocol (`linux/fuse.h`: INIT, LOOKUP, GETATTR, OPEN) to open one file.
//!
//! [`StuckFuse::release`] (also on drop) answers every request held back (FLUSH
//! with ENOSYS, which the kernel takes as "no flush needed", the rest with EIO), so
//! the waiting `stat`s and `close`s return, and answers again from then on; dropping
//! the value also detaches the mount (`umount -l`), which ends the connection once
//! its last file is closed.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tempfile::TempDir;

const FUSE_LOOKUP: u32 = 1;
const FUSE_GETATTR: u32 = 3;
const FUSE_OPEN: u32 = 14;
const FUSE_FLUSH: u32 = 25;
const FUSE_INIT: u32 = 26;
const ROOT: u64 = 1;
const FILE: u64 = 2;
/// The name of the one file in the file system.
pub const FILE_NAME: &str = "stuck.img";
const IN_HEADER: usize = 40;
const ENOENT: i32 = 2;
const EIO: i32 = 5;
const ENOSYS: i32 = 38;

/// Whether the server answers, and the requests it held back while it did not.
#[derive(Debug, Default)]
struct Held {
    silent: bool,
    /// `(unique, opcode)` of every request left unanswered.
    requests: Vec<(u64, u32)>,
}

/// A mounted FUSE file system with one file, served until [`StuckFuse::go_silent`].
#[derive(Debug)]
pub struct StuckFuse {
    dir: TempDir,
    device: Arc<File>,
    held: Arc<Mutex<Held>>,
    /// FLUSH requests seen (one per close of a descriptor of the file).
    flushes: Arc<AtomicU64>,
    /// The test's own descriptor of the file (see [`StuckFuse::open`]), closed only
    /// after the held requests are released.
    file: Option<File>,
    unmounted: bool,
}

impl StuckFuse {
    /// Mounts the file system in a temporary directory and starts its server.
    pub fn mount() -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        // Not close-on-exec until the mount command has inherited it.
        let device: OwnedFd = rustix::fs::open(
            "/dev/fuse",
            rustix::fs::OFlags::RDWR,
            rustix::fs::Mode::empty(),
        )?;
        let options = format!(
            "fd={},rootmode=40000,user_id=0,group_id=0,allow_other",
            device.as_raw_fd()
        );
        let status = Command::new("mount")
            .args(["-i", "-t", "fuse", "-o", &options, "pr-testkit-stuck"])
            .arg(dir.path())
            .status()?;
        rustix::io::fcntl_setfd(&device, rustix::io::FdFlags::CLOEXEC)?;
        if !status.success() {
            return Err(io::Error::other(format!("mount -t fuse failed: {status}")));
        }
        // Reads of the device work only once it is mounted.
        let device = Arc::new(File::from(device));
        let held = Arc::new(Mutex::new(Held::default()));
        let flushes = Arc::new(AtomicU64::new(0));
        {
            let (device, held, flushes) =
                (Arc::clone(&device), Arc::clone(&held), Arc::clone(&flushes));
            std::thread::spawn(move || serve(&device, &held, &flushes));
        }
        Ok(Self {
            dir,
            device,
            held,
            flushes,
            file: None,
            unmounted: false,
        })
    }

    /// The file's path.
    pub fn file(&self) -> PathBuf {
        self.dir.path().join(FILE_NAME)
    }

    /// Opens the file (while the server still answers) and keeps the descriptor,
    /// which [`StuckFuse::descriptor`] lends: its own `close` would wait like any
    /// other, so it is closed only once the requests are released (on drop).
    pub fn open(&mut self) -> io::Result<()> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.file())?;
        self.file = Some(file);
        Ok(())
    }

    /// The descriptor [`StuckFuse::open`] opened.
    pub fn descriptor(&self) -> Option<BorrowedFd<'_>> {
        self.file.as_ref().map(AsFd::as_fd)
    }

    /// From now on no request is answered: a `stat` that needs fresh attributes and
    /// every `close` of the file (FLUSH) wait until [`StuckFuse::release`].
    pub fn go_silent(&self) {
        self.held().silent = true;
    }

    /// FLUSH requests received so far (each `close` of a descriptor sends one).
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::SeqCst)
    }

    /// Answers every request held back and answers again from now on.
    pub fn release(&self) {
        let mut held = self.held();
        held.silent = false;
        for (unique, opcode) in held.requests.drain(..) {
            let errno = if opcode == FUSE_FLUSH { ENOSYS } else { EIO };
            let _ = answer(&self.device, unique, Err(errno));
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for StuckFuse {
    fn drop(&mut self) {
        self.release();
        drop(self.file.take());
        if !self.unmounted {
            self.unmounted = true;
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Reads requests and answers what opening the file needs, except while silenced;
/// ends when the connection ends.
fn serve(device: &File, held: &Mutex<Held>, flushes: &AtomicU64) {
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = match (&*device).read(&mut buffer) {
            Ok(read) => read,
            // A request interrupted before it was read.
            Err(error) if error.raw_os_error() == Some(ENOENT) => continue,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let Some(request) = buffer.get(..read) else {
            return;
        };
        if request.len() < IN_HEADER {
            continue;
        }
        let opcode = u32_at(request, 4);
        let unique = u64_at(request, 8);
        let node = u64_at(request, 16);
        if opcode == FUSE_FLUSH {
            flushes.fetch_add(1, Ordering::SeqCst);
        }
        {
            let mut held = held.lock().unwrap_or_else(PoisonError::into_inner);
            if held.silent {
                held.requests.push((unique, opcode));
                continue;
            }
        }
        let body = request.get(IN_HEADER..).unwrap_or_default();
        let reply = match opcode {
            FUSE_INIT => Ok(init_out()),
            FUSE_LOOKUP if node == ROOT && name_is(body, FILE_NAME) => Ok(entry_out()),
            FUSE_LOOKUP => Err(ENOENT),
            FUSE_GETATTR => Ok(attr_out(node)),
            FUSE_OPEN => Ok(open_out()),
            _ => Err(ENOSYS),
        };
        let _ = answer(device, unique, reply);
    }
}

fn answer(device: &File, unique: u64, reply: Result<Vec<u8>, i32>) -> io::Result<()> {
    let (error, body) = match reply {
        Ok(body) => (0, body),
        Err(errno) => (-errno, Vec::new()),
    };
    let mut out = Vec::with_capacity(16 + body.len());
    let len = u32::try_from(16 + body.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&error.to_ne_bytes());
    out.extend_from_slice(&unique.to_ne_bytes());
    out.extend_from_slice(&body);
    (&*device).write_all(&out)
}

fn name_is(body: &[u8], name: &str) -> bool {
    body.split(|&b| b == 0).next() == Some(name.as_bytes())
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_ne_bytes)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_ne_bytes)
}

/// `fuse_init_out` of protocol 7.22 (24 bytes: no later fields needed).
fn init_out() -> Vec<u8> {
    let mut out = Vec::new();
    for word in [7u32, 22, 0, 0] {
        out.extend_from_slice(&word.to_ne_bytes());
    }
    out.extend_from_slice(&1u16.to_ne_bytes()); // max_background
    out.extend_from_slice(&1u16.to_ne_bytes()); // congestion_threshold
    out.extend_from_slice(&4096u32.to_ne_bytes()); // max_write
    out
}

/// `fuse_attr` (88 bytes) of the root directory or the file. Attributes are valid
/// for no time at all, so a plain `stat` of the file always asks the server.
fn attr(node: u64) -> Vec<u8> {
    let (mode, size, nlink) = if node == ROOT {
        (0o040_755u32, 0u64, 2u32)
    } else {
        (0o100_644u32, 1 << 20, 1u32)
    };
    let mut out = Vec::new();
    for word in [node, size, size / 512, 0, 0, 0] {
        out.extend_from_slice(&word.to_ne_bytes());
    }
    for word in [0u32, 0, 0, mode, nlink, 0, 0, 0, 4096, 0] {
        out.extend_from_slice(&word.to_ne_bytes());
    }
    out
}

/// `fuse_entry_out`: the file, with entry and attributes valid for no time.
fn entry_out() -> Vec<u8> {
    let mut out = Vec::new();
    for word in [FILE, 0, 0, 0] {
        out.extend_from_slice(&word.to_ne_bytes());
    }
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&attr(FILE));
    out
}

/// `fuse_attr_out`.
fn attr_out(node: u64) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0u64.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&attr(node));
    out
}

/// `fuse_open_out`.
fn open_out() -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0u64.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out
}
