//! Backends that execute requests.
//!
//! Each backend implements [`Backend`] and is built from its own settings type. The
//! router, [`Backends::execute`], applies the checks that need no device (the CDB bytes
//! 5-6 rule, PR OUT on a read-only descriptor), classifies the descriptor and picks the
//! backend for that kind of file:
//!
//! | descriptor | answer |
//! |---|---|
//! | whole block device, sg character device | `SG_IO` ([`sgio`]) |
//! | NVMe namespace (a whole block device that answers `NVME_IOCTL_ID`) | NVMe reservations through the SCSI translation ([`nvme`], the `blk-pr` crate) |
//! | device-mapper multipath map (a single `multipath` target), unless `--no-multipath` | every path as the service action needs ([`multipath`], the `dm-multipath` crate) |
//! | partition | refused with 0B/00/06 unless partitions are allowed (see below) |
//! | device-mapper device mapping part of a device (LVM volume) | as a partition |
//! | regular file | the emulated target when configured, else 0B/00/06 |
//! | anything else (pipe, socket, /dev/null, ...) | 0B/00/06, no ioctl |
//!
//! 0B/00/06 (ABORTED COMMAND, I/O PROCESS TERMINATED) is what QEMU's helper answers when
//! its `SG_IO` fails with ENOTTY; we give the same reply without issuing the ioctl. A
//! partition gets it too: an unprivileged caller's `SG_IO` on a partition fails that way
//! in the kernel, and our CAP_SYS_RAWIO would otherwise bypass that check and reserve
//! the whole LUN (a deliberate difference from QEMU's helper, which sends the ioctl).
//! A device-mapper device that maps only part of what is under it passes SG_IO down
//! the same way, and the kernel checks that only for callers without CAP_SYS_RAWIO.
//!
//! All of it runs on the thread that serves the connection (`fstat`, a sysfs lookup
//! unless the device was classified within the last second, `F_GETFL` for PR OUT,
//! then the backend's ioctl or file I/O), never on a thread other connections wait on.
//! Each connection keeps a [`DescriptorMemo`]: when a command's descriptor is the same
//! file as the last one's (the `fstat` says so), its classification and route are
//! reused for up to the cache's second, with no shared lock and no multipath lookup. A
//! change of a device's kind is therefore seen within two seconds.

pub mod emulated;
pub mod multipath;
pub mod nvme;
pub mod sgio;

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use pr_protocol::{Direction, Request, Response};
use scsi::sense::Sense;
use sg_io::{DescriptorKind, FileIdentity, NodeKey};

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use emulated::{EmulatedBackend, EmulatedSettings};
pub use multipath::{MultipathBackend, MultipathSettings};
pub use nvme::NvmeBackend;
pub use sgio::{SgIoBackend, SgIoSettings};

/// One way of executing PR commands on a kind of descriptor. The router calls it on
/// the connection's thread, after the checks that need no device: it may block.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Executes `command` and answers it.
    fn execute(&self, command: &Command<'_>) -> Response;
}

/// A validated command, with what the router learnt about its descriptor.
#[derive(Debug, Clone, Copy)]
pub struct Command<'a> {
    /// The CDB as received (16 bytes, zero-padded).
    pub cdb: &'a [u8; 16],
    /// The PR OUT parameter list (empty for PR IN).
    pub data_out: &'a [u8],
    /// The descriptor the peer sent.
    pub fd: BorrowedFd<'a>,
    /// Which file it refers to (from the router's `fstat`).
    pub file: FileIdentity,
    /// Who sent it.
    pub peer: PeerInfo,
}

/// The process on the other end of a connection, from SO_PEERCRED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInfo {
    /// Process id at the time the peer connected; 0 when that process is not visible
    /// in the daemon's pid namespace.
    pub pid: i32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

/// Why the backends could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The emulated target's state directory could not be opened.
    #[error("cannot open the emulated target's state directory {path}")]
    EmulatedState {
        /// The configured directory.
        path: std::path::PathBuf,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What kind of descriptor a command was executed on, for the per-command log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DescriptorLabel {
    /// Classified.
    Kind(DescriptorKind),
    /// Not looked at: the command was refused from its CDB alone.
    NotExamined,
    /// `fstat` or the sysfs lookup failed.
    Unclassifiable,
}

impl fmt::Display for DescriptorLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DescriptorLabel::Kind(kind) => kind.fmt(f),
            DescriptorLabel::NotExamined => f.write_str("not examined"),
            DescriptorLabel::Unclassifiable => f.write_str("unclassifiable"),
        }
    }
}

