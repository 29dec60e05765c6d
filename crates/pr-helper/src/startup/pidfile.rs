//! The pid file, held with an exclusive `flock` for the daemon's lifetime
//! so that a second instance on the same file refuses to start.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
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
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map_err(|source| PidFileError::Open {
                path: path.to_owned(),
                source,
            })?;
        match flock(file.as_fd(), FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(PidFile {
                file,
                path: path.to_owned(),
            }),
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut text = String::new();
                let holder = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                Err(PidFileError::Held {
                    path: path.to_owned(),
                    holder,
                })
            }
            Err(e) => Err(PidFileError::Lock {
                path: path.to_owned(),
                source: e.into(),
            }),
        }
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
    fn missing_directory_is_a_clear_error() {
        let err = PidFile::lock(Path::new("/nonexistent-dir-xyz/helper.pid")).unwrap_err();
        assert!(
            err.to_string().contains("does its directory exist"),
            "{err}"
        );
    }
}
