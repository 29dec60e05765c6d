//! Readiness notification to systemd (`Type=notify`).

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// A datagram socket for `NOTIFY_SOCKET` (a path, or an abstract name
/// written with a leading `@`), created before the daemon confines itself
/// (the seccomp filter allows no new socket) and used once ready.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    address: SocketAddr,
}

impl Notifier {
    /// The socket and the address it sends to.
    pub fn open(socket: &OsStr) -> io::Result<Self> {
        let bytes = socket.as_bytes();
        let address = match bytes.split_first() {
            Some((b'@', name)) => SocketAddr::from_abstract_name(name)?,
            _ => SocketAddr::from_pathname(socket)?,
        };
        Ok(Self {
            socket: UnixDatagram::unbound()?,
            address,
        })
    }

    /// Sends `READY=1`.
    pub fn ready(self) -> io::Result<()> {
        self.socket.send_to_addr(b"READY=1\n", &self.address)?;
        Ok(())
    }
}

/// Sends `READY=1` to the datagram socket `NOTIFY_SOCKET` names.
pub fn notify_ready(socket: &OsStr) -> io::Result<()> {
    Notifier::open(socket)?.ready()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reaches_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        notify_ready(path.as_os_str()).unwrap();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
    }

    #[test]
    fn ready_reaches_abstract_socket() {
        let name = format!("pr-helper-notify-test-{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&address).unwrap();
        notify_ready(OsStr::new(&format!("@{name}"))).unwrap();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
    }
}
