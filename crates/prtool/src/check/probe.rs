//! Looking at the device: what it is (sysfs), its multipath paths and their
//! states (device-mapper's status, through `dm-multipath`'s public API), this
//! host's initiator port on each path (sysfs, or tcm_loop's configfs), PR IN on
//! each path with SG_IO, the processes and locks that hold it. Read-only.

use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use dm_multipath::DevNum;
use dm_multipath::device::NodeLookup;
use dm_multipath::map::MapPaths;
use dm_multipath::table::Status;
use pr_manager::{PrInAction, PrInData, Reply, TransportId, decode_pr_in, pr_in_command};
use scsi::sense::{Sense, key};
use scsi::status::Status as ScsiStatus;

use super::facts::{
    DeviceFacts, DeviceKind, DirectRoute, EmulatedInitiator, KeysView, NodeLock, NvmeFacts, Opener,
    PathFacts, PrAnswer, PrState, Source,
};

/// The allocation length of every PR IN the check sends.
pub const ALLOCATION: u16 = 8192;

/// Where the kernel's views are (tests point these at a fake tree).
#[derive(Debug, Clone)]
pub struct Roots {
    pub sysfs: PathBuf,
    pub configfs: PathBuf,
    pub proc: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Self {
            sysfs: PathBuf::from("/sys"),
            configfs: PathBuf::from("/sys/kernel/config"),
            proc: PathBuf::from("/proc"),
        }
    }
}

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The answer to one PR IN, from a helper's or SG_IO's reply.
pub fn answer_of(action: PrInAction, reply: &Reply, buffer: &[u8]) -> PrAnswer<PrInData> {
    if let Some(failure) = &reply.failure {
        return PrAnswer::Failed(pr_manager::error_chain(failure));
    }
    if reply.status != ScsiStatus::GOOD {
        let sense = reply.decoded_sense();
        let unsupported = sense.is_some_and(|s| {
            s.key == key::ILLEGAL_REQUEST
                && (s == Sense::INVALID_OPCODE || s == Sense::INVALID_FIELD)
        });
        return PrAnswer::Refused {
            status: reply.status.to_string(),
            sense: sense.map(|s| s.to_string()),
            unsupported,
        };
    }
    let payload = buffer.get(..reply.data_len).unwrap_or(&[]);
    match decode_pr_in(action, payload) {
        Ok(data) => PrAnswer::Good(data),
        Err(e) => PrAnswer::Failed(format!("{} payload: {e}", action.name())),
    }
}

/// How often a command is sent again after a UNIT ATTENTION: a device reports
/// a pending one (a preemption, a release, a reset) once per command, then
/// gives the real answer (the helper's multipath engine does the same).
pub const UNIT_ATTENTION_RETRIES: usize = 4;

/// Whether a reply is a UNIT ATTENTION (to be sent again).
pub fn is_unit_attention(reply: &Reply) -> bool {
    reply.failure.is_none()
        && reply
            .decoded_sense()
            .is_some_and(|s| s.key == key::UNIT_ATTENTION)
}

/// Sends with `send` until the answer is not a UNIT ATTENTION (at most
/// [`UNIT_ATTENTION_RETRIES`] more times).
pub fn past_unit_attentions<E>(mut send: impl FnMut() -> Result<Reply, E>) -> Result<Reply, E> {
    let mut reply = send()?;
    for _ in 0..UNIT_ATTENTION_RETRIES {
        if !is_unit_attention(&reply) {
            break;
        }
        reply = send()?;
    }
    Ok(reply)
}

/// Sends one PR IN on `fd` directly: SG_IO, or on an NVMe namespace (and a
/// block device without SG_IO) through blk-pr, answered as SCSI.
pub fn direct_pr_in(
    fd: BorrowedFd<'_>,
    action: PrInAction,
    timeout: Duration,
) -> PrAnswer<PrInData> {
    let cdb = pr_in_command(action, ALLOCATION);
    let mut buffer = vec![0u8; usize::from(ALLOCATION)];
    let file = match fd.try_clone_to_owned() {
        Ok(fd) => fs::File::from(fd),
        Err(e) => return PrAnswer::Failed(format!("dup: {e}")),
    };
    let sent = past_unit_attentions(|| {
        crate::direct::send(
            &file,
            &cdb,
            pr_manager::DataTransfer::FromDevice(&mut buffer),
            timeout,
            crate::args::DirectPath::Auto,
        )
    });
    match sent {
        Ok(reply) => answer_of(action, &reply, &buffer),
        Err(e) => PrAnswer::Failed(e),
    }
}

/// READ FULL STATUS, typed.
pub fn full_status_of(answer: PrAnswer<PrInData>) -> PrAnswer<pr_manager::FullStatus> {
    map_answer(answer, |data| match data {
        PrInData::FullStatus(d) => Some(d.value),
        _ => None,
    })
}

/// REPORT CAPABILITIES, typed.
pub fn capabilities_of(answer: PrInData) -> Option<pr_manager::ReportCapabilities> {
    match answer {
        PrInData::Capabilities(d) => Some(d.value),
        _ => None,
    }
}

