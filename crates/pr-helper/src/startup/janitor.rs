//! Removing the socket and pid file when the daemon exits, even after it
//! gave up root.
//!
//! Once the daemon runs as `-u USER` it can no longer unlink files in
//! `/var/run` (qemu-pr-helper leaves them behind). So, before dropping
//! privileges, we fork a tiny janitor process that keeps root's uid but no
//! capability beyond CAP_DAC_OVERRIDE, blocks termination signals and
//! waits reading a pipe. The daemon holds the pipe's write end and never
//! writes to it: when the daemon exits, however it exits (even killed), the
//! read returns end-of-file and the janitor removes the files, but only if
//! they are still the ones we created (same device and inode), so it never
//! removes a successor's socket. Each file's directory is opened when the
//! janitor is started, and the check and the removal are `fstatat` and
//! `unlinkat` on that descriptor: a directory of the path renamed or replaced
//! by a symlink later cannot send the janitor elsewhere. (No call removes a
//! name only if it still has a given inode: someone who may write to that
//! directory, root with /run, can still swap the name between the check and
//! the removal.) On an orderly exit the daemon waits for the
//! janitor, so both files are gone by the time the daemon's exit status is
//! visible.
//!
//! The janitor confines itself too, before it waits: its own seccomp filter
//! (the `janitor` part of `seccomp-policy.json`: read, fstatat, unlinkat, the
//! allocator, exit) under `--seccomp`, and unless `--no-landlock` a Landlock
//! ruleset, built from those directory descriptors, that lets it remove files
//! beneath them and nothing else.

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use rustix::pipe::{PipeFlags, pipe_with};
use rustix::process::{Pid, WaitOptions, waitpid};

use super::signalmask;
use super::sys::{self, Forked};

/// A file we created, identified by path, (device, inode) and, where the
/// filesystem records it, its birth time: ext4 hands a freed inode number to the
/// next file created, so a successor's socket bound just after ours was removed
/// can have our inode number, but not our birth time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileIdentity {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    /// Birth time (seconds, nanoseconds), if the filesystem reports one.
    pub born: Option<(i64, u32)>,
}

/// What [`identify`] finds: device, inode, birth time, file type.
struct Found {
    dev: u64,
    ino: u64,
    born: Option<(i64, u32)>,
    kind: FileType,
}

/// Device, inode and birth time of the file `name` in `dir` (not following a
/// symlink), or of `dir` itself when `name` is empty.
fn identify(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> rustix::io::Result<Found> {
    use rustix::fs::StatxFlags;
    let flags = if name.is_empty() {
        AtFlags::EMPTY_PATH
    } else {
        AtFlags::SYMLINK_NOFOLLOW
    };
    let stat = rustix::fs::statx(
        dir,
        name,
        flags,
        StatxFlags::BASIC_STATS | StatxFlags::BTIME,
    )?;
    let has_birth = StatxFlags::from_bits_retain(stat.stx_mask).contains(StatxFlags::BTIME);
    Ok(Found {
        dev: rustix::fs::makedev(stat.stx_dev_major, stat.stx_dev_minor),
        ino: stat.stx_ino,
        born: has_birth.then_some((stat.stx_btime.tv_sec, stat.stx_btime.tv_nsec)),
        kind: FileType::from_raw_mode(stat.stx_mode.into()),
    })
}

impl FileIdentity {
    /// The identity of the file now at `path`.
    pub fn of_path(path: &Path) -> io::Result<FileIdentity> {
        let (dir, name) = open_directory(path)?;
        let found = identify(dir.as_fd(), &name)?;
        Ok(FileIdentity {
            path: path.to_owned(),
            dev: found.dev,
            ino: found.ino,
            born: found.born,
        })
    }

    /// The identity of an open file known to be at `path`.
    pub fn of_open(path: &Path, fd: BorrowedFd<'_>) -> io::Result<FileIdentity> {
        let found = identify(fd, std::ffi::OsStr::new(""))?;
        Ok(FileIdentity {
            path: path.to_owned(),
            dev: found.dev,
            ino: found.ino,
            born: found.born,
        })
    }

    /// Removes the file if it is still ours. Returns whether it removed it.
    pub fn remove_if_ours(&self) -> io::Result<bool> {
        self.in_its_directory()?.remove_if_ours()
    }

    /// The file's directory, opened now, and its name there.
    fn in_its_directory(&self) -> io::Result<Removal> {
        let (dir, name) = open_directory(&self.path)?;
        Ok(Removal {
            dir,
            name,
            dev: self.dev,
            ino: self.ino,
            born: self.born,
        })
    }
}

/// Opens the directory of `path` (`O_PATH`: for `*at` calls only) and returns it
/// with the file's name in it.
fn open_directory(path: &Path) -> io::Result<(OwnedFd, OsString)> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{} names no file", path.display())))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let fd = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok((fd, name.to_owned()))
}

/// A file the janitor removes: its directory (open since the janitor started),
/// its name there and its identity.
#[derive(Debug)]
struct Removal {
    dir: OwnedFd,
    name: OsString,
    dev: u64,
    ino: u64,
    born: Option<(i64, u32)>,
}

