//! The pid file, held with an exclusive `flock` for the daemon's lifetime
//! so that a second instance on the same file refuses to start.
//!
//! We open it as root, and writing our pid truncates it: a symbolic link at
//! the path is refused (`O_NOFOLLOW`), so a link planted there cannot make us
//! truncate another file, and so is anything but a regular file. A lock is
//! only trusted once the path still names the locked file: a previous
//! instance's janitor may unlink the file between our `open` and `flock`, and
//! a lock on an unlinked file would let a third instance start beside us.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use super::janitor::FileIdentity;

/// A pid file that cannot be taken, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    #[error("cannot open the pid file {path} (does its directory exist and is it writable?)")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "another pr-helper{} holds the pid file {path}: stop it first, or give this \
         instance its own -f PATH and -k PATH",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    Held { path: PathBuf, holder: Option<u32> },
    #[error(
        "the pid file {path} is {what}, not a regular file: remove it or choose another -f PATH"
    )]
    NotRegular { path: PathBuf, what: &'static str },
    #[error(
        "the pid file {path} kept being replaced while we locked it: is another instance \
         starting or stopping? Try again"
    )]
    Replaced { path: PathBuf },
    #[error("cannot lock the pid file {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write our pid into {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// How often [`PidFile::lock`] opens the path again when the file it locked
/// was replaced meanwhile.
const LOCK_ATTEMPTS: usize = 3;

/// Longest holder pid text read back for the error message.
const HOLDER_TEXT_MAX: u64 = 32;

/// Opens `path` read-write, creating it, without following a symbolic link,
/// and checks that it is a regular file.
fn open_regular(path: &Path) -> Result<File, PidFileError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| {
            let what = match source.raw_os_error() {
                Some(libc::ELOOP) => "a symbolic link",
                Some(libc::EISDIR) => "a directory",
                _ => {
                    return PidFileError::Open {
                        path: path.to_owned(),
                        source,
                    };
                }
            };
            PidFileError::NotRegular {
                path: path.to_owned(),
                what,
            }
        })?;
    let metadata = file.metadata().map_err(|source| PidFileError::Open {
        path: path.to_owned(),
        source,
    })?;
    if !metadata.is_file() {
        return Err(PidFileError::NotRegular {
            path: path.to_owned(),
            what: "a special file",
        });
    }
    Ok(file)
}

/// The pid another instance wrote, read without trusting the file's size.
fn read_holder(file: File) -> Option<u32> {
    let mut text = String::new();
    file.take(HOLDER_TEXT_MAX)
        .read_to_string(&mut text)
        .ok()
        .and_then(|_| text.trim().parse().ok())
}

/// Whether `path` (not following a link) is still the file open as `fd`.
fn names_open_file(path: &Path, fd: BorrowedFd<'_>) -> bool {
    match (std::fs::symlink_metadata(path), rustix::fs::fstat(fd)) {
        (Ok(at_path), Ok(open)) => at_path.dev() == open.st_dev && at_path.ino() == open.st_ino,
        _ => false,
    }
}

/// The locked pid file. The lock lives as long as this open file (and
/// copies of it across `fork`).
#[derive(Debug)]
pub struct PidFile {
    file: File,
    path: PathBuf,
}

impl PidFile {
    /// Opens (creating if needed) and locks `path` without blocking.
    pub fn lock(path: &Path) -> Result<PidFile, PidFileError> {
        // A file replaced between open and lock is retried; more than a few
        // replacements in a row is not a race we lose by chance.
        for _ in 0..LOCK_ATTEMPTS {
            let file = open_regular(path)?;
            match flock(file.as_fd(), FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    return Err(PidFileError::Held {
                        path: path.to_owned(),
                        holder: read_holder(file),
                    });
                }
                Err(e) => {
                    return Err(PidFileError::Lock {
                        path: path.to_owned(),
                        source: e.into(),
                    });
                }
            }
            if names_open_file(path, file.as_fd()) {
                return Ok(PidFile {
                    file,
                    path: path.to_owned(),
                });
            }
        }
        Err(PidFileError::Replaced {
            path: path.to_owned(),
        })
    }

    /// Replaces the file's content with `pid` (after a `-d` fork the pid
    /// is the daemon's, not the starting process's).
    pub fn write_pid(&mut self, pid: u32) -> Result<(), PidFileError> {
        let write = |file: &mut File| -> io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            file.write_all(format!("{pid}\n").as_bytes())?;
            file.sync_data()
        };
        write(&mut self.file).map_err(|source| PidFileError::Write {
            path: self.path.clone(),
            source,
        })
    }

    /// The path and identity of the file, for the janitor.
    pub fn identity(&self) -> io::Result<FileIdentity> {
        FileIdentity::of_open(&self.path, self.file.as_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("helper.pid");
        let mut first = PidFile::lock(&path).unwrap();
        first.write_pid(4242).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "4242\n");
        let err = PidFile::lock(&path).unwrap_err();
        assert!(
            matches!(
                err,
                PidFileError::Held {
                    holder: Some(4242),
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("(pid 4242)"), "{err}");
        drop(first);
        PidFile::lock(&path).unwrap();
    }

    #[test]
    fn shorter_pid_replaces_longer_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("helper.pid");
        std::fs::write(&path, "123456789\n").unwrap();
        let mut file = PidFile::lock(&path).unwrap();
        file.write_pid(7).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "7\n");
    }

    #[test]
    fn a_symbolic_link_is_refused_and_its_target_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me\n").unwrap();
        let path = dir.path().join("helper.pid");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = PidFile::lock(&path).unwrap_err();
        assert!(
            matches!(
                err,
                PidFileError::NotRegular {
                    what: "a symbolic link",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("choose another -f PATH"), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
    }

    #[test]
    fn a_directory_or_fifo_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = PidFile::lock(dir.path()).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let err = PidFile::lock(&fifo).unwrap_err();
        assert!(err.to_string().contains("is a special file"), "{err}");
    }

    #[test]
    fn a_lock_on_an_unlinked_file_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("helper.pid");
        let file = open_regular(&path).unwrap();
        assert!(names_open_file(&path, file.as_fd()));
        std::fs::remove_file(&path).unwrap();
        assert!(!names_open_file(&path, file.as_fd()));
        std::fs::write(&path, "").unwrap();
        assert!(
            !names_open_file(&path, file.as_fd()),
            "a new file at the path"
        );
    }

    #[test]
    fn missing_directory_is_a_clear_error() {
        let err = PidFile::lock(Path::new("/nonexistent-dir-xyz/helper.pid")).unwrap_err();
        assert!(
            err.to_string().contains("does its directory exist"),
            "{err}"
        );
    }
}
