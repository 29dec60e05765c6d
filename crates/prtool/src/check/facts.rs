//! What `prtool check` learnt about the device, its paths, the helper and the
//! host: plain data, filled in by the probes ([`super::probe`],
//! [`super::helper`]) and read by the findings engine ([`super::findings`]),
//! which does no I/O. Tests build these by hand.

use pr_manager::{FullStatus, ReadKeys, ReadReservation, ReportCapabilities, TransportId};

/// Everything the findings are derived from.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub device: DeviceFacts,
    pub helper: HelperFacts,
    pub caller: CallerFacts,
    pub libvirt: LibvirtFacts,
    /// The `--write-test` outcome, when one was asked for.
    pub write_test: Option<WriteTest>,
}

/// What the device is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeviceKind {
    /// Nothing at that path.
    #[default]
    Missing,
    /// A SCSI disk (`sd`).
    ScsiDisk,
    /// A SCSI generic node (`/dev/sg*`), with its disk's name if it has one.
    ScsiGeneric { disk: Option<String> },
    /// A device-mapper multipath map.
    Multipath { map: String },
    /// Another device-mapper device (LVM, linear, crypt, ...) with its target types.
    DeviceMapper { map: String, targets: String },
    /// An NVMe namespace (`nvmeXnY`).
    Nvme(NvmeFacts),
    /// A loop device.
    Loop { backing: Option<String> },
    /// A partition of `disk`.
    Partition { disk: String },
    /// Some other block device (virtio-blk, ...), named by its sysfs driver or name.
    OtherBlock { what: String },
    /// A regular file (a disk image for the helper's software target).
    ImageFile,
    /// Anything else (a directory, a character device other than sg, ...).
    Other { what: String },
}

/// An NVMe namespace as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NvmeFacts {
    /// Namespace id (`nsid`).
    pub nsid: Option<String>,
    /// The subsystem NQN.
    pub subsystem_nqn: Option<String>,
    /// Controllers (paths) of the namespace under native NVMe multipath.
    pub controllers: Vec<String>,
    /// The transport of the first controller (pcie, tcp, rdma, fc, loop).
    pub transport: Option<String>,
    /// This host's Host Identifier(s) on the namespace's controllers (sysfs
    /// `hostid`, UUID form), distinct, in controller order.
    pub host_ids: Vec<String>,
}

/// How the check reaches a device's reservations itself (not through the helper).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DirectRoute {
    /// SCSI PERSISTENT RESERVE IN with SG_IO.
    #[default]
    SgIo,
    /// NVMe reservation commands (Reservation Report, Register, Acquire,
    /// Release) through blk-pr, answered as SCSI PR commands.
    Nvme,
    /// The kernel's block-layer PR ioctls through blk-pr (no SG_IO on the
    /// device): no READ FULL STATUS, so registrants are keys only.
    PrIoctls,
}

impl DirectRoute {
    /// In words, for findings (`SG_IO on /dev/sda`).
    pub fn words(self) -> &'static str {
        match self {
            Self::SgIo => "SG_IO",
            Self::Nvme => "NVMe reservation commands",
            Self::PrIoctls => "the kernel's PR ioctls",
        }
    }
}

/// One PR IN answer, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrAnswer<T> {
    /// GOOD, decoded.
    Good(T),
    /// The device answered with a status other than GOOD; the sense in words.
    Refused {
        status: String,
        sense: Option<String>,
        /// ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE or INVALID FIELD IN CDB:
        /// the device does not implement the command or service action.
        unsupported: bool,
    },
    /// Nothing usable came back: an ioctl error, a transport failure, a payload
    /// that does not decode.
    Failed(String),
}

impl<T> PrAnswer<T> {
    /// The value when GOOD.
    pub fn good(&self) -> Option<&T> {
        match self {
            Self::Good(value) => Some(value),
            _ => None,
        }
    }

    /// The answer in words when not GOOD.
    pub fn problem(&self) -> Option<String> {
        match self {
            Self::Good(_) => None,
            Self::Refused { status, sense, .. } => Some(match sense {
                Some(sense) => format!("{status}, {sense}"),
                None => status.clone(),
            }),
            Self::Failed(why) => Some(why.clone()),
        }
    }
}

/// Where the device's reservation state was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// SG_IO on this node (the device, or the first usable path of a map).
    Direct(String),
    /// Through the helper socket.
    Helper,
}

/// The device's reservation state, read once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrState {
    pub source: Source,
    pub capabilities: PrAnswer<ReportCapabilities>,
    pub full_status: PrAnswer<FullStatus>,
}

