//! Descriptors of every kind a test may send: regular files (read-write and read-only),
//! `/dev/null`, pipes, sockets. Loop devices are in [`crate::reference::LoopDevice`].

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use tempfile::NamedTempFile;

/// A regular file opened read-write (removed when dropped), with `len` zero bytes.
pub fn regular_file(len: u64) -> io::Result<NamedTempFile> {
    let file = NamedTempFile::new()?;
    file.as_file().set_len(len)?;
    Ok(file)
}

/// A read-only descriptor of a fresh regular file (the file is removed when the
/// returned guard is dropped).
pub fn read_only_file() -> io::Result<(File, NamedTempFile)> {
    let backing = regular_file(4096)?;
    let read_only = OpenOptions::new().read(true).open(backing.path())?;
    Ok((read_only, backing))
}

/// `/dev/null` opened read-write: a character device that is not a SCSI device.
pub fn dev_null() -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open("/dev/null")
}

/// Both ends of a pipe (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(io::Error::from)
}

/// A connected pair of Unix stream sockets.
pub fn socket_pair() -> io::Result<(UnixStream, UnixStream)> {
    UnixStream::pair()
}