/// The answer to one command, with what the log line needs to know about it.
#[derive(Debug)]
pub struct Execution {
    /// The response to write to the peer.
    pub response: Response,
    /// The kind of descriptor the command went to.
    pub descriptor: DescriptorLabel,
}

/// What the backends are built from (each backend's own settings come out of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSettings {
    /// Timeout handed to the SG_IO ioctl.
    pub sgio_timeout: Duration,
    /// Whether a partition descriptor may receive SG_IO (it reaches the whole LUN).
    pub allow_partitions: bool,
    /// Whether dm-multipath maps get PR on every path (`--no-multipath` turns it off).
    pub multipath: bool,
    /// Where the emulated target keeps its state; `None` disables the emulated backend.
    pub emulated_state_dir: Option<PathBuf>,
    /// What the emulated target counts as one initiator.
    pub emulated_initiator: emulated::InitiatorRule,
}

impl Default for BackendSettings {
    fn default() -> Self {
        Self {
            sgio_timeout: Duration::from_secs(30),
            allow_partitions: false,
            multipath: false,
            emulated_state_dir: None,
            emulated_initiator: emulated::InitiatorRule::default(),
        }
    }
}

/// The router: applies the checks that need no device, classifies the descriptor and
/// hands the command to the backend for that kind of file (see the module docs).
#[derive(Debug)]
pub struct Backends {
    allow_partitions: bool,
    /// Device classifications, so a busy device is not looked up in sysfs per command.
    classifications: sg_io::ClassifyCache,
    sgio: SgIoBackend,
    nvme: NvmeBackend,
    emulated: Option<EmulatedBackend>,
    /// dm-multipath maps (unless `--no-multipath`).
    multipath: Option<MultipathBackend>,
    /// Takes every command that passed the checks, whatever its descriptor (test
    /// harnesses inject slow or hanging backends here).
    replacement: Option<Arc<dyn Backend>>,
}

impl Backends {
    /// Prepares the backends the settings ask for.
    pub fn new(settings: &BackendSettings) -> Result<Self, BackendError> {
        let emulated = settings
            .emulated_state_dir
            .as_deref()
            .map(|dir| {
                let emulated = EmulatedSettings {
                    state_dir: dir.to_path_buf(),
                    initiator: settings.emulated_initiator,
                };
                EmulatedBackend::new(&emulated).map_err(|e| BackendError::EmulatedState {
                    path: dir.to_path_buf(),
                    source: Box::new(e),
                })
            })
            .transpose()?;
        Ok(Self {
            allow_partitions: settings.allow_partitions,
            classifications: sg_io::ClassifyCache::default(),
            sgio: SgIoBackend::new(&SgIoSettings {
                timeout: settings.sgio_timeout,
            }),
            nvme: NvmeBackend,
            emulated,
            multipath: settings.multipath.then(|| {
                MultipathBackend::new(&MultipathSettings {
                    sgio_timeout: settings.sgio_timeout,
                })
            }),
            replacement: None,
        })
    }

    /// Whether the multipath backend is on and device-mapper's control node is open:
    /// only then does the privilege drop keep what multipath needs.
    pub fn multipath_active(&self) -> bool {
        self.multipath
            .as_ref()
            .is_some_and(MultipathBackend::is_active)
    }

    /// Sends every command that passes the checks to `backend` instead, whatever its
    /// descriptor. For test harnesses (a backend that is slow or never answers); the
    /// daemon never calls it.
    pub fn replace_all_with(mut self, backend: Arc<dyn Backend>) -> Self {
        self.replacement = Some(backend);
        self
    }