/// READ KEYS, typed.
pub fn keys_of(answer: PrAnswer<PrInData>) -> PrAnswer<Vec<u64>> {
    map_answer(answer, |data| match data {
        PrInData::Keys(d) => Some(d.value.keys),
        _ => None,
    })
}

pub fn map_answer<T>(
    answer: PrAnswer<PrInData>,
    pick: impl FnOnce(PrInData) -> Option<T>,
) -> PrAnswer<T> {
    match answer {
        PrAnswer::Good(data) => match pick(data) {
            Some(value) => PrAnswer::Good(value),
            None => PrAnswer::Failed("the payload is of another service action".to_owned()),
        },
        PrAnswer::Refused {
            status,
            sense,
            unsupported,
        } => PrAnswer::Refused {
            status,
            sense,
            unsupported,
        },
        PrAnswer::Failed(why) => PrAnswer::Failed(why),
    }
}

/// The device's facts, with PR state read directly where it can be. `fd` is
/// the device opened read-only, when that worked.
pub fn probe_device(
    roots: &Roots,
    path: &Path,
    fd: Option<BorrowedFd<'_>>,
    timeout: Duration,
) -> DeviceFacts {
    let mut facts = DeviceFacts {
        path: path.display().to_string(),
        ..DeviceFacts::default()
    };
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => {
            facts.kind = DeviceKind::Missing;
            facts.open_error = Some(e.to_string());
            return facts;
        }
    };
    let file_type = meta.file_type();
    if file_type.is_file() {
        facts.kind = DeviceKind::ImageFile;
        facts.locks = locks_on(roots, meta.dev(), meta.ino());
        facts.openers = openers_of(roots, &|m: &fs::Metadata| {
            m.file_type().is_file() && m.dev() == meta.dev() && m.ino() == meta.ino()
        });
        return facts;
    }
    let dev = DevNum::from_rdev(meta.rdev());
    let sys_dir = if file_type.is_block_device() {
        roots.sysfs.join("dev/block").join(dev.to_string())
    } else if file_type.is_char_device() && dev.major == sg_io::SG_MAJOR {
        roots.sysfs.join("dev/char").join(dev.to_string())
    } else {
        facts.kind = DeviceKind::Other {
            what: if file_type.is_dir() {
                "a directory".to_owned()
            } else if file_type.is_char_device() {
                format!("character device {dev}")
            } else {
                "not a device".to_owned()
            },
        };
        return facts;
    };
    facts.locks = locks_on(roots, meta.dev(), meta.ino());
    // Guests open the device they are given (the map, not its paths, which
    // multipathd and the helper hold open themselves).
    let rdevs = [meta.rdev()];
    facts.kind = classify(roots, &sys_dir, file_type.is_char_device());
    facts.queue_timeout = read_trimmed(sys_dir.join("device/timeout")).and_then(|t| t.parse().ok());
    // An sg node's holders are its disk's (a map over that disk, a mount).
    let holder_dir = match &facts.kind {
        DeviceKind::ScsiGeneric { disk: Some(disk) } => roots.sysfs.join("block").join(disk),
        _ => sys_dir.clone(),
    };
    let holder_dev = read_trimmed(holder_dir.join("dev"))
        .and_then(|d| d.parse().ok())
        .unwrap_or(dev);
    holders(roots, &holder_dir, holder_dev, &mut facts);
    match facts.kind.clone() {
        DeviceKind::Multipath { .. } => {
            map_paths(roots, dev, timeout, &mut facts);
            // The map has no SCSI timeout of its own: its first path's.
            facts.queue_timeout = facts.paths.first().and_then(|p| {
                read_trimmed(
                    roots
                        .sysfs
                        .join("dev/block")
                        .join(&p.devnum)
                        .join("device/timeout"),
                )
                .and_then(|t| t.parse().ok())
            });
            let first_usable = facts.paths.iter().find(|p| {
                p.usable == Some(true) && matches!(p.full_status, Some(PrAnswer::Good(_)))
            });
            if let Some(first) = first_usable {
                let node = first.node.clone();
                let full = first.full_status.clone();
                let lookup = NodeLookup {
                    sysfs: roots.sysfs.clone(),
                    dev_dir: PathBuf::from("/dev"),
                };
                let caps = first
                    .devnum
                    .parse::<DevNum>()
                    .ok()
                    .and_then(|d| lookup.open(d).ok())
                    .map(|fd| capabilities(fd.as_fd(), timeout))
                    .unwrap_or_else(|| PrAnswer::Failed(format!("cannot open {node}")));
                if let Some(full) = full {
                    facts.pr = Some(PrState {
                        source: Source::Direct(node),
                        capabilities: caps,
                        full_status: full,
                    });
                }
            }
        }
        DeviceKind::ScsiDisk | DeviceKind::ScsiGeneric { .. } => {
            facts.paths.push(PathFacts {
                node: path.display().to_string(),
                devnum: dev.to_string(),
                usable: None,
                fail_count: 0,
                initiator: scsi_initiator(roots, &sys_dir.join("device")),
                full_status: None,
            });
            if let Some(fd) = fd {
                if file_type.is_block_device() && sg_io_missing(fd, timeout) {
                    facts.route = DirectRoute::PrIoctls;
                    facts.keys_view = Some(keys_view(fd, timeout));
                }
                facts.pr = Some(direct_state(path, fd, timeout));
            }
        }
        DeviceKind::Nvme(nvme) => {
            facts.route = DirectRoute::Nvme;
            let mut host_ids = nvme
                .host_ids
                .iter()
                .filter_map(|id| nvme_host_transport_id(id));
            facts.paths.push(PathFacts {
                node: path.display().to_string(),
                devnum: dev.to_string(),
                usable: None,
                fail_count: 0,
                initiator: host_ids.next(),
                full_status: None,
            });
            facts.extra_initiators.extend(host_ids);
            if let Some(fd) = fd {
                if !matches!(blk_pr::probe(fd), blk_pr::PrPath::Nvme { .. }) {
                    // A namespace node that takes no NVMe passthrough: the
                    // kernel's PR ioctls answer instead.
                    facts.route = DirectRoute::PrIoctls;
                    facts.keys_view = Some(keys_view(fd, timeout));
                }
                facts.pr = Some(direct_state(path, fd, timeout));
            }
        }
        _ => {}
    }
    facts.openers = openers_of(roots, &|m: &fs::Metadata| {
        (m.file_type().is_block_device() || m.file_type().is_char_device())
            && rdevs.contains(&m.rdev())
    });
    facts
}

