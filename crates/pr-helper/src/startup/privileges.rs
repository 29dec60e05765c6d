//! Dropping privileges: the daemon needs exactly one capability,
//! CAP_SYS_RAWIO, which the kernel requires for PERSISTENT RESERVE IN/OUT
//! through SG_IO. Everything else goes, for good:
//!
//! 1. the bounding set is emptied (no later exec can regain anything);
//! 2. the inheritable and ambient sets are emptied;
//! 3. with `-u`/`-g`: supplementary groups dropped, gid then uid switched,
//!    with PR_SET_KEEPCAPS so the permitted set survives the uid change;
//! 4. permitted and effective are set to CAP_SYS_RAWIO alone; with multipath
//!    support on (and device-mapper present: its control node opened), CAP_SYS_ADMIN (device-mapper's table and status ioctls) and,
//!    with `-u`, CAP_DAC_READ_SEARCH (opening a map's path nodes read-only) stay
//!    in the permitted set only: the multipath code raises them in one thread's
//!    effective set around the one call that needs them;
//! 5. NO_NEW_PRIVS, so no set-uid program or file capability can add any.
//!
//! Capabilities and ids are per thread in the kernel: this runs while the
//! process is single-threaded, before the runtime starts its threads,
//! which then inherit the result.

use caps::{CapSet, Capability, CapsHashSet};
use rustix::process::{Gid, Uid};

use super::ids::SwitchTo;
use super::sys;

/// A privilege step that failed, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("cannot read this process's capabilities")]
    Read(#[source] caps::errors::CapsError),
    #[error(
        "-u/-g need root (or CAP_SETUID, CAP_SETGID and CAP_SETPCAP): start as root, \
         or drop -u/-g"
    )]
    NotPrivileged,
    #[error("cannot clear the capability bounding set (capability {cap})")]
    Bounding {
        cap: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot clear the {set} capability set")]
    Clear {
        set: &'static str,
        #[source]
        source: caps::errors::CapsError,
    },
    #[error("cannot keep capabilities across the uid change (PR_SET_KEEPCAPS)")]
    KeepCaps(#[source] std::io::Error),
    #[error("cannot drop supplementary groups")]
    Groups(#[source] std::io::Error),
    #[error("cannot switch to gid {0}")]
    Gid(u32, #[source] std::io::Error),
    #[error("cannot switch to uid {0}")]
    Uid(u32, #[source] std::io::Error),
    #[error("cannot set the {set} capability set to CAP_SYS_RAWIO only")]
    Set {
        set: &'static str,
        #[source]
        source: caps::errors::CapsError,
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
}

/// Applies the steps above. Without privileges (an unprivileged test run)
/// and without `-u`/`-g`, does what an unprivileged process may.
pub fn drop_privileges(
    switch: Option<SwitchTo>,
    multipath: bool,
) -> Result<Dropped, PrivilegeError> {
    let permitted = caps::read(None, CapSet::Permitted).map_err(PrivilegeError::Read)?;
    let may_setpcap = permitted.contains(&Capability::CAP_SETPCAP);
    if switch.is_some()
        && !(may_setpcap
            && permitted.contains(&Capability::CAP_SETUID)
            && permitted.contains(&Capability::CAP_SETGID))
    {
        return Err(PrivilegeError::NotPrivileged);
    }
    let has_rawio = permitted.contains(&Capability::CAP_SYS_RAWIO);
    let keep: CapsHashSet = if has_rawio {
        [Capability::CAP_SYS_RAWIO].into_iter().collect()
    } else {
        CapsHashSet::new()
    };
    let mut permitted_only = CapsHashSet::new();
    if multipath {
        permitted_only.insert(Capability::CAP_SYS_ADMIN);
        if switch
            .as_ref()
            .is_some_and(|s| s.uid.is_some_and(|uid| uid != 0))
        {
            permitted_only.insert(Capability::CAP_DAC_READ_SEARCH);
        }
        permitted_only.retain(|cap| permitted.contains(cap));
    }
    let keep_permitted: CapsHashSet = keep.union(&permitted_only).copied().collect();

    if may_setpcap {
        clear_bounding_set()?;
    }
    caps::clear(None, CapSet::Inheritable).map_err(|source| PrivilegeError::Clear {
        set: "inheritable",
        source,
    })?;
    caps::clear(None, CapSet::Ambient).map_err(|source| PrivilegeError::Clear {
        set: "ambient",
        source,
    })?;

    if let Some(switch) = switch {
        switch_ids(switch)?;
    }

    // Effective first: it must stay a subset of permitted at every step.
    caps::set(None, CapSet::Effective, &keep).map_err(|source| PrivilegeError::Set {
        set: "effective",
        source,
    })?;
    caps::set(None, CapSet::Permitted, &keep_permitted).map_err(|source| PrivilegeError::Set {
        set: "permitted",
        source,
    })?;
    rustix::thread::set_no_new_privs(true).map_err(|e| PrivilegeError::NoNewPrivs(e.into()))?;
    Ok(Dropped {
        has_rawio,
        bounding_cleared: may_setpcap,
    })
}

/// Every capability the kernel knows, not only those the `caps` crate
/// names, so that CapBnd really ends up 0.
fn clear_bounding_set() -> Result<(), PrivilegeError> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .unwrap_or(63);
    for cap in 0..=last {
        match sys::drop_bounding_capability(cap) {
            Ok(()) => {}
            // Beyond what this kernel supports: nothing to drop.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            Err(source) => return Err(PrivilegeError::Bounding { cap, source }),
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
    fn drop_in_a_thread_of_its_own() {
        assert!(
            rustix::process::geteuid().is_root(),
            "needs root (the test machine runs as root)"
        );
        let report = std::thread::spawn(|| {
            let dropped = drop_privileges(
                Some(SwitchTo {
                    uid: Some(65534),
                    gid: Some(65534),
                }),
                false,
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
            drop_privileges(
                Some(SwitchTo {
                    uid: Some(65534),
                    gid: Some(65534),
                }),
                true,
            )
            .unwrap();
            (thread_status("CapEff"), thread_status("CapPrm"))
        })
        .join()
        .unwrap();
        assert_eq!(eff, "0000000000020000");
        assert_eq!(prm, "0000000000220004");
    }
}
