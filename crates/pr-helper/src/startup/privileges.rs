//! Dropping privileges: the daemon needs one capability, CAP_SYS_RAWIO,
//! which the kernel requires for PERSISTENT RESERVE IN/OUT through SG_IO
//! (a backend may ask for more with [`drop_privileges_keeping`]: the
//! multipath backend's CAP_SYS_ADMIN). Everything else goes, for good:
//!
//! 1. the bounding set is emptied (no later exec can regain anything);
//! 2. the inheritable and ambient sets are emptied;
//! 3. with `-u`/`-g`: supplementary groups dropped, gid then uid switched,
//!    with PR_SET_KEEPCAPS so the permitted set survives the uid change;
//! 4. permitted and effective are set to the kept set alone (CAP_SYS_RAWIO);
//!    with multipath support on (and device-mapper present: its control node
//!    opened), CAP_SYS_ADMIN (device-mapper's table and status ioctls) and,
//!    with `-u`, CAP_DAC_READ_SEARCH (opening a map's path nodes read-only)
//!    stay in the permitted set only: the multipath code raises them in one
//!    thread's effective set around the one call that needs them;
//! 5. NO_NEW_PRIVS, so no set-uid program or file capability can add any.
//!
//! Capabilities and ids are per thread in the kernel: this runs while the
//! process is single-threaded (checked: it refuses otherwise), before the
//! runtime starts its threads, which then inherit the result.

use rustix::process::{Gid, Uid};
use rustix::thread::{CapabilitySet, CapabilitySets};

use super::ids::SwitchTo;
use super::sys;

/// The capabilities kept after the drop, when the process has them:
/// CAP_SYS_RAWIO for SG_IO persistent reservations; a backend that needs
/// more (the multipath backend: CAP_SYS_ADMIN for device-mapper) adds it.
pub const SG_IO_CAPABILITIES: CapabilitySet = CapabilitySet::SYS_RAWIO;

