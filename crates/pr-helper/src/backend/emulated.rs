//! The emulated backend: PR commands on image files (regular files) answered by a
//! software SPC-4 target ([`pr_target`]), one logical unit per image file.
//!
//! **What it is for.** Reservations are recorded and answered exactly as a SPC-4
//! device would, but I/O to the image is *not* blocked by them: QEMU's emulated disks
//! never consult the helper before reading or writing. Use it for tests, demos and
//! development; never to fence production data.
//!
//! The rules:
//! - **Logical unit** = the image file, identified by `(st_dev, st_ino)` of the
//!   descriptor. Hard links share a unit; a copy is another unit. (An inode number
//!   reused after the file is deleted inherits the old unit's persisted state.)
//! - **I_T nexus** = the connecting process: one initiator port per peer process,
//!   named by its pid and its start time (`/proc/PID/stat`, so a recycled pid is a new
//!   initiator), through a single target port (relative target port 1). A QEMU process
//!   is one initiator whatever number of connections it opens; two QEMU processes (or
//!   two `prtool` runs) are two initiators. With `--emulated-initiator session` the
//!   initiator is the peer's session instead (its session id and the session leader's
//!   start time): every command run from one shell or script is then one initiator,
//!   and `setsid` starts another. See [`identity`].
//! - **State** lives in the state directory, one JSON file per unit with APTPL set,
//!   written crash-safely (temporary file, fsync, rename, fsync of the directory)
//!   *before* GOOD is sent. Without APTPL nothing survives a restart, as on a device
//!   after power loss. A lock file (`flock`) keeps a second daemon off the directory.
//!
//! Commands on one unit are serialised by a per-unit mutex; different units proceed in
//! parallel.
//!
//! **Bounds.** Nothing a peer sends makes the state grow without limit: a unit holds
//! at most [`pr_target::MAX_REGISTRATIONS`] registrations (more answer INSUFFICIENT
//! REGISTRATION RESOURCES, 05/55/04), and at most [`MAX_UNITS`] units are held in
//! memory. A unit that holds no state (no registration, no reservation, no APTPL)
//! is dropped when room is needed; its PRgeneration then restarts at 0, which
//! nobody can tell from a unit seen for the first time. Units that hold state are
//! never evicted (that would silently drop another initiator's reservation, which a
//! hostile peer could then do at will): with the table full of them, a command on
//! another image runs on a fresh unit that is not kept, and one that would leave it
//! holding state answers 05/55/04 instead.

mod identity;
mod store;

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use pr_protocol::Response;
use pr_target::{LogicalUnit, Nexus, Outcome};
use scsi::sense::Sense;

use self::identity::UnitId;
use self::store::Store;
use super::{PeerInfo, check_condition, error_chain};

pub use self::identity::{InitiatorRule, initiator_of};

/// The relative target port identifier of the emulated target's single port.
pub const TARGET_PORT: u16 = 1;

/// Logical units (image files) held in memory at most; see the module's "Bounds".
pub const MAX_UNITS: usize = 1024;

