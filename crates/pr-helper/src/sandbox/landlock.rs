//! The Landlock ruleset: after start-up the daemon opens files only for
//! reading under /sys and /proc (device classification, peer identity),
//! in the software target's state directory (read, write, create, remove),
//! and, for the multipath backend, device nodes under /dev for reading and
//! device ioctls (the path nodes) and `/dev/mapper/control` for writing too.
//! It cannot create, remove, rename or write anything else, execute
//! anything, bind or connect TCP sockets, signal processes outside the
//! sandbox or connect to abstract Unix sockets created outside it. Image
//! files of the software target need no rule: they arrive as the peer's
//! descriptors.
//!
//! Landlock checks a file when it is opened: descriptors opened before
//! (the log file, the listener, the state directory lock) and descriptors
//! received from peers are unaffected, which is what serving needs.
//!
//! Best effort: the ruleset asks for the rights of ABI 6 (Linux 6.12) and
//! the kernel enforces what it supports (the landlock crate drops what an
//! older kernel lacks: 6.1 enforces ABI 2, without Truncate, IoctlDev, TCP
//! or scopes); a kernel without Landlock leaves the daemon unconfined by
//! it, which the caller logs once. A newer kernel enforces exactly ABI 6's
//! rights: ABI 9 (Linux 7.1) adds `ResolveUnix`, connecting to pathname
//! Unix sockets, which would need rules for the journal's, syslog's and
//! systemd's notify sockets; it is left unhandled (the seccomp filter
//! already allows no `socket` or `connect`, and addressed sends only on the
//! daemon's own datagram sockets).

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath,
    RestrictionStatus, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError, RulesetStatus,
    Scope, path_beneath_rules,
};

/// The ABI whose rights are handled; older kernels get what they support,
/// newer ones exactly these (see the module comment for ABI 9).
const NEWEST: ABI = ABI::V6;

/// device-mapper's control node, the one device the multipath backend writes to.
const DM_CONTROL: &str = "/dev/mapper/control";

/// What the daemon still needs to open after start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandlockPlan {
    /// Read-only trees: /sys and /proc.
    pub read_only: Vec<PathBuf>,
    /// Trees of device nodes opened read-only, with device ioctls (multipath:
    /// path nodes, sent SG_IO). Empty when nothing opens devices.
    pub devices: Vec<PathBuf>,
    /// Device nodes opened read-write, with device ioctls (multipath:
    /// /dev/mapper/control, DM_TABLE_STATUS).
    pub writable_devices: Vec<PathBuf>,
    /// Directories whose files are created, rewritten and removed (the
    /// software target's state directory).
    pub state_dirs: Vec<PathBuf>,
    /// Whether connecting to abstract Unix sockets outside the sandbox
    /// must stay possible (an abstract `NOTIFY_SOCKET`).
    pub abstract_sockets: bool,
}

impl LandlockPlan {
    /// The daemon's plan: `state_dir` for the software target,
    /// `device_nodes` when a backend opens device nodes itself.
    pub fn for_daemon(
        state_dir: Option<&Path>,
        device_nodes: bool,
        abstract_sockets: bool,
    ) -> Self {
        LandlockPlan {
            read_only: vec![PathBuf::from("/sys"), PathBuf::from("/proc")],
            devices: if device_nodes {
                vec![PathBuf::from("/dev")]
            } else {
                Vec::new()
            },
            writable_devices: if device_nodes {
                vec![PathBuf::from(DM_CONTROL)]
            } else {
                Vec::new()
            },
            state_dirs: state_dir.map(Path::to_owned).into_iter().collect(),
            abstract_sockets,
        }
    }
}

/// How much of the ruleset the kernel enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LandlockOutcome {
    /// Everything asked for.
    FullyEnforced,
    /// What this kernel's Landlock version supports (e.g. no TCP rules
    /// before ABI 4, no scopes before ABI 6).
    PartiallyEnforced,
    /// The kernel has no Landlock (not built in, or not in `lsm=`).
    NotSupported,
}

/// Why the ruleset could not be built or applied.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("cannot build the Landlock ruleset (use --no-landlock to run without it)")]
    Ruleset(#[from] RulesetError),
    #[error(
        "Landlock must be applied while the process has one thread (it restricts only \
         the calling thread and those it starts later); {0}"
    )]
    NotSingleThreaded(String),
}

/// The `Threads:` count of /proc/self/status.
fn thread_count() -> Result<u32, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .ok_or_else(|| "no thread count in /proc/self/status".to_owned())
}

/// Restricts the calling thread and the threads it creates from now on.
/// Must run before the runtime starts its threads (Landlock has no
/// equivalent of seccomp's TSYNC before ABI 8).
pub fn restrict(plan: &LandlockPlan) -> Result<LandlockOutcome, LandlockError> {
    match thread_count() {
        Ok(1) => {}
        Ok(count) => {
            return Err(LandlockError::NotSingleThreaded(format!("it has {count}")));
        }
        Err(why) => return Err(LandlockError::NotSingleThreaded(why)),
    }
    restrict_this_thread(plan)
}