/// One path of a multipath map (or the device itself, for a single-path disk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathFacts {
    /// Its node (`/dev/sdc`).
    pub node: String,
    /// `MAJ:MIN`.
    pub devnum: String,
    /// Device-mapper's state: active (true) or failed (false); `None` for a
    /// device that is not a map's path.
    pub usable: Option<bool>,
    /// How often the kernel failed it.
    pub fail_count: u32,
    /// The initiator port of this host through this path, when sysfs (or
    /// `--initiator`) tells it.
    pub initiator: Option<TransportId>,
    /// READ FULL STATUS sent on this path, when it was sent.
    pub full_status: Option<PrAnswer<FullStatus>>,
}

/// A process of this host that has the device (or one of its paths) open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opener {
    pub pid: u32,
    /// `/proc/PID/comm`.
    pub command: String,
}

/// A lock on the device node (`/proc/locks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLock {
    /// `POSIX`, `FLOCK`, `OFDLCK`.
    pub kind: String,
    /// `READ` or `WRITE`.
    pub mode: String,
    /// The holder's pid, when the kernel names one (OFD locks have none).
    pub pid: Option<u32>,
}

/// An initiator of the helper's software target and whether its process lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedInitiator {
    pub id: TransportId,
    pub pid: u32,
    /// The process's name while the same process (pid and start time) runs.
    pub alive: Option<String>,
}

/// Everything about the device.
#[derive(Debug, Clone, Default)]
pub struct DeviceFacts {
    /// As given on the command line.
    pub path: String,
    pub kind: DeviceKind,
    /// The device could not be opened for reading (or stat'ed), in words.
    pub open_error: Option<String>,
    /// The device is a path of these multipath maps (its sysfs holders).
    pub path_of_maps: Vec<String>,
    /// Other kernel holders (mounts, dm devices that are not multipath).
    pub held_by: Vec<String>,
    /// Reading the map's table failed, in words (no CAP_SYS_ADMIN, ...).
    pub map_error: Option<String>,
    /// The paths (one for a plain disk, every path for a map).
    pub paths: Vec<PathFacts>,
    /// The reservation state.
    pub pr: Option<PrState>,
    /// This host's initiator ports given with `--initiator`.
    pub extra_initiators: Vec<TransportId>,
    /// Processes holding the device or a path open; `None` when /proc could not
    /// be read completely (not root).
    pub openers: Option<Vec<Opener>>,
    /// Locks on the node.
    pub locks: Vec<NodeLock>,
    /// Initiators of the software target (image files), with their processes.
    pub emulated_initiators: Vec<EmulatedInitiator>,
    /// The SCSI command timeout of the disk (`/sys/block/X/device/timeout`), s.
    pub queue_timeout: Option<u32>,
    /// How PR commands reach the device directly.
    pub route: DirectRoute,
    /// With [`DirectRoute::PrIoctls`]: what the kernel's read ioctls tell.
    pub keys_view: Option<KeysView>,
}

/// What the kernel's PR read ioctls (6.19 and later) tell: keys and the
/// holder's key, without the TransportIDs that registered them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysView {
    pub keys: PrAnswer<ReadKeys>,
    pub reservation: PrAnswer<ReadReservation>,
}

impl DeviceFacts {
    /// This host's initiator ports: every path's, and those given.
    pub fn host_initiators(&self) -> Vec<TransportId> {
        let mut ids: Vec<TransportId> = self
            .paths
            .iter()
            .filter_map(|p| p.initiator.clone())
            .collect();
        for id in &self.extra_initiators {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        ids
    }

    /// Whether this is a multipath map.
    pub fn is_map(&self) -> bool {
        matches!(self.kind, DeviceKind::Multipath { .. })
    }
}

/// The helper's socket file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SocketFile {
    /// Not looked at (`--direct`).
    #[default]
    NotChecked,
    /// No file at the path.
    Missing,
    /// Something that is not a socket.
    NotASocket { what: String },
    /// A socket.
    Socket(FileMode),
}

/// A file's permission bits and owner.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileMode {
    /// The permission bits (`0o7777` part of `st_mode`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Names from the user and group databases, when known.
    pub owner: Option<String>,
    pub group: Option<String>,
}

/// Whether one user may connect to the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The user in words (`root (uid 0)`, `libvirt-qemu (uid 64055)`).
    pub who: String,
    /// Named with `--as` (rather than the caller).
    pub named: bool,
    /// `Ok` or the first permission that is missing, in words.
    pub verdict: Result<(), String>,
    /// The fix for a denial (the command or setting).
    pub fix: Option<String>,
}