impl Removal {
    /// `statx` then `unlinkat` on the directory: removes the name if it is still
    /// our file (and not a directory). Returns whether it removed it.
    fn remove_if_ours(&self) -> io::Result<bool> {
        let found = match identify(self.dir.as_fd(), &self.name) {
            Ok(found) => found,
            Err(rustix::io::Errno::NOENT) => return Ok(false),
            Err(error) => return Err(error.into()),
        };
        let ours = found.dev == self.dev
            && found.ino == self.ino
            && (found.born.is_none() || self.born.is_none() || found.born == self.born)
            && found.kind != FileType::Directory;
        if !ours {
            return Ok(false);
        }
        match rustix::fs::unlinkat(&self.dir, &*self.name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }
}

/// Why the janitor could not be started.
#[derive(Debug, thiserror::Error)]
pub enum JanitorError {
    #[error("cannot create the janitor's pipe")]
    Pipe(#[source] io::Error),
    #[error("cannot fork the janitor process")]
    Fork(#[source] io::Error),
    #[error("cannot open the directory of {path} for the janitor")]
    Directory {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// How the janitor confines itself once it has shed its privileges.
#[derive(Debug, Default)]
pub struct JanitorConfinement {
    /// Its seccomp filter (`None`: `--seccomp=none`).
    pub seccomp: Option<seccompiler::BpfProgram>,
    /// Whether to apply its Landlock ruleset (`--no-landlock`: no).
    pub landlock: bool,
}

/// The daemon's side: dropping it (or exiting) releases the janitor.
#[derive(Debug)]
pub struct Janitor {
    pid: i32,
    pipe: Option<OwnedFd>,
}

impl Janitor {
    /// Forks the janitor for `files`, confined as `confinement` says. Must run
    /// while single-threaded.
    pub fn spawn(
        files: Vec<FileIdentity>,
        confinement: JanitorConfinement,
    ) -> Result<Janitor, JanitorError> {
        let removals = files
            .iter()
            .map(|file| {
                file.in_its_directory()
                    .map_err(|source| JanitorError::Directory {
                        path: file.path.clone(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (read_end, write_end) =
            pipe_with(PipeFlags::CLOEXEC).map_err(|e| JanitorError::Pipe(e.into()))?;
        match sys::fork().map_err(JanitorError::Fork)? {
            Forked::Child => {
                drop(write_end);
                janitor_main(read_end, &removals, &confinement)
            }
            Forked::Parent(pid) => Ok(Janitor {
                pid,
                pipe: Some(write_end),
            }),
        }
    }

    /// Lets the janitor clean up now and waits until it has. Returns the
    /// janitor's exit code (0: everything removed or already gone).
    pub fn finish(mut self) -> io::Result<i32> {
        self.pipe = None;
        let pid = Pid::from_raw(self.pid).ok_or_else(|| io::Error::other("janitor pid is 0"))?;
        loop {
            match waitpid(Some(pid), WaitOptions::empty()) {
                Ok(Some((_, status))) => {
                    return Ok(status.exit_status().unwrap_or(-1));
                }
                Ok(None) => continue,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The janitor process: never returns.
fn janitor_main(read_end: OwnedFd, files: &[Removal], confinement: &JanitorConfinement) -> ! {
    // Keep only the pipe and the directories: the listener and the pid file lock
    // belong to the daemon.
    let mut keep: Vec<i32> = files.iter().map(|file| file.dir.as_raw_fd()).collect();
    keep.push(read_end.as_raw_fd());
    let _ = sys::close_all_except(&keep);
    // Blocked for good (this process never unblocks them): a SIGTERM sent to
    // the whole process group stays pending instead of ending the janitor.
    let _ = signalmask::block_for_good(&[
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGHUP,
        nix::sys::signal::Signal::SIGPIPE,
    ]);
    if limit_privileges().is_err() {
        // A process that cannot shed root's capabilities must not stay around
        // for the daemon's lifetime; the files it would have removed are left
        // (the next start replaces a stale socket), and the daemon's orderly
        // exit reports this code.
        std::process::exit(LIMIT_FAILED);
    }
    if confine(files, confinement).is_err() {
        // As above: no janitor stays around less confined than it was asked to be.
        std::process::exit(LIMIT_FAILED);
    }
    let mut pipe = std::fs::File::from(read_end);
    let mut byte = [0u8; 1];
    // Nothing is ever written: the read returns when the daemon is gone.
    loop {
        match pipe.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let mut code = 0;
    for file in files {
        if file.remove_if_ours().is_err() {
            code = 1;
        }
    }
    std::process::exit(code)
}

/// Why the janitor could not confine itself.
#[derive(Debug, thiserror::Error)]
enum ConfineError {
    #[error("Landlock")]
    Landlock(#[from] crate::sandbox::LandlockError),
    #[error("cannot install the janitor's seccomp filter")]
    Seccomp(#[from] seccompiler::Error),
}

/// Landlock first (its syscalls are not in the janitor's filter), then seccomp.
/// A kernel without Landlock leaves only the filter.
fn confine(files: &[Removal], confinement: &JanitorConfinement) -> Result<(), ConfineError> {
    if confinement.landlock {
        let dirs: Vec<BorrowedFd<'_>> = files.iter().map(|file| file.dir.as_fd()).collect();
        crate::sandbox::landlock::restrict_janitor(&dirs)?;
    }
    if let Some(program) = &confinement.seccomp {
        seccompiler::apply_filter(program)?;
    }
    Ok(())
}

/// Exit code of a janitor that could not limit its privileges or confine itself.
const LIMIT_FAILED: i32 = 2;

/// Why the janitor could not limit its privileges.
#[derive(Debug, thiserror::Error)]
enum LimitError {
    #[error("cannot set the janitor's capabilities")]
    Caps(#[source] io::Error),
    #[error("cannot set NO_NEW_PRIVS")]
    NoNewPrivs(#[source] io::Error),
}

/// The janitor only unlinks files: CAP_DAC_OVERRIDE (for a directory root
/// does not own) if it has it, nothing else, and it can never gain more.
fn limit_privileges() -> Result<(), LimitError> {
    use rustix::thread::{CapabilitySet, CapabilitySets, clear_ambient_capability_set};
    let caps = |e: rustix::io::Errno| LimitError::Caps(e.into());
    // Kept only if held: under a unit whose bounding set lacks it, or as a
    // user other than root, there is none to keep, and the janitor removes
    // what its uid may (asking for it anyway would fail and leave the
    // files behind).
    let permitted = rustix::thread::capabilities(None).map_err(caps)?.permitted;
    let keep = CapabilitySet::DAC_OVERRIDE & permitted;
    clear_ambient_capability_set().map_err(caps)?;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: keep,
            permitted: keep,
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(caps)?;
    rustix::thread::set_no_new_privs(true).map_err(|e| LimitError::NoNewPrivs(e.into()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Capabilities and NO_NEW_PRIVS are per thread: a thread of its own
    /// keeps the rest of the test process untouched.
    #[test]
    fn limiting_keeps_only_dac_override_and_reports_success() {
        assert!(
            rustix::process::geteuid().is_root(),
            "needs root (the test machine runs as root)"
        );
        let status = std::thread::spawn(|| {
            limit_privileges().map_err(|e| e.to_string())?;
            std::fs::read_to_string("/proc/thread-self/status").map_err(|e| e.to_string())
        })
        .join()
        .unwrap()
        .unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{name}:")))
                .map(|value| value.trim().to_owned())
                .unwrap()
        };
        assert_eq!(field("CapEff"), "0000000000000002");
        assert_eq!(field("CapPrm"), "0000000000000002");
        assert_eq!(field("NoNewPrivs"), "1");
    }

    #[test]
    fn removes_only_our_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        std::fs::write(&path, b"a").unwrap();
        let ours = FileIdentity::of_path(&path).unwrap();
        // Replaced by someone else: same path, new inode.
        let other = dir.path().join("other");
        std::fs::write(&other, b"b").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert!(!ours.remove_if_ours().unwrap());
        assert!(path.exists());
        let now = FileIdentity::of_path(&path).unwrap();
        assert!(now.remove_if_ours().unwrap());
        assert!(!path.exists());
        assert!(!now.remove_if_ours().unwrap());
    }

    /// ext4 gives a freed inode number to the next file: a successor's file with our
    /// inode number is told apart by its birth time.
    #[test]
    fn a_successor_with_our_inode_number_is_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        std::fs::write(&path, b"a").unwrap();
        let ours = FileIdentity::of_path(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        std::fs::write(&path, b"b").unwrap();
        let successor = FileIdentity::of_path(&path).unwrap();
        assert_ne!(ours, successor);
        assert!(!ours.remove_if_ours().unwrap());
        assert!(path.exists());
    }

    /// The directory is the one opened at start: renaming it away and planting
    /// another with a file of the same name does not send the removal there.
    #[test]
    fn the_directory_opened_at_start_is_the_one_cleaned() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("run");
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("sock");
        std::fs::write(&path, b"a").unwrap();
        let removal = FileIdentity::of_path(&path)
            .unwrap()
            .in_its_directory()
            .unwrap();
        let moved = top.path().join("moved");
        std::fs::rename(&dir, &moved).unwrap();
        // A symlink where the directory was, to the moved directory's twin.
        std::os::unix::fs::symlink(&moved, &dir).unwrap();
        assert!(removal.remove_if_ours().unwrap());
        assert!(!moved.join("sock").exists());
        // A directory with the file's name is never removed, even if it has the inode.
        let inner = top.path().join("inner");
        std::fs::create_dir(&inner).unwrap();
        let as_dir = FileIdentity::of_path(&inner)
            .unwrap()
            .in_its_directory()
            .unwrap();
        assert!(!as_dir.remove_if_ours().unwrap());
        assert!(inner.exists());
    }
}
