//! Binding the listening socket (when systemd did not pass one).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, chmod, chownat, fstat};
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
    #[error(
        "{path} was replaced right after we bound it (now not our socket): is someone \
         else writing to its directory? Use a directory only root can write to"
    )]
    Replaced { path: PathBuf },
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
///
/// The socket is bound and made to listen under a temporary name in the same
/// directory and only then renamed to `path`, so `path` never names a socket
/// that refuses connections. libvirt polls for the socket file and starts
/// QEMU as soon as it exists: a socket bound but not yet listening made that
/// QEMU fail with "Connection refused" (seen in the libvirt start test under
/// load).
pub fn bind_socket(
    path: &Path,
    mode: Option<u32>,
    gid: Option<u32>,
) -> Result<Bound, ListenerError> {
    if path.as_os_str().as_bytes().len() > MAX_SOCKET_PATH {
        return Err(ListenerError::TooLong(path.to_owned()));
    }
    let removed_stale = clear_stale(path)?;
    // Where the temporary name would not fit in `sun_path`, bind in place
    // (the window between bind and listen is then back, and only then).
    let staging = staging_path(path)
        .filter(|staging| staging.as_os_str().as_bytes().len() <= MAX_SOCKET_PATH);
    let bind_at = staging.as_deref().unwrap_or(path);
    if staging.is_some() {
        remove_leftover_staging(bind_at);
    }
    let listener = bind_and_listen(bind_at, mode, gid).inspect_err(|_| {
        if staging.is_some() {
            let _ = std::fs::remove_file(bind_at);
        }
    })?;
    if staging.is_some() {
        publish(bind_at, path)?;
    }
    Ok(Bound {
        listener,
        removed_stale,
    })
}

fn bind_and_listen(
    path: &Path,
    mode: Option<u32>,
    gid: Option<u32>,
) -> Result<UnixListener, ListenerError> {
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
    if mode.is_some() || gid.is_some() {
        set_owner_and_mode(path, mode, gid)?;
    }
    listen(&fd, LISTEN_BACKLOG).map_err(|e| ListenerError::Listen {
        path: path.to_owned(),
        source: e.into(),
    })?;
    Ok(UnixListener::from(fd))
}

/// `.NAME.PID.bind` beside `path`: ours alone while this process lives.
fn staging_path(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?;
    let mut staging = std::ffi::OsString::from(".");
    staging.push(name);
    staging.push(format!(".{}.bind", std::process::id()));
    Some(path.with_file_name(staging))
}

/// A staging socket of an earlier process that had our pid and died
/// between bind and rename; nothing else uses that name.
fn remove_leftover_staging(staging: &Path) {
    if std::fs::symlink_metadata(staging).is_ok_and(|meta| meta.file_type().is_socket()) {
        let _ = std::fs::remove_file(staging);
    }
}

/// Moves the listening socket from its staging name to `path`, never over a
/// socket another daemon put there since the stale check.
fn publish(staging: &Path, path: &Path) -> Result<(), ListenerError> {
    let renamed = rustix::fs::renameat_with(
        rustix::fs::CWD,
        staging,
        rustix::fs::CWD,
        path,
        rustix::fs::RenameFlags::NOREPLACE,
    );
    renamed.map_err(|errno| {
        let _ = std::fs::remove_file(staging);
        if errno == rustix::io::Errno::EXIST {
            ListenerError::InUse(path.to_owned())
        } else {
            ListenerError::Bind {
                path: path.to_owned(),
                source: errno.into(),
            }
        }
    })
}