/// A privilege step that failed, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("cannot read this process's capabilities")]
    Read(#[source] std::io::Error),
    #[error(
        "-u/-g need root (or CAP_SETUID, CAP_SETGID and CAP_SETPCAP): start as root, \
         or drop -u/-g"
    )]
    NotPrivileged,
    #[error(
        "the privilege switch must run while the process is single-threaded \
         (capabilities and ids are per thread, and a thread started earlier would keep root's)"
    )]
    NotSingleThreaded(#[source] std::io::Error),
    #[error("cannot clear the capability bounding set (capability {cap})")]
    Bounding {
        cap: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot clear the ambient capability set")]
    ClearAmbient(#[source] std::io::Error),
    #[error("cannot keep capabilities across the uid change (PR_SET_KEEPCAPS)")]
    KeepCaps(#[source] std::io::Error),
    #[error("cannot drop supplementary groups")]
    Groups(#[source] std::io::Error),
    #[error("cannot switch to gid {0}")]
    Gid(u32, #[source] std::io::Error),
    #[error("cannot switch to uid {0}")]
    Uid(u32, #[source] std::io::Error),
    #[error("cannot reduce the capability sets to {kept:?}")]
    Set {
        kept: CapabilitySet,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set NO_NEW_PRIVS")]
    NoNewPrivs(#[source] std::io::Error),
}

/// What the drop achieved, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// CAP_SYS_RAWIO is effective (without it PR commands fail with EPERM).
    pub has_rawio: bool,
    /// The bounding set could be emptied (needs CAP_SETPCAP).
    pub bounding_cleared: bool,
    /// The capabilities kept (those of the wanted set the process had).
    pub kept: CapabilitySet,
}

/// What the multipath backend keeps permitted (never effective): CAP_SYS_ADMIN
/// for device-mapper's ioctls and, after a switch to a uid other than root,
/// CAP_DAC_READ_SEARCH to open a map's path nodes read-only.
pub fn multipath_capabilities(switch: Option<&SwitchTo>) -> CapabilitySet {
    let leaves_root = switch.is_some_and(|s| s.uid.is_some_and(|uid| uid != 0));
    if leaves_root {
        CapabilitySet::SYS_ADMIN | CapabilitySet::DAC_READ_SEARCH
    } else {
        CapabilitySet::SYS_ADMIN
    }
}

/// Applies the steps above, keeping [`SG_IO_CAPABILITIES`], plus
/// [`multipath_capabilities`] permitted only when `multipath` is on.
pub fn drop_privileges(
    switch: Option<SwitchTo>,
    multipath: bool,
) -> Result<Dropped, PrivilegeError> {
    let permitted_only = if multipath {
        multipath_capabilities(switch.as_ref())
    } else {
        CapabilitySet::empty()
    };
    drop_privileges_keeping(switch, SG_IO_CAPABILITIES, permitted_only)
}

/// Applies the steps above, keeping those of `keep` (effective and permitted)
/// and of `permitted_only` (permitted alone) that the process has. Without
/// privileges (an unprivileged test run) and without `-u`/`-g`, does what
/// an unprivileged process may. Refuses unless the process is
/// single-threaded.
pub fn drop_privileges_keeping(
    switch: Option<SwitchTo>,
    keep: CapabilitySet,
    permitted_only: CapabilitySet,
) -> Result<Dropped, PrivilegeError> {
    match sys::is_single_threaded() {
        Ok(true) => {}
        Ok(false) => {
            return Err(PrivilegeError::NotSingleThreaded(std::io::Error::other(
                "/proc/self/status counts more than one thread",
            )));
        }
        Err(error) => return Err(PrivilegeError::NotSingleThreaded(error)),
    }
    drop_on_this_thread(switch, keep, permitted_only)
}

/// The drop itself, on the calling thread only (the unit tests run it on a
/// thread of their own).
fn drop_on_this_thread(
    switch: Option<SwitchTo>,
    keep: CapabilitySet,
    permitted_only: CapabilitySet,
) -> Result<Dropped, PrivilegeError> {
    let permitted = rustix::thread::capabilities(None)
        .map_err(|e| PrivilegeError::Read(e.into()))?
        .permitted;
    let may_setpcap = permitted.contains(CapabilitySet::SETPCAP);
    if switch.is_some()
        && !(may_setpcap && permitted.contains(CapabilitySet::SETUID | CapabilitySet::SETGID))
    {
        return Err(PrivilegeError::NotPrivileged);
    }
    let kept = permitted & keep;
    let kept_permitted = kept | (permitted & permitted_only);

    if may_setpcap {
        clear_bounding_set()?;
    }
    rustix::thread::clear_ambient_capability_set()
        .map_err(|e| PrivilegeError::ClearAmbient(e.into()))?;

    if let Some(switch) = switch {
        switch_ids(switch)?;
    }

    // One capset: effective, permitted and inheritable at once (effective
    // stays a subset of permitted).
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: kept,
            permitted: kept_permitted,
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(|e| PrivilegeError::Set {
        kept: kept_permitted,
        source: e.into(),
    })?;
    rustix::thread::set_no_new_privs(true).map_err(|e| PrivilegeError::NoNewPrivs(e.into()))?;
    Ok(Dropped {
        has_rawio: kept.contains(CapabilitySet::SYS_RAWIO),
        bounding_cleared: may_setpcap,
        kept,
    })
}

/// Every capability the kernel knows, not only those rustix names, so
/// that CapBnd really ends up 0.
fn clear_bounding_set() -> Result<(), PrivilegeError> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .unwrap_or(63)
        .min(63);
    for cap in 0..=last {
        let one = CapabilitySet::from_bits_retain(1u64 << cap);
        match rustix::thread::remove_capability_from_bounding_set(one) {
            Ok(()) => {}
            // Beyond what this kernel supports: nothing to drop.
            Err(rustix::io::Errno::INVAL) => break,
            Err(source) => {
                return Err(PrivilegeError::Bounding {
                    cap,
                    source: source.into(),
                });
            }
        }
    }
    Ok(())
}

fn switch_ids(switch: SwitchTo) -> Result<(), PrivilegeError> {
    rustix::thread::set_keep_capabilities(true).map_err(|e| PrivilegeError::KeepCaps(e.into()))?;
    rustix::thread::set_thread_groups(&[]).map_err(|e| PrivilegeError::Groups(e.into()))?;
    if let Some(gid) = switch.gid {
        let id = Gid::from_raw(gid);
        rustix::thread::set_thread_res_gid(id, id, id)
            .map_err(|e| PrivilegeError::Gid(gid, e.into()))?;
    }
    if let Some(uid) = switch.uid {
        let id = Uid::from_raw(uid);
        rustix::thread::set_thread_res_uid(id, id, id)
            .map_err(|e| PrivilegeError::Uid(uid, e.into()))?;
    }
    rustix::thread::set_keep_capabilities(false).map_err(|e| PrivilegeError::KeepCaps(e.into()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_status(field: &str) -> String {
        let text = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{field}:")))
            .map(|value| value.trim().to_owned())
            .unwrap()
    }

    // Capabilities, ids (through rustix's per-thread calls) and
    // NO_NEW_PRIVS all belong to a thread: a thread of its own keeps the
    // rest of the test process untouched.
    #[test]
    fn a_backend_can_keep_cap_sys_admin_besides_cap_sys_rawio() {
        assert!(
            rustix::process::geteuid().is_root(),
            "needs root (the test machine runs as root)"
        );
        let (dropped, eff, prm, bnd) = std::thread::spawn(|| {
            let keep = SG_IO_CAPABILITIES | CapabilitySet::SYS_ADMIN;
            let dropped = drop_on_this_thread(None, keep, CapabilitySet::empty()).unwrap();
            (
                dropped,
                thread_status("CapEff"),
                thread_status("CapPrm"),
                thread_status("CapBnd"),
            )
        })
        .join()
        .unwrap();
        assert_eq!(
            dropped.kept,
            CapabilitySet::SYS_RAWIO | CapabilitySet::SYS_ADMIN
        );
        // CAP_SYS_RAWIO is bit 17, CAP_SYS_ADMIN bit 21.
        assert_eq!(
            (eff.as_str(), prm.as_str()),
            ("0000000000220000", "0000000000220000")
        );
        assert_eq!(bnd, "0000000000000000");
    }

    #[test]
    fn the_switch_refuses_a_multi_threaded_process() {
        // A second thread, alive during the call.
        let (stop, parked) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || parked.recv());
        let refused = drop_privileges(None, false).unwrap_err();
        drop(stop);
        let _ = other.join();
        assert!(
            matches!(refused, PrivilegeError::NotSingleThreaded(_)),
            "{refused}"
        );
    }

    #[test]
    fn drop_in_a_thread_of_its_own() {
        assert!(
            rustix::process::geteuid().is_root(),
            "needs root (the test machine runs as root)"
        );
        let report = std::thread::spawn(|| {
            let dropped = drop_on_this_thread(
                Some(SwitchTo {
                    uid: Some(65534),
                    gid: Some(65534),
                }),
                SG_IO_CAPABILITIES,
                CapabilitySet::empty(),
            )
            .unwrap();
            let fields = [
                "Uid",
                "Gid",
                "Groups",
                "CapEff",
                "CapPrm",
                "CapBnd",
                "NoNewPrivs",
            ]
            .map(|field| (field, thread_status(field)));
            (dropped, fields)
        })
        .join()
        .unwrap();
        let (dropped, fields) = report;
        assert!(dropped.has_rawio && dropped.bounding_cleared);
        let expected = [
            ("Uid", "65534\t65534\t65534\t65534"),
            ("Gid", "65534\t65534\t65534\t65534"),
            ("Groups", ""),
            ("CapEff", "0000000000020000"),
            ("CapPrm", "0000000000020000"),
            ("CapBnd", "0000000000000000"),
            ("NoNewPrivs", "1"),
        ];
        for ((field, value), (want_field, want)) in fields.iter().zip(expected) {
            assert_eq!((*field, value.as_str()), (want_field, want));
        }
    }

    // With multipath support: CAP_SYS_ADMIN (bit 21) and CAP_DAC_READ_SEARCH (bit 2)
    // are permitted, never effective; effective stays CAP_SYS_RAWIO (bit 17) alone.
    #[test]
    fn multipath_keeps_two_capabilities_permitted_only() {
        assert!(rustix::process::geteuid().is_root(), "needs root");
        let (eff, prm) = std::thread::spawn(|| {
            let switch = SwitchTo {
                uid: Some(65534),
                gid: Some(65534),
            };
            let extra = multipath_capabilities(Some(&switch));
            drop_on_this_thread(Some(switch), SG_IO_CAPABILITIES, extra).unwrap();
            (thread_status("CapEff"), thread_status("CapPrm"))
        })
        .join()
        .unwrap();
        assert_eq!(eff, "0000000000020000");
        assert_eq!(prm, "0000000000220004");
    }
}