/// Why the emulated backend could not be opened or a unit could not be served.
#[derive(Debug, thiserror::Error)]
pub enum EmulatedError {
    /// The state directory could not be created.
    #[error("cannot create the state directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The lock file could not be opened.
    #[error("cannot open the lock file {path}")]
    OpenLock {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another daemon holds the lock on the state directory.
    #[error(
        "the state directory is in use by another pr-helper (lock {path} is held); \
         stop that daemon or choose another --emulated-state-dir"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// Taking the lock failed for another reason.
    #[error("cannot lock {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Listing the state directory failed.
    #[error("cannot read the state directory {path}")]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A state file could not be read.
    #[error("cannot read the state file {path}")]
    ReadState {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A state file is not valid state (edited by hand, or not ours).
    #[error("the state file {path} is not valid; move it away to start with an empty unit")]
    ParseState {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Writing a state file (or syncing it or its directory) failed.
    #[error("cannot write the state file {path} durably")]
    WriteState {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The descriptor's `fstat` failed.
    #[error("cannot fstat the image descriptor")]
    Fstat(#[source] std::io::Error),
}

/// What the emulated backend is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedSettings {
    /// Where the units' state lives (created if missing, locked while we run).
    pub state_dir: PathBuf,
    /// What counts as one initiator.
    pub initiator: InitiatorRule,
}

/// The emulated target for every image file a peer sends.
#[derive(Debug)]
pub struct EmulatedBackend {
    store: Store,
    initiator_rule: InitiatorRule,
    units: Mutex<HashMap<UnitId, Arc<Mutex<LogicalUnit>>>>,
    max_units: usize,
    /// Whether the "unit table full" warning was logged (once: a peer must
    /// not be able to add a log line per command).
    warned_full: AtomicBool,
}

impl EmulatedBackend {
    /// Opens (creating it if needed) and locks the state directory, and loads the
    /// persisted units. Fails if another daemon holds the directory.
    pub fn open(state_dir: &Path, initiator_rule: InitiatorRule) -> Result<Self, EmulatedError> {
        let store = Store::open(state_dir)?;
        let units = store
            .load_all()?
            .into_iter()
            .map(|(id, unit)| (id, Arc::new(Mutex::new(unit))))
            .collect();
        Ok(Self {
            store,
            initiator_rule,
            units: Mutex::new(units),
            max_units: MAX_UNITS,
            warned_full: AtomicBool::new(false),
        })
    }

    /// [`open`](Self::open) with the settings' directory and initiator rule.
    pub fn new(settings: &EmulatedSettings) -> Result<Self, EmulatedError> {
        Self::open(&settings.state_dir, settings.initiator)
    }

    /// The same backend holding at most `max_units` units in memory instead of
    /// [`MAX_UNITS`] (at least 1).
    pub fn with_unit_limit(mut self, max_units: usize) -> Self {
        self.max_units = max_units.max(1);
        self
    }

    /// Units held in memory now.
    pub fn units_in_memory(&self) -> usize {
        self.units
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        self.store.dir()
    }

    /// Executes a PR IN or PR OUT command on the image behind `fd` for `peer`.
    pub fn execute(
        &self,
        fd: BorrowedFd<'_>,
        cdb: &[u8; 16],
        data_out: &[u8],
        peer: &PeerInfo,
    ) -> Response {
        let id = match UnitId::of(fd) {
            Ok(id) => id,
            Err(error) => {
                tracing::warn!(peer = %peer, error = %error_chain(&error), "emulated target");
                return check_condition(Sense::IO_PROCESS_TERMINATED);
            }
        };
        let nexus = Nexus::new(initiator_of(peer, self.initiator_rule), TARGET_PORT);
        let Some(unit) = self.unit(id) else {
            return self.execute_unheld(&nexus, cdb, data_out, peer);
        };
        let mut unit = unit.lock().unwrap_or_else(PoisonError::into_inner);
        // Run on a copy: if the new state cannot be made durable, nothing changed.
        let mut next = unit.clone();
        let outcome = next.execute(&nexus, cdb, data_out);
        let durable = next.persistent_part();
        if durable != unit.persistent_part() {
            if let Err(error) = self.store.save(id, &durable) {
                tracing::error!(peer = %peer, error = %error_chain(&error), "emulated target");
                return check_condition(Sense::INTERNAL_TARGET_FAILURE);
            }
        }
        *unit = next;
        response_for(outcome)
    }

    /// The unit of `id`, made if there is room (after evicting units that hold no
    /// state); `None` when every unit in the full table holds state.
    fn unit(&self, id: UnitId) -> Option<Arc<Mutex<LogicalUnit>>> {
        let mut units = self.units.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(unit) = units.get(&id) {
            return Some(Arc::clone(unit));
        }
        if units.len() >= self.max_units {
            // Only units no command holds (a command holds a clone of the Arc).
            units.retain(|_, unit| Arc::strong_count(unit) > 1 || holds_state(unit));
        }
        if units.len() >= self.max_units {
            return None;
        }
        let unit = Arc::new(Mutex::new(fresh_unit()));
        units.insert(id, Arc::clone(&unit));
        Some(unit)
    }

    /// A command on an image when the unit table is full of units holding state:
    /// answered from a fresh unit that is not kept, unless it would leave that unit
    /// holding state.
    fn execute_unheld(
        &self,
        nexus: &Nexus,
        cdb: &[u8; 16],
        data_out: &[u8],
        peer: &PeerInfo,
    ) -> Response {
        let mut unit = fresh_unit();
        let outcome = unit.execute(nexus, cdb, data_out);
        if !unit_holds_state(&unit) {
            return response_for(outcome);
        }
        if !self.warned_full.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                peer = %peer,
                max_units = self.max_units,
                "emulated target: every unit held in memory has registrations; \
                 commands that would register on another image answer \
                 INSUFFICIENT REGISTRATION RESOURCES (logged once)"
            );
        }
        check_condition(Sense::INSUFFICIENT_REGISTRATION_RESOURCES)
    }
}

fn fresh_unit() -> LogicalUnit {
    LogicalUnit::new(vec![TARGET_PORT])
}

/// Whether dropping the unit would lose anything but its PRgeneration. A unit
/// locked right now (a command about to run on it) counts as holding state.
fn holds_state(unit: &Mutex<LogicalUnit>) -> bool {
    unit.try_lock().map_or(true, |unit| unit_holds_state(&unit))
}

fn unit_holds_state(unit: &LogicalUnit) -> bool {
    !unit.registrations().is_empty() || unit.reservation().is_some() || unit.aptpl()
}

fn response_for(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Good(data) => Response::good(data),
        Outcome::ReservationConflict => {
            Response::with_status(scsi::status::Status::RESERVATION_CONFLICT.as_u8())
        }
        Outcome::CheckCondition(sense) => Response::check_condition(&sense.fixed_bytes()),
    }
}

impl super::Backend for EmulatedBackend {
    fn execute(&self, command: &super::Command<'_>) -> Response {
        EmulatedBackend::execute(
            self,
            command.fd,
            command.cdb,
            command.data_out,
            &command.peer,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use pr_target::build;

    use super::*;

    fn cdb16(cdb: &[u8]) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..cdb.len()].copy_from_slice(cdb);
        out
    }