/// Gives the socket node at `path` its group and mode through a descriptor of
/// the node itself, not by path: whoever can write the socket's directory
/// could otherwise swap in a symbolic link between `bind` and `chmod` and have
/// root chown and chmod any file it points to.
fn set_owner_and_mode(
    path: &Path,
    mode: Option<u32>,
    gid: Option<u32>,
) -> Result<(), ListenerError> {
    let node = open_socket_node(path)?;
    if let Some(gid) = gid {
        chownat(
            &node,
            "",
            None,
            Some(Gid::from_raw(gid)),
            AtFlags::EMPTY_PATH,
        )
        .map_err(|e| ListenerError::Group {
            path: path.to_owned(),
            gid,
            source: e.into(),
        })?;
    }
    if let Some(mode) = mode {
        // Linux has no fchmod for an O_PATH descriptor; its /proc magic link
        // names the node itself, never what a path now points to.
        let by_descriptor = format!("/proc/self/fd/{}", node.as_raw_fd());
        chmod(by_descriptor.as_str(), Mode::from_raw_mode(mode)).map_err(|e| {
            ListenerError::Mode {
                path: path.to_owned(),
                source: e.into(),
            }
        })?;
    }
    Ok(())
}

/// An `O_PATH` descriptor of the socket node at `path`; a symbolic link or any
/// other kind of file there means it was replaced.
fn open_socket_node(path: &Path) -> Result<OwnedFd, ListenerError> {
    let replaced = || ListenerError::Replaced {
        path: path.to_owned(),
    };
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let node = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(node) => node,
        Err(rustix::io::Errno::LOOP) => return Err(replaced()),
        Err(e) => {
            return Err(ListenerError::Inspect {
                path: path.to_owned(),
                source: e.into(),
            });
        }
    };
    let stat = fstat(&node).map_err(|e| ListenerError::Inspect {
        path: path.to_owned(),
        source: e.into(),
    })?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Socket => Ok(node),
        _ => Err(replaced()),
    }
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

    /// What libvirt does: poll for the socket file, connect the moment it
    /// exists. The path must never name a socket that is not listening yet.
    #[test]
    fn the_socket_appears_only_once_it_listens() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pr.sock");
        for round in 0..300 {
            let stop = AtomicBool::new(false);
            let refused = std::thread::scope(|scope| {
                let poller = scope.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        if std::fs::symlink_metadata(&path).is_ok() {
                            return UnixStream::connect(&path).err();
                        }
                        std::hint::spin_loop();
                    }
                    None
                });
                let bound = bind_socket(&path, Some(0o600), None);
                stop.store(true, Ordering::Relaxed);
                let refused = poller.join().unwrap();
                drop(bound.unwrap());
                refused
            });
            assert!(
                refused.is_none(),
                "round {round}: the socket path existed but connect failed: {refused:?}"
            );
            std::fs::remove_file(&path).unwrap();
        }
        // Nothing is left under the staging name.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(names.is_empty(), "{names:?}");
    }

    /// A daemon that bound the path after our stale check wins; ours is
    /// refused as a second daemon and its staging socket is removed.
    #[test]
    fn publishing_never_replaces_a_socket_that_appeared_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pr.sock");
        let staging = staging_path(&path).unwrap();
        let _theirs = UnixListener::bind(&path).unwrap();
        let _ours = UnixListener::bind(&staging).unwrap();
        let err = publish(&staging, &path).unwrap_err();
        assert!(matches!(err, ListenerError::InUse(_)), "{err}");
        assert!(!staging.exists());
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

    /// The window between `bind` and `chmod`, replayed: a link now stands
    /// where the socket was. Neither its target's mode nor its group change.
    #[test]
    fn a_link_swapped_in_for_the_socket_is_not_followed() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("secret");
        std::fs::write(&target, b"x").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let path = dir.path().join("pr.sock");
        std::os::unix::fs::symlink(&target, &path).unwrap();

        let err = set_owner_and_mode(&path, Some(0o666), Some(65534)).unwrap_err();

        assert!(matches!(err, ListenerError::Replaced { .. }), "{err}");
        let meta = std::fs::metadata(&target).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.gid(), rustix::process::getegid().as_raw());

        // A regular file in its place is refused too.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"y").unwrap();
        let err = set_owner_and_mode(&path, Some(0o666), None).unwrap_err();
        assert!(matches!(err, ListenerError::Replaced { .. }), "{err}");
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