/// REPORT CAPABILITIES and READ FULL STATUS sent on the device itself.
fn direct_state(path: &Path, fd: BorrowedFd<'_>, timeout: Duration) -> PrState {
    PrState {
        source: Source::Direct(path.display().to_string()),
        capabilities: capabilities(fd, timeout),
        full_status: full_status_of(direct_pr_in(fd, PrInAction::ReadFullStatus, timeout)),
    }
}

/// Whether the block device takes no SG_IO at all (the ioctl fails with
/// ENOTTY or EINVAL): then pr-manager's direct mode, and the check, use the
/// kernel's PR ioctls.
fn sg_io_missing(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let cdb = pr_in_command(PrInAction::ReadKeys, ALLOCATION);
    sg_io::execute_pr(fd, &cdb, &[], timeout)
        .outcome
        .and_then(|outcome| outcome.errno)
        .is_some_and(|errno| errno == scsi::errno::ENOTTY || errno == scsi::errno::EINVAL)
}

/// READ KEYS and READ RESERVATION through the kernel's read ioctls.
fn keys_view(fd: BorrowedFd<'_>, timeout: Duration) -> KeysView {
    KeysView {
        keys: map_answer(
            direct_pr_in(fd, PrInAction::ReadKeys, timeout),
            |d| match d {
                PrInData::Keys(d) => Some(d.value),
                _ => None,
            },
        ),
        reservation: map_answer(
            direct_pr_in(fd, PrInAction::ReadReservation, timeout),
            |d| match d {
                PrInData::Reservation(d) => Some(d.value),
                _ => None,
            },
        ),
    }
}

fn capabilities(fd: BorrowedFd<'_>, timeout: Duration) -> PrAnswer<pr_manager::ReportCapabilities> {
    map_answer(
        direct_pr_in(fd, PrInAction::ReportCapabilities, timeout),
        capabilities_of,
    )
}

