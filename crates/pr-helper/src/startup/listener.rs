//! Binding the listening socket (when systemd did not pass one).

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use rustix::fs::{Gid, Mode, chmod, chown};
use rustix::net::{
    AddressFamily, SocketAddrUnix, SocketFlags, SocketType, bind, listen, socket_with,
};

/// Pending connections the kernel queues for us (it caps this at
/// `net.core.somaxconn`). qemu-pr-helper uses 1, which drops bursts.
pub const LISTEN_BACKLOG: i32 = 1024;

/// Longest socket path the kernel accepts (`sun_path` minus the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A socket that cannot be set up, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("another daemon is already serving on {0}: stop it first, or use another path with -k")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket: remove it or choose another path with -k")]
    NotASocket(PathBuf),
    #[error("cannot check the existing file at {path}")]
    Inspect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove the stale socket {path}")]
    RemoveStale {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("socket path {0} is longer than {MAX_SOCKET_PATH} bytes: choose a shorter -k path")]
    TooLong(PathBuf),
    #[error("cannot create the socket")]
    Create(#[source] io::Error),
    #[error("cannot bind the socket to {path} (does the directory exist and is it writable?)")]
    Bind {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot listen on {path}")]
    Listen {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot set the permissions of {path} (--socket-mode)")]
    Mode {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot give {path} to group {gid} (--socket-group; needs root)")]
    Group {
        path: PathBuf,
        gid: u32,
        #[source]
        source: io::Error,
    },
}

/// What binding did.
#[derive(Debug)]
pub struct Bound {
    pub listener: UnixListener,
    /// A socket left behind by a daemon that is gone was removed first.
    pub removed_stale: bool,
}

/// Binds and listens on `path`, removing a stale socket first and refusing
/// when a live daemon answers there. With `mode`, the socket is created
/// accessible to its owner only and then given `mode`, so there is no
/// moment where it is more open than asked.
pub fn bind_socket(
    path: &Path,
    mode: Option<u32>,
    gid: Option<u32>,
) -> Result<Bound, ListenerError> {
    if path.as_os_str().as_bytes().len() > MAX_SOCKET_PATH {
        return Err(ListenerError::TooLong(path.to_owned()));
    }
    let removed_stale = clear_stale(path)?;
    let address = SocketAddrUnix::new(path).map_err(|e| ListenerError::Bind {
        path: path.to_owned(),
        source: e.into(),
    })?;
    let fd = socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| ListenerError::Create(e.into()))?;
    let bound = match mode {
        Some(_) => {
            let previous = rustix::process::umask(Mode::from_raw_mode(0o177));
            let bound = bind(&fd, &address);
            rustix::process::umask(previous);
            bound
        }
        None => bind(&fd, &address),
    };
    bound.map_err(|e| ListenerError::Bind {
        path: path.to_owned(),
        source: e.into(),
    })?;
    if let Some(gid) = gid {
        let group = Gid::from_raw(gid);
        chown(path, None, Some(group)).map_err(|e| ListenerError::Group {
            path: path.to_owned(),
            gid,
            source: e.into(),
        })?;
    }
    if let Some(mode) = mode {
        chmod(path, Mode::from_raw_mode(mode)).map_err(|e| ListenerError::Mode {
            path: path.to_owned(),
            source: e.into(),
        })?;
    }
    listen(&fd, LISTEN_BACKLOG).map_err(|e| ListenerError::Listen {
        path: path.to_owned(),
        source: e.into(),
    })?;
    Ok(Bound {
        listener: UnixListener::from(fd),
        removed_stale,
    })
}

/// Removes a socket nobody listens on; refuses when someone does.
fn clear_stale(path: &Path) -> Result<bool, ListenerError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(ListenerError::Inspect {
                path: path.to_owned(),
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ListenerError::NotASocket(path.to_owned()));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(ListenerError::InUse(path.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path).map_err(|source| ListenerError::RemoveStale {
                path: path.to_owned(),
                source,
            })?;
            Ok(true)
        }
        Err(source) => Err(ListenerError::Inspect {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn binds_with_mode_and_replaces_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pr.sock");
        // A stale socket: bound, then its listener closed.
        drop(UnixListener::bind(&path).unwrap());
        let bound = bind_socket(&path, Some(0o660), None).unwrap();
        assert!(bound.removed_stale);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        UnixStream::connect(&path).unwrap();

        // Live: refused, and the live socket is left alone.
        let err = bind_socket(&path, None, None).unwrap_err();
        assert!(matches!(err, ListenerError::InUse(_)), "{err}");
        UnixStream::connect(&path).unwrap();
    }

    #[test]
    fn refuses_other_files_and_long_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("regular");
        std::fs::write(&path, b"x").unwrap();
        assert!(matches!(
            bind_socket(&path, None, None),
            Err(ListenerError::NotASocket(_))
        ));
        let long = dir.path().join("x".repeat(120));
        assert!(matches!(
            bind_socket(&long, None, None),
            Err(ListenerError::TooLong(_))
        ));
    }

    #[test]
    fn socket_group_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pr.sock");
        let _bound = bind_socket(&path, None, Some(65534)).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&path).unwrap().gid(), 65534);
    }
}
