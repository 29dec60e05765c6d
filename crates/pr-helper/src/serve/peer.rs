//! Who is on the other end of a connection, and whether they may talk to us.

use std::fmt;
use std::io;
use std::os::fd::AsFd;

use crate::backend::PeerInfo;

/// A connected peer's credentials as the kernel recorded them at `connect`
/// (SO_PEERCRED, through nix: its pid is a plain integer, so a peer outside our pid
/// namespace, which the kernel reports as pid 0, is no trouble; rustix's type holds
/// the pid as a non-zero number).
pub(crate) fn credentials(stream: impl AsFd) -> io::Result<PeerInfo> {
    let cred = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(io::Error::from)?;
    Ok(PeerInfo {
        pid: cred.pid(),
        uid: cred.uid(),
        gid: cred.gid(),
    })
}

/// The optional uid and gid allowlists. A peer must pass both lists that are set.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    uids: Option<Vec<u32>>,
    gids: Option<Vec<u32>>,
}

impl Allowlist {
    /// Builds the allowlist; `None` for a list means "anyone".
    pub fn new(uids: Option<Vec<u32>>, gids: Option<Vec<u32>>) -> Self {
        Self { uids, gids }
    }

    /// Whether `peer` may be served.
    pub fn admits(&self, peer: &PeerInfo) -> bool {
        let uid_ok = self
            .uids
            .as_ref()
            .is_none_or(|uids| uids.contains(&peer.uid));
        let gid_ok = self
            .gids
            .as_ref()
            .is_none_or(|gids| gids.contains(&peer.gid));
        uid_ok && gid_ok
    }
}

impl fmt::Display for PeerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid={} uid={} gid={}", self.pid, self.uid, self.gid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: PeerInfo = PeerInfo {
        pid: 10,
        uid: 1000,
        gid: 100,
    };

    #[test]
    fn empty_allowlist_admits_everyone() {
        assert!(Allowlist::default().admits(&ALICE));
    }

    #[test]
    fn uid_list_filters_on_uid_only() {
        assert!(Allowlist::new(Some(vec![1000]), None).admits(&ALICE));
        assert!(!Allowlist::new(Some(vec![0]), None).admits(&ALICE));
    }

    #[test]
    fn both_lists_must_pass() {
        assert!(Allowlist::new(Some(vec![1000]), Some(vec![100])).admits(&ALICE));
        assert!(!Allowlist::new(Some(vec![1000]), Some(vec![0])).admits(&ALICE));
    }

    #[test]
    fn peer_credentials_of_a_socketpair_are_our_own() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        let peer = credentials(&a).expect("SO_PEERCRED");
        assert_eq!(peer.pid, i32::try_from(std::process::id()).expect("pid"));
        assert_eq!(peer.uid, rustix::process::getuid().as_raw());
        assert_eq!(peer.gid, rustix::process::getgid().as_raw());
    }
}