/// What the sysfs directory of a block (or sg) device says it is.
pub fn classify(roots: &Roots, sys_dir: &Path, char_device: bool) -> DeviceKind {
    let name = sys_dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    if char_device {
        let disk = fs::read_dir(sys_dir.join("device/block"))
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned());
        return DeviceKind::ScsiGeneric { disk };
    }
    if sys_dir.join("partition").exists() {
        let disk = sys_dir
            .canonicalize()
            .ok()
            .and_then(|p| {
                p.parent()
                    .and_then(|d| d.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_default();
        return DeviceKind::Partition { disk };
    }
    if sys_dir.join("dm").exists() {
        let map = read_trimmed(sys_dir.join("dm/name")).unwrap_or(name);
        return match dm_targets(sys_dir) {
            Ok(targets) if targets.len() == 1 && targets[0].target_type == "multipath" => {
                DeviceKind::Multipath { map }
            }
            Ok(targets) => DeviceKind::DeviceMapper {
                map,
                targets: targets
                    .iter()
                    .map(|t| t.target_type.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            // Not allowed to read the table: multipathd names its maps' uuids.
            Err(_)
                if read_trimmed(sys_dir.join("dm/uuid"))
                    .is_some_and(|u| u.starts_with("mpath-")) =>
            {
                DeviceKind::Multipath { map }
            }
            Err(e) => DeviceKind::DeviceMapper {
                map,
                targets: format!("table unreadable: {e}"),
            },
        };
    }
    if sys_dir.join("loop").exists() {
        return DeviceKind::Loop {
            backing: read_trimmed(sys_dir.join("loop/backing_file")),
        };
    }
    if name.starts_with("nvme") {
        return DeviceKind::Nvme(nvme_facts(roots, sys_dir));
    }
    if sys_dir.join("device/scsi_level").exists() {
        return DeviceKind::ScsiDisk;
    }
    let driver = fs::read_link(sys_dir.join("device/driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    DeviceKind::OtherBlock {
        what: driver.unwrap_or(name),
    }
}

fn nvme_facts(_roots: &Roots, sys_dir: &Path) -> NvmeFacts {
    let mut facts = NvmeFacts {
        nsid: read_trimmed(sys_dir.join("nsid")),
        ..NvmeFacts::default()
    };
    // A namespace under native multipath sits below the subsystem; without it,
    // below its controller.
    let device = sys_dir.join("device");
    facts.subsystem_nqn = read_trimmed(device.join("subsysnqn"));
    if let Ok(entries) = fs::read_dir(&device) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("nvme") && entry.path().join("transport").exists() {
                facts.controllers.push(name);
            }
        }
    }
    if facts.controllers.is_empty() && device.join("transport").exists() {
        if let Some(name) = device
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        {
            facts.controllers.push(name);
        }
        facts.transport = read_trimmed(device.join("transport"));
    } else if let Some(first) = facts.controllers.first() {
        facts.transport = read_trimmed(device.join(first).join("transport"));
    }
    facts.controllers.sort();
    // The host ID this host presents: the controller's (without native
    // multipath), else each controller's below the subsystem.
    let mut host_id_files = vec![device.join("hostid")];
    host_id_files.extend(
        facts
            .controllers
            .iter()
            .map(|c| device.join(c).join("hostid")),
    );
    for id in host_id_files.iter().filter_map(read_trimmed) {
        let id = id.to_ascii_lowercase();
        if !facts.host_ids.contains(&id) {
            facts.host_ids.push(id);
        }
    }
    facts
}

/// The TransportID READ FULL STATUS names an NVMe host by (blk-pr's
/// translation): its host ID as a UUID-based host NQN in an iSCSI TransportID.
/// `None` for a host ID that is no UUID (or all zeros: not set).
pub fn nvme_host_transport_id(host_id: &str) -> Option<TransportId> {
    let digits: Vec<char> = host_id.chars().filter(|c| *c != '-').collect();
    let uuid_shape = host_id.len() == 36
        && digits.len() == 32
        && digits.iter().all(char::is_ascii_hexdigit)
        && [8, 13, 18, 23]
            .iter()
            .all(|&i| host_id.as_bytes().get(i) == Some(&b'-'));
    if !uuid_shape || digits.iter().all(|c| *c == '0') {
        return None;
    }
    Some(TransportId::iscsi(format!(
        "{}{}",
        blk_pr::nvme::HOST_NQN_UUID_PREFIX,
        host_id.to_ascii_lowercase()
    )))
}

/// The live table's targets of a device-mapper device, through the control node.
fn dm_targets(sys_dir: &Path) -> std::io::Result<Vec<dm_multipath::ioctl_data::Target>> {
    let dev: DevNum = read_trimmed(sys_dir.join("dev"))
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| std::io::Error::other("no dev attribute"))?;
    let control = open_control()?;
    dm_multipath::sys::table_status(control.as_fd(), dev.rdev(), true)
}

fn open_control() -> std::io::Result<OwnedFd> {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/mapper/control")?;
    Ok(OwnedFd::from(file))
}

/// Holders in sysfs (a multipath map over this path, another dm device) and mounts.
fn holders(roots: &Roots, sys_dir: &Path, dev: DevNum, facts: &mut DeviceFacts) {
    if let Ok(entries) = fs::read_dir(sys_dir.join("holders")) {
        for entry in entries.flatten() {
            let holder = entry.path();
            let name = read_trimmed(holder.join("dm/name"))
                .unwrap_or_else(|| entry.file_name().to_string_lossy().into_owned());
            let multipath = matches!(
                dm_targets(&holder),
                Ok(t) if t.len() == 1 && t[0].target_type == "multipath"
            ) || read_trimmed(holder.join("dm/uuid"))
                .is_some_and(|u| u.starts_with("mpath-"));
            if multipath {
                facts.path_of_maps.push(name);
            } else {
                facts.held_by.push(format!("device-mapper device {name}"));
            }
        }
    }
    if let Ok(mounts) = fs::read_to_string(roots.proc.join("self/mountinfo")) {
        for line in mounts.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.get(2) == Some(&dev.to_string().as_str()) {
                if let Some(point) = fields.get(4) {
                    facts.held_by.push(format!("a mount on {point}"));
                }
            }
        }
    }
}

/// A map's paths from device-mapper's status, each path's initiator and its
/// READ FULL STATUS (usable paths only).
fn map_paths(roots: &Roots, dev: DevNum, timeout: Duration, facts: &mut DeviceFacts) {
    let lookup = NodeLookup {
        sysfs: roots.sysfs.clone(),
        dev_dir: PathBuf::from("/dev"),
    };
    let status = open_control()
        .and_then(|control| dm_multipath::sys::table_status(control.as_fd(), dev.rdev(), false));
    let paths = match status {
        Ok(targets) => match targets.first().map(|t| Status::parse(&t.params)) {
            Some(Ok(status)) => MapPaths::from_status(&status),
            Some(Err(e)) => {
                facts.map_error = Some(format!("the map's status does not parse: {e}"));
                return;
            }
            None => {
                facts.map_error = Some("the map has no table loaded".to_owned());
                return;
            }
        },
        Err(e) => {
            facts.map_error = Some(format!("DM_TABLE_STATUS: {e}"));
            // The paths without their states, from sysfs.
            let slaves = roots
                .sysfs
                .join("dev/block")
                .join(dev.to_string())
                .join("slaves");
            if let Ok(entries) = fs::read_dir(slaves) {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let devnum = read_trimmed(entry.path().join("dev")).unwrap_or_default();
                    facts.paths.push(PathFacts {
                        node: format!("/dev/{name}"),
                        devnum,
                        usable: None,
                        fail_count: 0,
                        initiator: scsi_initiator(roots, &entry.path().join("device")),
                        full_status: None,
                    });
                }
            }
            return;
        }
    };
    for p in &paths.paths {
        let node = lookup
            .node_name(p.dev)
            .map(|n| format!("/dev/{n}"))
            .unwrap_or_else(|_| p.dev.to_string());
        let sys_dir = roots.sysfs.join("dev/block").join(p.dev.to_string());
        let full_status = p.usable.then(|| match lookup.open(p.dev) {
            Ok(fd) => full_status_of(direct_pr_in(
                fd.as_fd(),
                PrInAction::ReadFullStatus,
                timeout,
            )),
            Err(e) => PrAnswer::Failed(pr_manager::error_chain(&e)),
        });
        facts.paths.push(PathFacts {
            node,
            devnum: p.dev.to_string(),
            usable: Some(p.usable),
            fail_count: p.fail_count,
            initiator: scsi_initiator(roots, &sys_dir.join("device")),
            full_status,
        });
    }
}