    /// Executes one request: the CDB rule, classification, the access mode, then the
    /// backend for the descriptor. Blocks (ioctl, file I/O, sysfs). `memo` is the
    /// calling connection's: a descriptor for the same file as its last one is routed
    /// from it, after one `fstat` and without touching shared state.
    pub fn execute(
        &self,
        request: &Request<OwnedFd>,
        peer: &PeerInfo,
        memo: &mut DescriptorMemo,
    ) -> Execution {
        // PR OUT's parameter list length is cdb[5..9], but the protocol carries only
        // cdb[7..9] bytes: a device told more than we sent must never see the command.
        if request.cdb_check().is_err() {
            return refused(Sense::INVALID_FIELD, DescriptorLabel::NotExamined);
        }
        let fd = request.fd.as_fd();
        let routed = match self.route(fd, memo) {
            Ok(routed) => routed,
            Err(error) => {
                tracing::warn!(peer = %peer, error = %error_chain(&error), "cannot classify descriptor");
                return refused(Sense::IO_ERROR, DescriptorLabel::Unclassifiable);
            }
        };
        let descriptor = DescriptorLabel::Kind(routed.kind);
        if request.direction() == Direction::Out && !may_write(fd) {
            return refused(Sense::INVALID_OPCODE, descriptor);
        }
        let command = Command {
            cdb: &request.cdb,
            data_out: &request.data_out,
            fd,
            file: routed.key.identity(),
            peer: *peer,
        };
        let response = match self.backend(routed.route) {
            Some(backend) => backend.execute(&command),
            None => check_condition(Sense::IO_ERROR),
        };
        Execution {
            response,
            descriptor,
        }
    }

    /// Examines the descriptor and decides which backend serves it, from `memo` when
    /// it is the same file as last time and the memo is fresh.
    fn route(
        &self,
        fd: BorrowedFd<'_>,
        memo: &mut DescriptorMemo,
    ) -> Result<Routed, sg_io::ClassifyError> {
        let examined = sg_io::Examined::of(fd)?;
        let key = examined.key();
        let now = Instant::now();
        if let Some(last) = memo.last.as_deref()
            && last.key == key
            && now.saturating_duration_since(last.checked) < self.classifications.ttl()
        {
            return Ok(*last);
        }
        let kind = self.classifications.classify_examined(&examined, now)?;
        let mut route = self.route_for(kind, &key.identity());
        if route == Route::SgIo
            && kind == DescriptorKind::WholeBlockDevice
            && matches!(blk_pr::probe(fd), blk_pr::PrPath::Nvme { .. })
        {
            route = Route::Nvme;
        }
        let routed = Routed {
            key,
            kind,
            route,
            checked: now,
        };
        match memo.last.as_deref_mut() {
            Some(last) => *last = routed,
            None => memo.last = Some(Box::new(routed)),
        }
        Ok(routed)
    }

    fn route_for(&self, kind: DescriptorKind, file: &FileIdentity) -> Route {
        match kind {
            DescriptorKind::WholeBlockDevice
                if self.multipath.as_ref().is_some_and(|m| m.serves(file)) =>
            {
                Route::Multipath
            }
            DescriptorKind::WholeBlockDevice | DescriptorKind::SgCharDevice => Route::SgIo,
            // Both reach the whole LUN below them (see the module docs).
            DescriptorKind::Partition | DescriptorKind::PartialDeviceMapper
                if self.allow_partitions =>
            {
                Route::SgIo
            }
            DescriptorKind::RegularFile if self.emulated.is_some() => Route::Emulated,
            DescriptorKind::RegularFile
            | DescriptorKind::Partition
            | DescriptorKind::PartialDeviceMapper
            | DescriptorKind::Other(_) => Route::Refused,
        }
    }

    fn backend(&self, route: Route) -> Option<&dyn Backend> {
        if let Some(replacement) = &self.replacement {
            return Some(replacement.as_ref());
        }
        match route {
            Route::SgIo => Some(&self.sgio),
            Route::Nvme => Some(&self.nvme),
            Route::Multipath => self.multipath.as_ref().map(|m| m as &dyn Backend),
            Route::Emulated => self.emulated.as_ref().map(|e| e as &dyn Backend),
            Route::Refused => None,
        }
    }
}

/// What a connection remembers about the descriptor of its last command. QEMU sends
/// the same disk's descriptor with every command, so a repeat needs only the `fstat`
/// that proves it is the same file: no shared cache lock, no multipath lookup. Trusted
/// as long as the shared classification cache's entries are. Boxed: a connection that
/// never sent a command pays a pointer for it, not the whole record.
#[derive(Debug, Default)]
pub struct DescriptorMemo {
    last: Option<Box<Routed>>,
}

/// A descriptor's classification and route, and when they were decided.
#[derive(Debug, Clone, Copy)]
struct Routed {
    key: NodeKey,
    kind: DescriptorKind,
    route: Route,
    checked: Instant,
}

/// Which backend serves a kind of descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    SgIo,
    /// An NVMe namespace: no SG_IO, the translation onto NVMe reservations.
    Nvme,
    Multipath,
    Emulated,
    /// Answered 0B/00/06 without an ioctl.
    Refused,
}

