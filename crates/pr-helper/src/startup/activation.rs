//! systemd socket activation and readiness notification: what the
//! environment tells us at start.
//!
//! systemd passes listening sockets from descriptor 3 on, with `LISTEN_FDS`
//! (how many) and `LISTEN_PID` (the process they are meant for: a variable
//! inherited by some other process must be ignored). `NOTIFY_SOCKET` names
//! a datagram socket to which we write `READY=1` once serving.

use std::ffi::OsString;
use std::os::unix::net::UnixListener;

use rustix::io::{FdFlags, fcntl_setfd};
use rustix::net::{AddressFamily, SocketType, sockopt};

use super::sys;

/// The first descriptor systemd passes.
pub const LISTEN_FDS_START: i32 = 3;

const LISTEN_PID: &str = "LISTEN_PID";
const LISTEN_FDS: &str = "LISTEN_FDS";
const LISTEN_FDNAMES: &str = "LISTEN_FDNAMES";
const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// What the environment asked of us, read once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// A socket was passed on descriptor 3.
    pub activated: bool,
    /// Where to send `READY=1`, if anywhere.
    pub notify_socket: Option<OsString>,
}

/// Socket activation that cannot be used, and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error("LISTEN_FDS={0} is not a number: fix the unit's environment")]
    BadCount(String),
    #[error("LISTEN_PID={0} is not a number: fix the unit's environment")]
    BadPid(String),
    #[error(
        "systemd passed {0} sockets; this daemon serves exactly one: \
         keep a single ListenStream= in the .socket unit"
    )]
    TooMany(u32),
    #[error(
        "-k is not allowed with socket activation (systemd already passed the socket): \
         remove -k from the service, or set the path with ListenStream= in the .socket unit"
    )]
    SocketOptionWithActivation,
    #[error("the environment could not be cleaned up")]
    Unset(#[source] std::io::Error),
    #[error("descriptor 3 passed by systemd is not usable")]
    Descriptor(#[source] std::io::Error),
    #[error(
        "descriptor 3 passed by systemd is not a listening Unix stream socket: \
         use ListenStream=/absolute/path in the .socket unit"
    )]
    NotUnixStreamListener,
}

impl Environment {
    /// Reads the activation variables for this process (`pid`) and removes
    /// them so nothing we start inherits them. Must run while the process
    /// is single-threaded.
    pub fn take(pid: u32) -> Result<Environment, ActivationError> {
        let parsed = Self::parse(
            pid,
            std::env::var(LISTEN_PID).ok().as_deref(),
            std::env::var(LISTEN_FDS).ok().as_deref(),
            std::env::var_os(NOTIFY_SOCKET),
        );
        sys::remove_env_vars(&[LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES, NOTIFY_SOCKET])
            .map_err(ActivationError::Unset)?;
        parsed
    }

    /// The decision, from the variables' values.
    pub fn parse(
        pid: u32,
        listen_pid: Option<&str>,
        listen_fds: Option<&str>,
        notify_socket: Option<OsString>,
    ) -> Result<Environment, ActivationError> {
        let notify_socket = notify_socket.filter(|path| !path.is_empty());
        let for_us = match listen_pid {
            None => false,
            Some(text) => {
                let target: u32 = text
                    .trim()
                    .parse()
                    .map_err(|_| ActivationError::BadPid(text.to_owned()))?;
                target == pid
            }
        };
        let count = match (for_us, listen_fds) {
            (true, Some(text)) => text
                .trim()
                .parse::<u32>()
                .map_err(|_| ActivationError::BadCount(text.to_owned()))?,
            _ => 0,
        };
        match count {
            0 => Ok(Environment {
                activated: false,
                notify_socket,
            }),
            1 => Ok(Environment {
                activated: true,
                notify_socket,
            }),
            many => Err(ActivationError::TooMany(many)),
        }
    }
}

/// Takes descriptor 3 as our listener: checks that it is a listening Unix
/// stream socket and marks it close-on-exec.
pub fn take_listener() -> Result<UnixListener, ActivationError> {
    let fd = sys::take_inherited_fd(LISTEN_FDS_START).map_err(ActivationError::Descriptor)?;
    fcntl_setfd(&fd, FdFlags::CLOEXEC).map_err(|e| ActivationError::Descriptor(e.into()))?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| ActivationError::Descriptor(e.into()))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Socket {
        return Err(ActivationError::NotUnixStreamListener);
    }
    let family = sockopt::socket_domain(&fd).map_err(|e| ActivationError::Descriptor(e.into()))?;
    let kind = sockopt::socket_type(&fd).map_err(|e| ActivationError::Descriptor(e.into()))?;
    let listening =
        sockopt::socket_acceptconn(&fd).map_err(|e| ActivationError::Descriptor(e.into()))?;
    if family != AddressFamily::UNIX || kind != SocketType::STREAM || !listening {
        return Err(ActivationError::NotUnixStreamListener);
    }
    Ok(UnixListener::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        listen_pid: Option<&str>,
        listen_fds: Option<&str>,
    ) -> Result<Environment, ActivationError> {
        Environment::parse(42, listen_pid, listen_fds, None)
    }

    #[test]
    fn activation_needs_our_pid_and_one_socket() {
        assert!(parse(Some("42"), Some("1")).unwrap().activated);
        assert!(!parse(Some("41"), Some("1")).unwrap().activated);
        assert!(!parse(None, Some("1")).unwrap().activated);
        assert!(!parse(Some("42"), None).unwrap().activated);
        assert!(!parse(Some("42"), Some("0")).unwrap().activated);
        assert!(matches!(
            parse(Some("42"), Some("3")),
            Err(ActivationError::TooMany(3))
        ));
        // Several sockets meant for another process are not our problem.
        assert!(!parse(Some("41"), Some("3")).unwrap().activated);
        assert!(matches!(
            parse(Some("x"), Some("1")),
            Err(ActivationError::BadPid(_))
        ));
        assert!(matches!(
            parse(Some("42"), Some("one")),
            Err(ActivationError::BadCount(_))
        ));
    }

    #[test]
    fn empty_notify_socket_is_ignored() {
        let env = Environment::parse(1, None, None, Some(OsString::new())).unwrap();
        assert_eq!(env.notify_socket, None);
        let env = Environment::parse(1, None, None, Some("@x".into())).unwrap();
        assert_eq!(env.notify_socket, Some("@x".into()));
    }
}