/// This host's initiator port behind the SCSI device whose sysfs `device`
/// directory is `device`: Fibre Channel (`fc_host` port name), iSCSI (the
/// session's initiator name and ISID), SAS (the host's phy address), or
/// tcm_loop (the nexus configured for the host's TPG in configfs).
pub fn scsi_initiator(roots: &Roots, device: &Path) -> Option<TransportId> {
    let real = device.canonicalize().ok()?;
    let components: Vec<String> = real
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let host: u32 = components
        .iter()
        .find_map(|c| c.strip_prefix("host").and_then(|n| n.parse().ok()))?;
    let class = roots.sysfs.join("class");
    if let Some(port) = read_trimmed(class.join(format!("fc_host/host{host}/port_name"))) {
        let n_port_name = u64::from_str_radix(port.trim_start_matches("0x"), 16).ok()?;
        return Some(TransportId::FibreChannel { n_port_name });
    }
    if let Some(session) = components.iter().find(|c| c.starts_with("session")) {
        let dir = class.join("iscsi_session").join(session);
        let name = read_trimmed(dir.join("initiatorname"))?;
        let isid =
            read_trimmed(dir.join("isid")).map(|i| i.trim_start_matches("0x").to_ascii_lowercase());
        return Some(TransportId::Iscsi { name, isid });
    }
    if class.join(format!("sas_host/host{host}")).exists() {
        if let Some(address) = sas_host_address(&class, host) {
            return Some(TransportId::Sas { address });
        }
    }
    let proc_name = read_trimmed(class.join(format!("scsi_host/host{host}/proc_name")));
    // tcm_loop's host template calls itself "tcm_loopback".
    if proc_name.is_some_and(|name| name.starts_with("tcm_loop")) {
        return tcm_loop_initiator(roots, host);
    }
    None
}

/// The SAS address of SCSI host `host`'s first phy.
fn sas_host_address(class: &Path, host: u32) -> Option<u64> {
    let prefix = format!("phy-{host}:");
    let mut phys: Vec<_> = fs::read_dir(class.join("sas_phy"))
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix) && n.matches(':').count() == 1)
        .collect();
    phys.sort();
    let address = read_trimmed(
        class
            .join("sas_phy")
            .join(phys.first()?)
            .join("sas_address"),
    )?;
    u64::from_str_radix(address.trim_start_matches("0x"), 16).ok()
}

/// tcm_loop: the TPG whose `address` names SCSI host `host` (`H:C:T`), and the
/// initiator WWN of its nexus; the fabric emulates SAS for `naa.`, FC for `fc.`
/// and iSCSI for `iqn.` names.
fn tcm_loop_initiator(roots: &Roots, host: u32) -> Option<TransportId> {
    let loopback = roots.configfs.join("target/loopback");
    for wwn in fs::read_dir(loopback).ok()?.flatten() {
        // Files sit next to the WWN directories (the fabric's `version`).
        let Ok(tpgs) = fs::read_dir(wwn.path()) else {
            continue;
        };
        for tpg in tpgs.flatten() {
            let Some(address) = read_trimmed(tpg.path().join("address")) else {
                continue;
            };
            let tpg_host: Option<u32> = address.split(':').next().and_then(|h| h.parse().ok());
            if tpg_host != Some(host) {
                continue;
            }
            let nexus = read_trimmed(tpg.path().join("nexus"))?;
            return transport_id_of_wwn(&nexus);
        }
    }
    None
}