fn may_write(fd: BorrowedFd<'_>) -> bool {
    sg_io::access_mode(fd).is_ok_and(|mode| mode.can_write())
}

fn refused(sense: Sense, descriptor: DescriptorLabel) -> Execution {
    Execution {
        response: check_condition(sense),
        descriptor,
    }
}

/// A CHECK CONDITION response carrying `sense` in fixed format, no payload.
pub(crate) fn check_condition(sense: Sense) -> Response {
    Response::check_condition(&sense.fixed_bytes())
}

/// An error and its sources on one line, for logs (the same as `main` prints).
pub(crate) use crate::startup::error_chain;

#[cfg(test)]
mod tests {
    use super::*;
    use pr_testkit::cdb;

    fn read_keys(file: &std::fs::File) -> Request<OwnedFd> {
        Request {
            cdb: cdb::read_keys(64),
            fd: file.as_fd().try_clone_to_owned().expect("dup"),
            data_out: Vec::new(),
        }
    }

    /// Backends with the software target on, and its state directory.
    fn with_the_software_target() -> (tempfile::TempDir, Backends) {
        let state = tempfile::tempdir().expect("state dir");
        let backends = Backends::new(&BackendSettings {
            emulated_state_dir: Some(state.path().to_path_buf()),
            ..BackendSettings::default()
        })
        .expect("backends");
        (state, backends)
    }

    fn me() -> PeerInfo {
        PeerInfo {
            pid: 1,
            uid: 0,
            gid: 0,
        }
    }

    #[test]
    fn a_connections_memo_names_each_file_it_was_given() {
        // Two images on one memo are two logical units: a key registered through one
        // is not seen through the other.
        let (_state, backends) = with_the_software_target();
        let (first, second) = (
            tempfile::tempfile().expect("image"),
            tempfile::tempfile().expect("image"),
        );
        let mut memo = DescriptorMemo::default();
        let params = cdb::register_params(0xabc);
        let register = Request {
            cdb: cdb::register(u16::try_from(params.len()).expect("length")),
            fd: first.as_fd().try_clone_to_owned().expect("dup"),
            data_out: params,
        };
        let registered = backends.execute(&register, &me(), &mut memo);
        assert_eq!(registered.response.status, 0, "{:?}", registered.response);
        // READ KEYS: bytes 4..8 are the length of the key list.
        let key_bytes = |file: &std::fs::File, memo: &mut DescriptorMemo| {
            let response = backends.execute(&read_keys(file), &me(), memo).response;
            assert_eq!(response.status, 0, "{response:?}");
            response.data.get(4..8).map(<[u8]>::to_vec)
        };
        assert_eq!(key_bytes(&first, &mut memo), Some(vec![0, 0, 0, 8]));
        assert_eq!(key_bytes(&second, &mut memo), Some(vec![0, 0, 0, 0]));
        assert_eq!(key_bytes(&first, &mut memo), Some(vec![0, 0, 0, 8]));
    }

    #[test]
    fn a_connections_memo_never_routes_another_file_the_way_of_the_last_one() {
        // The emulated target answers a regular file; /dev/null is refused without
        // an ioctl. Alternating them on one memo must give each its own answer.
        let (_state, backends) = with_the_software_target();
        let image = tempfile::tempfile().expect("image");
        let null = std::fs::File::open("/dev/null").expect("/dev/null");
        let mut memo = DescriptorMemo::default();
        for _ in 0..2 {
            let served = backends.execute(&read_keys(&image), &me(), &mut memo);
            assert_eq!(served.response.status, 0, "{:?}", served.response);
            assert_eq!(
                served.descriptor,
                DescriptorLabel::Kind(DescriptorKind::RegularFile)
            );
            // Again: from the memo, the same answer.
            let again = backends.execute(&read_keys(&image), &me(), &mut memo);
            assert_eq!(again.response.status, 0, "{:?}", again.response);
            let refused = backends.execute(&read_keys(&null), &me(), &mut memo);
            assert_eq!(
                refused.response,
                check_condition(Sense::IO_ERROR),
                "{:?}",
                refused.descriptor
            );
            assert!(
                matches!(
                    refused.descriptor,
                    DescriptorLabel::Kind(DescriptorKind::Other(_))
                ),
                "{:?}",
                refused.descriptor
            );
        }
    }
}