    fn peer(pid: i32) -> PeerInfo {
        PeerInfo {
            pid,
            uid: 0,
            gid: 0,
        }
    }

    fn me() -> PeerInfo {
        peer(i32::try_from(std::process::id()).unwrap())
    }

    #[test]
    fn two_peer_processes_are_two_initiators_on_one_image() {
        let dir = tempfile::tempdir().unwrap();
        let image = tempfile::tempfile().unwrap();
        let backend = EmulatedBackend::open(dir.path(), InitiatorRule::Process).unwrap();
        let (cdb, list) = build::register(0, 0xA, false);
        let r = backend.execute(image.as_fd(), &cdb16(&cdb), &list, &me());
        assert_eq!(r.status, 0);
        let (cdb, list) = build::reserve(0xA, 0x3);
        let r = backend.execute(image.as_fd(), &cdb16(&cdb), &list, &me());
        assert_eq!(r.status, 0);
        // Another process (pid 1) is not registered: its RESERVE conflicts.
        let (cdb, list) = build::reserve(0, 0x3);
        let r = backend.execute(image.as_fd(), &cdb16(&cdb), &list, &peer(1));
        assert_eq!(r.status, 0x18);
        let r = backend.execute(image.as_fd(), &cdb16(&build::read_keys(64)), &[], &peer(1));
        assert_eq!(r.data[8..16], 0xAu64.to_be_bytes());
    }

    #[test]
    fn aptpl_state_survives_reopening_and_plain_state_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let image = tempfile::tempfile().unwrap();
        let other = tempfile::tempfile().unwrap();
        {
            let backend = EmulatedBackend::open(dir.path(), InitiatorRule::Process).unwrap();
            let (cdb, list) = build::register(0, 0x77, true);
            let r = backend.execute(image.as_fd(), &cdb16(&cdb), &list, &me());
            assert_eq!(r.status, 0);
            let (cdb, list) = build::register(0, 0x88, false);
            let r = backend.execute(other.as_fd(), &cdb16(&cdb), &list, &me());
            assert_eq!(r.status, 0);
        }
        let backend = EmulatedBackend::open(dir.path(), InitiatorRule::Process).unwrap();
        let keys = cdb16(&build::read_keys(64));
        let r = backend.execute(image.as_fd(), &keys, &[], &me());
        assert_eq!(r.data[8..16], 0x77u64.to_be_bytes());
        let r = backend.execute(other.as_fd(), &keys, &[], &me());
        assert_eq!(r.data.len(), 8, "no keys without APTPL");
    }