/// A tcm_loop nexus WWN as the transport ID the target reports for it.
pub fn transport_id_of_wwn(wwn: &str) -> Option<TransportId> {
    if let Some(hex) = wwn.strip_prefix("naa.") {
        return u64::from_str_radix(hex, 16)
            .ok()
            .map(|address| TransportId::Sas { address });
    }
    if let Some(hex) = wwn.strip_prefix("fc.") {
        return u64::from_str_radix(hex, 16)
            .ok()
            .map(|n_port_name| TransportId::FibreChannel { n_port_name });
    }
    wwn.starts_with("iqn.").then(|| TransportId::iscsi(wwn))
}

/// Every process in /proc: its pid and its directory.
pub fn processes(roots: &Roots) -> Option<impl Iterator<Item = (u32, PathBuf)>> {
    let entries = fs::read_dir(&roots.proc).ok()?;
    Some(entries.flatten().filter_map(|entry| {
        let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
        Some((pid, entry.path()))
    }))
}

/// Processes whose open descriptors match `matches` (by what they point at);
/// `None` when some process's descriptors could not be read (not root).
fn openers_of(roots: &Roots, matches: &dyn Fn(&fs::Metadata) -> bool) -> Option<Vec<Opener>> {
    let own = std::process::id();
    let mut openers = Vec::new();
    let mut complete = true;
    for (pid, dir) in processes(roots)? {
        if pid == own {
            continue;
        }
        let fds = match fs::read_dir(dir.join("fd")) {
            Ok(fds) => fds,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                complete = false;
                continue;
            }
            Err(_) => continue,
        };
        let holds = fds
            .flatten()
            .any(|fd| fs::metadata(fd.path()).is_ok_and(|m| matches(&m)));
        if holds {
            let command = read_trimmed(dir.join("comm")).unwrap_or_default();
            openers.push(Opener { pid, command });
        }
    }
    openers.sort_by_key(|o| o.pid);
    complete.then_some(openers)
}

/// Locks on the inode `(dev, ino)` listed in `/proc/locks`.
fn locks_on(roots: &Roots, dev: u64, ino: u64) -> Vec<NodeLock> {
    let text = fs::read_to_string(roots.proc.join("locks")).unwrap_or_default();
    parse_locks(&text, dev, ino)
}