/// What connect() answered a process with a named user's uid, gid and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedAccess {
    /// The user in words, as in [`Access::who`].
    pub who: String,
    pub result: Observed,
}

/// The connect probe's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// connect() worked.
    Connected,
    /// connect() failed: the kernel's error in words.
    Refused(String),
    /// The probe itself did not run to the end (no answer from connect()).
    ProbeFailed(String),
}

/// Which helper program runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Program {
    /// Ours.
    PrHelper,
    /// Debian's / QEMU's.
    QemuPrHelper,
    /// Something else, by its executable's name.
    Other(String),
    /// The executable could not be read (another user's process).
    #[default]
    Unknown,
}

/// What `/proc/PID/status` says about confinement.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Confinement {
    /// 0 none, 1 strict, 2 filter.
    pub seccomp: Option<u8>,
    pub no_new_privs: Option<bool>,
    pub cap_eff: Option<u64>,
    pub cap_prm: Option<u64>,
    pub uid: Option<u32>,
}

/// The running helper, from its pid file or the socket's owner in /proc.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HelperProcess {
    pub pid: u32,
    /// How the process was found (`pid file PATH`, `listening on the socket`).
    pub found_by: String,
    pub program: Program,
    /// `PROGRAM --version`, first line.
    pub version: Option<String>,
    /// Its command line could be read.
    pub cmdline_known: bool,
    /// Multipath support on (no `--no-multipath`); ours only.
    pub multipath: bool,
    /// `--emulated-state-dir`.
    pub emulated_state_dir: Option<String>,
    /// `--seccomp MODE` (default kill).
    pub seccomp_mode: Option<String>,
    /// `--no-landlock` absent.
    pub landlock: bool,
    /// `--sgio-timeout` in seconds, as given (default 30).
    pub sgio_timeout: Option<String>,
    /// `--allow-uid` / `--allow-gid` values (names or numbers), resolved to numbers
    /// when the databases know them.
    pub allow_uids: Vec<u32>,
    pub allow_gids: Vec<u32>,
    /// `-u USER` given.
    pub user: Option<String>,
    pub confinement: Confinement,
}

/// Everything about the helper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperFacts {
    /// The socket path.
    pub socket: String,
    /// Helper checks skipped (`--direct`).
    pub skipped: bool,
    pub socket_file: SocketFile,
    /// A directory on the way to the socket that is missing or not searchable, in words.
    pub directory_problem: Option<String>,
    /// The caller's and `--as` user's access.
    pub access: Vec<Access>,
    /// Connecting and the feature handshake: `None` when not tried.
    pub handshake: Option<Result<(), String>>,
    /// READ KEYS through the helper.
    pub read_keys: Option<PrAnswer<Vec<u64>>>,
    /// `--as USER` tried for real (root only): a child with the user's
    /// credentials called connect() on the socket.
    pub observed_access: Option<ObservedAccess>,
    /// The process, or why it was not found.
    pub process: Result<HelperProcess, String>,
}

impl Default for HelperFacts {
    fn default() -> Self {
        Self {
            socket: String::new(),
            skipped: false,
            socket_file: SocketFile::NotChecked,
            directory_problem: None,
            access: Vec::new(),
            handshake: None,
            read_keys: None,
            observed_access: None,
            process: Err("not looked for".to_owned()),
        }
    }
}

/// The caller's privileges.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallerFacts {
    pub uid: u32,
    pub cap_sys_rawio: bool,
    pub cap_sys_admin: bool,
}

/// libvirt's QEMU driver configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LibvirtFacts {
    /// No qemu.conf: libvirt is not installed (or elsewhere).
    #[default]
    Absent,
    /// qemu.conf could not be read.
    Unreadable { path: String, why: String },
    /// qemu.conf's `pr_helper` (None: not set, libvirt's default `qemu-pr-helper`).
    PrHelper { path: String, value: Option<String> },
}

/// How the write test went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteTest {
    /// Not run, and why (the device is not in a state the test may touch).
    Refused(String),
    /// Run: every step in order, the step that failed (if any), and whether the
    /// device was left as found.
    Ran {
        /// Through the helper or SG_IO on the paths.
        route: String,
        /// The throwaway key.
        key: u64,
        /// `(step, result)`: GOOD or the answer in words.
        steps: Vec<(String, Result<(), String>)>,
        /// READ FULL STATUS before and after, equal but for the generation.
        left_as_found: Result<(), String>,
    },
}
