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

mod identity;
mod store;

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
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
        })
    }

    /// [`open`](Self::open) with the settings' directory and initiator rule.
    pub fn new(settings: &EmulatedSettings) -> Result<Self, EmulatedError> {
        Self::open(&settings.state_dir, settings.initiator)
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
        let unit = self.unit(id);
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

    fn unit(&self, id: UnitId) -> Arc<Mutex<LogicalUnit>> {
        let mut units = self.units.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            units
                .entry(id)
                .or_insert_with(|| Arc::new(Mutex::new(LogicalUnit::new(vec![TARGET_PORT])))),
        )
    }
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