/// `/proc/locks` lines about inode `ino` on device `dev` (waiters, `->`, skipped).
pub fn parse_locks(text: &str, dev: u64, ino: u64) -> Vec<NodeLock> {
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let mut locks = Vec::new();
    for line in text.lines() {
        if line.contains("->") {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        // id: KIND ADVISORY MODE PID MAJ:MIN:INO START END
        let (Some(kind), Some(mode), Some(pid), Some(inode)) =
            (fields.get(1), fields.get(3), fields.get(4), fields.get(5))
        else {
            continue;
        };
        let mut parts = inode.split(':');
        let (Some(maj), Some(min), Some(i)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let same = u32::from_str_radix(maj, 16).ok() == Some(major)
            && u32::from_str_radix(min, 16).ok() == Some(minor)
            && i.parse::<u64>().ok() == Some(ino);
        if same {
            locks.push(NodeLock {
                kind: (*kind).to_owned(),
                mode: (*mode).to_owned(),
                pid: pid
                    .parse::<i64>()
                    .ok()
                    .filter(|p| *p > 0)
                    .and_then(|p| u32::try_from(p).ok()),
            });
        }
    }
    locks
}

/// The pid and start time in a software-target initiator name
/// (`iqn.2026-11.invalid.pr-helper:pid-PID.start-TICKS`, or `sid-` for a session).
pub fn emulated_identity(id: &TransportId) -> Option<(u32, u64)> {
    let TransportId::Iscsi { name, .. } = id else {
        return None;
    };
    let rest = name.strip_prefix("iqn.2026-11.invalid.pr-helper:")?;
    let rest = rest
        .strip_prefix("pid-")
        .or_else(|| rest.strip_prefix("sid-"))?;
    let (pid, start) = rest.split_once(".start-")?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// Field 22 of `/proc/PID/stat` (after the command in parentheses).
pub fn start_ticks(stat: &str) -> Option<u64> {
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The software target's initiators among `ids`, and whether each process lives.
pub fn emulated_initiators(roots: &Roots, ids: &[TransportId]) -> Vec<EmulatedInitiator> {
    ids.iter()
        .filter_map(|id| {
            let (pid, start) = emulated_identity(id)?;
            let dir = roots.proc.join(pid.to_string());
            let alive = fs::read_to_string(dir.join("stat"))
                .ok()
                .and_then(|stat| start_ticks(&stat))
                .filter(|ticks| *ticks == start)
                .map(|_| read_trimmed(dir.join("comm")).unwrap_or_default());
            Some(EmulatedInitiator {
                id: id.clone(),
                pid,
                alive,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_of_one_inode() {
        let text = "1: OFDLCK ADVISORY  READ  -1 00:05:1234 100 101\n\
                    2: POSIX  ADVISORY  WRITE 4242 00:05:1234 0 EOF\n\
                    2: -> POSIX  ADVISORY  WRITE 4243 00:05:1234 0 EOF\n\
                    3: FLOCK  ADVISORY  WRITE 99 fd:01:1234 0 EOF\n";
        let dev = rustix::fs::makedev(0, 5);
        let locks = parse_locks(text, dev, 1234);
        assert_eq!(
            locks,
            [
                NodeLock {
                    kind: "OFDLCK".into(),
                    mode: "READ".into(),
                    pid: None
                },
                NodeLock {
                    kind: "POSIX".into(),
                    mode: "WRITE".into(),
                    pid: Some(4242)
                }
            ]
        );
        assert!(parse_locks(text, dev, 1).is_empty());
        assert_eq!(
            parse_locks(text, rustix::fs::makedev(0xfd, 1), 1234).len(),
            1
        );
    }

    #[test]
    fn software_target_initiator_names() {
        let id = TransportId::iscsi("iqn.2026-11.invalid.pr-helper:pid-4321.start-987");
        assert_eq!(emulated_identity(&id), Some((4321, 987)));
        let sid = TransportId::iscsi("iqn.2026-11.invalid.pr-helper:sid-12.start-5");
        assert_eq!(emulated_identity(&sid), Some((12, 5)));
        assert_eq!(emulated_identity(&TransportId::iscsi("iqn.x:y")), None);
        assert_eq!(emulated_identity(&TransportId::Sas { address: 1 }), None);
        let stat = "4321 (qemu (x) y) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987 20";
        assert_eq!(start_ticks(stat), Some(987));
    }

    #[test]
    fn tcm_loop_wwns() {
        assert_eq!(
            transport_id_of_wwn("naa.5001405000000a01"),
            Some(TransportId::Sas {
                address: 0x5001_4050_0000_0a01
            })
        );
        assert_eq!(
            transport_id_of_wwn("fc.2100001b32a9e2c1"),
            Some(TransportId::FibreChannel {
                n_port_name: 0x2100_001b_32a9_e2c1
            })
        );
        assert_eq!(
            transport_id_of_wwn("iqn.2026-11.org.example:a"),
            Some(TransportId::iscsi("iqn.2026-11.org.example:a"))
        );
        assert_eq!(transport_id_of_wwn("eui.1"), None);
    }

    /// A fake sysfs NVMe namespace under native multipath: two controllers.
    #[test]
    fn an_nvme_namespace_from_sysfs() {
        let root = tempfile::tempdir().unwrap();
        let subsys = root
            .path()
            .join("devices/virtual/nvme-subsystem/nvme-subsys0");
        let ns = subsys.join("nvme0n1");
        for dir in [&ns, &subsys.join("nvme0"), &subsys.join("nvme1")] {
            fs::create_dir_all(dir).unwrap();
        }
        fs::write(ns.join("nsid"), "1\n").unwrap();
        fs::write(subsys.join("subsysnqn"), "nqn.2026-11.org.example:sub\n").unwrap();
        fs::write(subsys.join("nvme0/transport"), "tcp\n").unwrap();
        fs::write(subsys.join("nvme1/transport"), "tcp\n").unwrap();
        std::os::unix::fs::symlink(&subsys, ns.join("device")).unwrap();
        let roots = Roots {
            sysfs: root.path().to_path_buf(),
            configfs: root.path().join("config"),
            proc: root.path().join("proc"),
        };
        assert_eq!(
            classify(&roots, &ns, false),
            DeviceKind::Nvme(NvmeFacts {
                nsid: Some("1".into()),
                subsystem_nqn: Some("nqn.2026-11.org.example:sub".into()),
                controllers: vec!["nvme0".into(), "nvme1".into()],
                transport: Some("tcp".into()),
                host_ids: vec![],
            })
        );
        // A partition and a loop device.
        let part = root.path().join("block/sda/sda1");
        fs::create_dir_all(&part).unwrap();
        fs::write(part.join("partition"), "1\n").unwrap();
        assert_eq!(
            classify(&roots, &part, false),
            DeviceKind::Partition { disk: "sda".into() }
        );
        let lo = root.path().join("block/loop0");
        fs::create_dir_all(lo.join("loop")).unwrap();
        fs::write(lo.join("loop/backing_file"), "/tmp/x.img\n").unwrap();
        assert_eq!(
            classify(&roots, &lo, false),
            DeviceKind::Loop {
                backing: Some("/tmp/x.img".into())
            }
        );
        let vd = root.path().join("block/vda");
        fs::create_dir_all(&vd).unwrap();
        assert_eq!(
            classify(&roots, &vd, false),
            DeviceKind::OtherBlock { what: "vda".into() }
        );
    }

    /// A namespace without native multipath: below its controller, whose
    /// `hostid` is this host's; and under a subsystem, each controller's.
    #[test]
    fn an_nvme_namespace_host_id_from_sysfs() {
        let root = tempfile::tempdir().unwrap();
        let ctrl = root.path().join("devices/virtual/nvme-fabrics/ctl/nvme0");
        let ns = root.path().join("block/nvme0n1");
        fs::create_dir_all(&ctrl).unwrap();
        fs::create_dir_all(&ns).unwrap();
        fs::write(ns.join("nsid"), "1\n").unwrap();
        fs::write(ctrl.join("transport"), "loop\n").unwrap();
        fs::write(ctrl.join("subsysnqn"), "nqn.2026-12.io.pr-rs:nvme-pr\n").unwrap();
        fs::write(
            ctrl.join("hostid"),
            "5001405A-0000-4000-8000-000000000A01\n",
        )
        .unwrap();
        std::os::unix::fs::symlink(&ctrl, ns.join("device")).unwrap();
        let roots = Roots {
            sysfs: root.path().to_path_buf(),
            configfs: root.path().join("config"),
            proc: root.path().join("proc"),
        };
        let DeviceKind::Nvme(nvme) = classify(&roots, &ns, false) else {
            panic!("not nvme");
        };
        assert_eq!(nvme.controllers, ["nvme0"]);
        assert_eq!(nvme.transport.as_deref(), Some("loop"));
        assert_eq!(nvme.host_ids, ["5001405a-0000-4000-8000-000000000a01"]);
        assert_eq!(
            nvme_host_transport_id(&nvme.host_ids[0]),
            Some(TransportId::iscsi(
                "nqn.2014-08.org.nvmexpress:uuid:5001405a-0000-4000-8000-000000000a01"
            ))
        );
        // The same as blk-pr's translation names the host in READ FULL STATUS.
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&[0x50, 0x01, 0x40, 0x5a]);
        bytes[6] = 0x40;
        bytes[8] = 0x80;
        bytes[14] = 0x0a;
        bytes[15] = 0x01;
        assert_eq!(
            nvme_host_transport_id(&nvme.host_ids[0]),
            Some(blk_pr::nvme::HostId(bytes).transport_id())
        );
    }

    #[test]
    fn host_ids_that_are_no_uuid() {
        for bad in [
            "",
            "00000000-0000-0000-0000-000000000000",
            "5001405a00004000800000000000a01",
            "5001405a-0000-4000-8000-00000000zz01",
            "5001405a0-000-4000-8000-000000000a01",
        ] {
            assert_eq!(nvme_host_transport_id(bad), None, "{bad}");
        }
    }

    /// A fake sysfs and configfs: a tcm_loop disk on host 3 and an FC disk on host 5.
    #[test]
    fn initiators_from_a_sysfs_tree() {
        let root = tempfile::tempdir().unwrap();
        let sysfs = root.path().join("sys");
        let configfs = root.path().join("config");
        let mk = |p: &Path| fs::create_dir_all(p).unwrap();
        let write = |p: PathBuf, text: &str| {
            mk(p.parent().unwrap());
            fs::write(p, text).unwrap();
        };
        let loop_dev = sysfs.join("devices/tcm_loop_0/host3/target3:0:1/3:0:1:0");
        mk(&loop_dev);
        write(
            sysfs.join("class/scsi_host/host3/proc_name"),
            "tcm_loopback\n",
        );
        write(
            configfs.join("target/loopback/naa.5001405000000f01/tpgt_1/address"),
            "3:0:1\n",
        );
        write(
            configfs.join("target/loopback/naa.5001405000000f01/tpgt_1/nexus"),
            "naa.5001405000000a01\n",
        );
        // The fabric's own attribute, a file among the WWN directories.
        write(configfs.join("target/loopback/version"), "v1\n");
        write(
            configfs.join("target/loopback/naa.5001405000000f02/tpgt_1/address"),
            "4:0:1\n",
        );
        write(
            configfs.join("target/loopback/naa.5001405000000f02/tpgt_1/nexus"),
            "naa.5001405000000a02\n",
        );
        let fc_dev = sysfs.join("devices/pci0/host5/rport-5:0-0/target5:0:0/5:0:0:1");
        mk(&fc_dev);
        write(
            sysfs.join("class/fc_host/host5/port_name"),
            "0x21000024ff000001\n",
        );
        let unknown = sysfs.join("devices/virtio/host7/target7:0:0/7:0:0:0");
        mk(&unknown);
        let roots = Roots {
            sysfs: sysfs.clone(),
            configfs,
            proc: root.path().join("proc"),
        };
        assert_eq!(
            scsi_initiator(&roots, &loop_dev),
            Some(TransportId::Sas {
                address: 0x5001_4050_0000_0a01
            })
        );
        assert_eq!(
            scsi_initiator(&roots, &fc_dev),
            Some(TransportId::FibreChannel {
                n_port_name: 0x2100_0024_ff00_0001
            })
        );
        assert_eq!(scsi_initiator(&roots, &unknown), None);
    }
}