/// The restriction itself, on the calling thread (the unit tests run it on
/// a thread of their own).
fn restrict_this_thread(plan: &LandlockPlan) -> Result<LandlockOutcome, LandlockError> {
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let devices = AccessFs::ReadFile | AccessFs::ReadDir | AccessFs::IoctlDev;
    // A rule on a file may only carry file rights (no ReadDir).
    let writable_devices = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev;
    let state = AccessFs::ReadFile
        | AccessFs::WriteFile
        | AccessFs::ReadDir
        | AccessFs::RemoveFile
        | AccessFs::MakeReg
        | AccessFs::Truncate;
    let mut scopes: BitFlags<Scope> = Scope::from_all(NEWEST);
    if plan.abstract_sockets {
        scopes.remove(Scope::AbstractUnixSocket);
    }
    let status: RestrictionStatus = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(NEWEST))?
        .handle_access(AccessNet::from_all(NEWEST))?
        .scope(scopes)?
        .create()?
        .add_rules(path_beneath_rules(&plan.read_only, read))?
        .add_rules(path_beneath_rules(&plan.devices, devices))?
        .add_rules(path_beneath_rules(&plan.writable_devices, writable_devices))?
        .add_rules(path_beneath_rules(&plan.state_dirs, state))?
        .restrict_self()?;
    Ok(outcome(&status))
}

/// How much of a ruleset the kernel enforces, from what `restrict_self` said.
fn outcome(status: &RestrictionStatus) -> LandlockOutcome {
    match status.ruleset {
        RulesetStatus::FullyEnforced => LandlockOutcome::FullyEnforced,
        RulesetStatus::PartiallyEnforced => LandlockOutcome::PartiallyEnforced,
        _ => LandlockOutcome::NotSupported,
    }
}

/// Restricts the calling process (the janitor, single-threaded) to removing
/// files beneath the directories `dirs` (descriptors it holds, the ones it
/// removes through): it opens, creates and writes nothing, binds and
/// connects no TCP socket, and signals nothing outside its domain.
pub fn restrict_janitor(dirs: &[BorrowedFd<'_>]) -> Result<LandlockOutcome, LandlockError> {
    let rules = dirs
        .iter()
        .map(|dir| Ok::<_, RulesetError>(PathBeneath::new(*dir, AccessFs::RemoveFile)));
    let status: RestrictionStatus = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(NEWEST))?
        .handle_access(AccessNet::from_all(NEWEST))?
        .scope(Scope::from_all(NEWEST))?
        .create()?
        .add_rules(rules)?
        .restrict_self()?;
    Ok(outcome(&status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_names_what_the_daemon_opens() {
        let plan = LandlockPlan::for_daemon(Some(Path::new("/var/lib/pr")), false, false);
        assert_eq!(
            plan.read_only,
            [PathBuf::from("/sys"), PathBuf::from("/proc")]
        );
        assert!(plan.devices.is_empty());
        assert_eq!(plan.state_dirs, [PathBuf::from("/var/lib/pr")]);
        assert!(plan.writable_devices.is_empty());
        let multipath = LandlockPlan::for_daemon(None, true, true);
        assert_eq!(multipath.devices, [PathBuf::from("/dev")]);
        assert_eq!(
            multipath.writable_devices,
            [PathBuf::from("/dev/mapper/control")]
        );
        assert!(multipath.state_dirs.is_empty() && multipath.abstract_sockets);
    }

    // On a thread of its own, as below.
    #[test]
    fn the_janitors_ruleset_removes_files_beneath_its_directories_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("ours");
        std::fs::create_dir(&ours).unwrap();
        std::fs::write(ours.join("sock"), b"").unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, b"").unwrap();
        let (outcome, removed, created, removed_elsewhere) = std::thread::spawn({
            let (ours, elsewhere) = (ours.clone(), elsewhere.clone());
            move || {
                let dir = std::fs::File::open(&ours).unwrap();
                let outcome = restrict_janitor(&[std::os::fd::AsFd::as_fd(&dir)]).unwrap();
                let removed = std::fs::remove_file(ours.join("sock")).is_ok();
                let created = std::fs::write(ours.join("new"), b"x").is_ok();
                let removed_elsewhere = std::fs::remove_file(&elsewhere).is_ok();
                (outcome, removed, created, removed_elsewhere)
            }
        })
        .join()
        .unwrap();
        if outcome == LandlockOutcome::NotSupported {
            eprintln!("this kernel has no Landlock: nothing to check");
            return;
        }
        assert!(removed, "cannot remove beneath its directory");
        assert!(!created, "created a file");
        assert!(!removed_elsewhere, "removed a file elsewhere");
        assert!(elsewhere.exists());
    }

    #[test]
    fn a_multi_threaded_process_is_refused() {
        let (stop, parked) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || parked.recv());
        let refused = restrict(&LandlockPlan::for_daemon(None, false, false)).unwrap_err();
        drop(stop);
        let _ = other.join();
        assert!(
            matches!(refused, LandlockError::NotSingleThreaded(_)),
            "{refused}"
        );
    }

    // Landlock is per thread: a thread of its own keeps the test process
    // unconfined.
    #[test]
    fn a_restricted_thread_reads_sysfs_but_cannot_create_files_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let outside = dir.path().join("outside");
        let plan = LandlockPlan::for_daemon(Some(&state), false, false);
        let (outcome, reads_sysfs, writes_state, outside_error) = std::thread::spawn(move || {
            let outcome = restrict_this_thread(&plan).unwrap();
            let reads_sysfs = std::fs::read_to_string("/proc/self/status").is_ok()
                && std::fs::read_dir("/sys").is_ok();
            let writes_state = std::fs::write(state.join("unit"), b"x").is_ok();
            let outside_error = std::fs::write(&outside, b"x").err().map(|e| e.kind());
            (outcome, reads_sysfs, writes_state, outside_error)
        })
        .join()
        .unwrap();
        if outcome == LandlockOutcome::NotSupported {
            eprintln!("this kernel has no Landlock: nothing to check");
            return;
        }
        assert!(reads_sysfs && writes_state);
        assert_eq!(outside_error, Some(std::io::ErrorKind::PermissionDenied));
    }
}