    #[test]
    fn concurrent_commands_on_one_image_are_serialised() {
        // Eight initiators (peer pids that do not exist: start time 0, distinct names)
        // re-register 50 times each from eight threads at once; every REGISTER must
        // land exactly once.
        const THREADS: i32 = 8;
        const ROUNDS: u64 = 50;
        let dir = tempfile::tempdir().unwrap();
        let image = tempfile::tempfile().unwrap();
        let backend = EmulatedBackend::open(dir.path(), InitiatorRule::Process).unwrap();
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let (backend, image) = (&backend, &image);
                scope.spawn(move || {
                    let peer = peer(i32::MAX - thread);
                    for key in 0..ROUNDS {
                        let (cdb, list) = build::register(key, key + 1, false);
                        let r = backend.execute(image.as_fd(), &cdb16(&cdb), &list, &peer);
                        assert_eq!(r.status, 0);
                    }
                });
            }
        });
        let r = backend.execute(image.as_fd(), &cdb16(&build::read_keys(8192)), &[], &me());
        let generation = u32::from_be_bytes(r.data[0..4].try_into().unwrap());
        assert_eq!(generation, u32::try_from(THREADS).unwrap() * ROUNDS as u32);
        assert_eq!(r.data.len(), 8 + 8 * THREADS as usize);
        assert!(r.data[8..].chunks(8).all(|k| k == ROUNDS.to_be_bytes()));
    }

    fn register(
        backend: &EmulatedBackend,
        image: &std::fs::File,
        peer: &PeerInfo,
        key: u64,
    ) -> Response {
        let (cdb, list) = build::register(0, key, false);
        backend.execute(image.as_fd(), &cdb16(&cdb), &list, peer)
    }

    fn is_insufficient_registration_resources(r: &Response) -> bool {
        r.status == 2 && (r.sense[2], r.sense[12], r.sense[13]) == (0x05, 0x55, 0x04)
    }

    #[test]
    fn a_peer_that_keeps_registering_fills_the_table_and_no_more() {
        // Initiators are peer processes; pids that do not exist stand for many.
        let dir = tempfile::tempdir().unwrap();
        let image = tempfile::tempfile().unwrap();
        let backend = EmulatedBackend::open(dir.path(), InitiatorRule::Process).unwrap();
        let read_keys = cdb16(&build::read_keys(8192));
        let full_size = 8 + 8 * pr_target::MAX_REGISTRATIONS;
        for round in 0..4 {
            for i in 0..pr_target::MAX_REGISTRATIONS {
                let pid =
                    i32::MAX - i32::try_from(round * pr_target::MAX_REGISTRATIONS + i).unwrap();
                let r = register(&backend, &image, &peer(pid), 0x1000 + i as u64);
                if round == 0 {
                    assert_eq!(r.status, 0, "registration {i}");
                } else {
                    assert!(is_insufficient_registration_resources(&r), "{r:?}");
                }
            }
            // The state is as large after every round as after the first.
            let r = backend.execute(image.as_fd(), &read_keys, &[], &me());
            assert_eq!(r.data.len(), full_size, "round {round}");
            assert_eq!(backend.units_in_memory(), 1);
        }
    }

    #[test]
    fn units_that_hold_no_state_make_room_and_units_that_do_are_kept() {
        const LIMIT: usize = 4;
        let dir = tempfile::tempdir().unwrap();
        let backend = EmulatedBackend::open(dir.path(), InitiatorRule::Process)
            .unwrap()
            .with_unit_limit(LIMIT);
        let read_keys = cdb16(&build::read_keys(64));
        // Any number of images only read: the table never exceeds the bound.
        for _ in 0..50 {
            let image = tempfile::tempfile().unwrap();
            let r = backend.execute(image.as_fd(), &read_keys, &[], &me());
            assert_eq!((r.status, r.data.len()), (0, 8));
            assert!(backend.units_in_memory() <= LIMIT);
        }
        // LIMIT images with registrations fill it.
        let held: Vec<std::fs::File> = (0..LIMIT).map(|_| tempfile::tempfile().unwrap()).collect();
        for (i, image) in held.iter().enumerate() {
            assert_eq!(register(&backend, image, &me(), 0x10 + i as u64).status, 0);
        }
        assert_eq!(backend.units_in_memory(), LIMIT);
        // Another image: reads are answered, a registration is refused and nothing
        // held is lost.
        let late = tempfile::tempfile().unwrap();
        let r = backend.execute(late.as_fd(), &read_keys, &[], &me());
        assert_eq!((r.status, r.data.len()), (0, 8));
        for _ in 0..20 {
            let r = register(&backend, &late, &me(), 0x99);
            assert!(is_insufficient_registration_resources(&r), "{r:?}");
        }
        assert_eq!(backend.units_in_memory(), LIMIT);
        for (i, image) in held.iter().enumerate() {
            let r = backend.execute(image.as_fd(), &read_keys, &[], &me());
            assert_eq!(r.data[8..16], (0x10 + i as u64).to_be_bytes());
        }
        // Unregistering on one image makes its unit evictable: the late one fits.
        let (cdb, list) = build::register(0x10, 0, false);
        let r = backend.execute(held[0].as_fd(), &cdb16(&cdb), &list, &me());
        assert_eq!(r.status, 0);
        assert_eq!(register(&backend, &late, &me(), 0x99).status, 0);
        assert_eq!(backend.units_in_memory(), LIMIT);
    }

    #[test]
    fn refusals_carry_fixed_format_sense() {
        let dir = tempfile::tempdir().unwrap();
        let image = tempfile::tempfile().unwrap();
        let backend = EmulatedBackend::open(dir.path(), InitiatorRule::Process).unwrap();
        let cdb = build::pr_out(pr_target::PrOutAction::Register, 0, 20);
        let r = backend.execute(image.as_fd(), &cdb16(&cdb), &[0; 20], &me());
        assert_eq!(r.status, 2);
        assert_eq!(
            (r.sense[0], r.sense[2], r.sense[12], r.sense[13]),
            (0x70, 5, 0x1A, 0)
        );
        assert!(r.data.is_empty());
    }
}
