//! The findings engine: [`Facts`] in, a verdict and one finding per fact worth
//! saying out. No I/O: every input is in the facts, so each rule is tested with
//! facts built by hand.
//!
//! Severity decides the verdict: any `not-ready` finding makes the device not
//! ready, else any `degraded` one makes it degraded, else it is ready. `ok` and
//! `note` findings say what was checked and what was seen.

use pr_manager::{FullStatus, FullStatusDescriptor, ReservationType, TransportId};

use super::facts::{
    DeviceKind, DirectRoute, Facts, KeysView, Observed, PathFacts, PrAnswer, Program, SocketFile,
    Source, WriteTest,
};
use crate::render::human::transport_id_words;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Checked, and fine.
    Ok,
    /// Worth knowing; changes nothing.
    Note,
    /// Works now, but a failure or a change will break fencing.
    Degraded,
    /// Reservations will not work as a cluster needs.
    NotReady,
}

impl Severity {
    /// The stable name (JSON, text).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Note => "note",
            Self::Degraded => "degraded",
            Self::NotReady => "not-ready",
        }
    }
}

/// The overall answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ready,
    Degraded,
    NotReady,
}

impl Verdict {
    /// The stable name (JSON, text).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Degraded => "degraded",
            Self::NotReady => "not-ready",
        }
    }
}

/// One thing the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// A stable identifier (`path-missing-key`, `socket-missing`, ...).
    pub code: &'static str,
    pub severity: Severity,
    /// What was found, in one sentence.
    pub summary: String,
    /// Why it is so, or why it matters.
    pub cause: Option<String>,
    /// What to do: the command to run or the setting to change.
    pub fix: Option<String>,
}

/// The verdict and the findings, worst first (stable within a severity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
}

#[cfg(test)]
impl Diagnosis {
    /// The findings with this code.
    pub fn with_code(&self, code: &str) -> Vec<&Finding> {
        self.findings.iter().filter(|f| f.code == code).collect()
    }
}

/// The reservation type cluster fencing takes (fence_scsi, fence_mpath, and what
/// `--write-test` reserves).
pub const CLUSTER_TYPE: ReservationType = ReservationType::WriteExclusiveRegistrantsOnly;

/// Derives the diagnosis from the facts.
pub fn diagnose(facts: &Facts) -> Diagnosis {
    let mut out = Findings {
        list: Vec::new(),
        facts,
    };
    out.device();
    out.reservations();
    out.paths();
    out.helper();
    out.host();
    out.write_test();
    let mut findings = out.list;
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let worst = findings.first().map(|f| f.severity);
    let verdict = match worst {
        Some(Severity::NotReady) => Verdict::NotReady,
        Some(Severity::Degraded) => Verdict::Degraded,
        _ => Verdict::Ready,
    };
    Diagnosis { verdict, findings }
}

/// Whether two transport IDs name the same initiator port: iSCSI names compare
/// without case, and a name without an ISID matches that name with any ISID.
pub fn same_initiator(a: &TransportId, b: &TransportId) -> bool {
    match (a, b) {
        (
            TransportId::Iscsi {
                name: name_a,
                isid: isid_a,
            },
            TransportId::Iscsi {
                name: name_b,
                isid: isid_b,
            },
        ) => {
            name_a.eq_ignore_ascii_case(name_b)
                && match (isid_a, isid_b) {
                    (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
                    _ => true,
                }
        }
        _ => a == b,
    }
}

fn key(key: u64) -> String {
    format!("0x{key:x}")
}

fn type_name(d: &FullStatusDescriptor) -> String {
    match d.scope_type.rtype() {
        Some(t) => format!("{} ({})", t.long_name(), t.short_name()),
        None => format!("type code 0x{:x}", d.scope_type.type_code()),
    }
}

struct Findings<'a> {
    list: Vec<Finding>,
    facts: &'a Facts,
}

impl Findings<'_> {
    fn push(
        &mut self,
        code: &'static str,
        severity: Severity,
        summary: impl Into<String>,
        cause: Option<String>,
        fix: Option<String>,
    ) {
        self.list.push(Finding {
            code,
            severity,
            summary: summary.into(),
            cause,
            fix,
        });
    }

    fn path(&self) -> &str {
        &self.facts.device.path
    }

    /// `prtool [--socket S] ARGS`: a command through the helper the check used.
    fn prtool(&self, args: &str) -> String {
        let socket = &self.facts.helper.socket;
        if socket.is_empty() || socket == pr_manager::DEFAULT_SOCKET {
            format!("prtool {args}")
        } else {
            format!("prtool --socket {socket} {args}")
        }
    }

    fn check_again(&self) -> String {
        let socket = &self.facts.helper.socket;
        if socket.is_empty() || socket == pr_manager::DEFAULT_SOCKET {
            format!("prtool check {}", self.path())
        } else {
            format!("prtool --socket {socket} check {}", self.path())
        }
    }

    /// Whether a PR check applies to this kind of device at all.
    fn speaks_scsi_pr(&self) -> bool {
        matches!(
            self.facts.device.kind,
            DeviceKind::ScsiDisk
                | DeviceKind::ScsiGeneric { .. }
                | DeviceKind::Multipath { .. }
                | DeviceKind::Nvme(_)
                | DeviceKind::ImageFile
        )
    }

    fn helper_program(&self) -> Option<&Program> {
        self.facts.helper.process.as_ref().ok().map(|p| &p.program)
    }

    /// Whether the helper is ours with multipath support on.
    fn helper_registers_paths(&self) -> bool {
        self.facts
            .helper
            .process
            .as_ref()
            .is_ok_and(|p| p.program == Program::PrHelper && p.cmdline_known && p.multipath)
    }

    fn device(&mut self) {
        let d = &self.facts.device;
        let path = self.path().to_owned();
        match &d.kind {
            DeviceKind::Missing => self.push(
                "device-missing",
                Severity::NotReady,
                format!("{path} does not exist"),
                d.open_error.clone(),
                Some(
                    "give the disk's path: `lsblk -o NAME,TYPE,TRAN,SIZE` lists the disks, \
                     multipath maps are under /dev/mapper"
                        .to_owned(),
                ),
            ),
            DeviceKind::Partition { disk } => self.push(
                "partition",
                Severity::NotReady,
                format!("{path} is a partition of /dev/{disk}"),
                Some(
                    "a reservation applies to the whole logical unit, so pr-helper refuses \
                     partitions (unless started with --allow-partitions)"
                        .to_owned(),
                ),
                Some(format!(
                    "give guests the whole disk and check it: prtool check /dev/{disk}"
                )),
            ),
            DeviceKind::DeviceMapper { map, targets } => self.push(
                "not-a-pr-device",
                Severity::NotReady,
                format!("{path} is device-mapper device {map} ({targets}), not a multipath map"),
                Some(
                    "PR commands through it reach the device below it and act on the whole LUN; \
                     pr-helper refuses devices that map part of a disk"
                        .to_owned(),
                ),
                Some(format!(
                    "check the multipath map or disk below it (`dmsetup deps {path}`)"
                )),
            ),
            DeviceKind::Loop { backing } => self.push(
                "not-a-pr-device",
                Severity::NotReady,
                match backing {
                    Some(file) => format!("{path} is a loop device (backing file {file})"),
                    None => format!("{path} is a loop device"),
                },
                Some("a loop device answers no SCSI command (SG_IO fails with ENOTTY)".to_owned()),
                Some(
                    "reservations need a SCSI disk, a multipath map of SCSI paths, or an image \
                     file served by `pr-helper --emulated-state-dir DIR` (give the image file \
                     itself, not a loop device over it)"
                        .to_owned(),
                ),
            ),
            DeviceKind::OtherBlock { what } => self.push(
                "not-a-pr-device",
                Severity::NotReady,
                format!("{path} is a {what} block device, not a SCSI disk"),
                Some("it answers no SCSI PERSISTENT RESERVE command".to_owned()),
                Some(
                    "give guests a SCSI LUN (sd), a multipath map of SCSI paths or an NVMe \
                     namespace"
                        .to_owned(),
                ),
            ),
            DeviceKind::Other { what } => self.push(
                "not-a-pr-device",
                Severity::NotReady,
                format!("{path} is {what}, not a disk"),
                None,
                Some(
                    "give a disk (/dev/sdX, /dev/mapper/NAME, /dev/sgN) or an image file"
                        .to_owned(),
                ),
            ),
            DeviceKind::Nvme(nvme) => {
                let mut what = format!("{path} is an NVMe namespace");
                if let Some(nsid) = &nvme.nsid {
                    what.push_str(&format!(" (nsid {nsid}"));
                    if let Some(nqn) = &nvme.subsystem_nqn {
                        what.push_str(&format!(" of {nqn}"));
                    }
                    if let Some(transport) = &nvme.transport {
                        what.push_str(&format!(", transport {transport}"));
                    }
                    what.push_str(&format!(", {} controller(s)", nvme.controllers.len()));
                    what.push(')');
                }
                if !nvme.host_ids.is_empty() {
                    what.push_str(&format!(", this host's ID {}", nvme.host_ids.join(", ")));
                }
                self.push("nvme-namespace", Severity::Ok, what, None, None);
                if nvme.host_ids.len() > 1 {
                    self.push(
                        "nvme-host-ids-differ",
                        Severity::Degraded,
                        format!(
                            "the controllers of {path} present different host IDs ({})",
                            nvme.host_ids.join(", ")
                        ),
                        Some(
                            "an NVMe reservation belongs to a host ID: each ID is a registrant \
                             of its own, and a reservation held through one controller \
                             conflicts with writes through the others"
                                .to_owned(),
                        ),
                        Some(
                            "connect every controller with the same host ID \
                             (/etc/nvme/hostid, `nvme connect --hostid`)"
                                .to_owned(),
                        ),
                    );
                }
                if self.facts.device.route == DirectRoute::PrIoctls {
                    self.push(
                        "nvme-no-passthrough",
                        Severity::Note,
                        format!("{path} takes no NVMe passthrough command"),
                        Some("its reservation state was asked through the kernel's PR ioctls, which have no READ FULL STATUS".to_owned()),
                        None,
                    );
                }
            }
            DeviceKind::ImageFile => self.push(
                "image-file",
                Severity::Note,
                format!("{path} is an image file, for the helper's software SCSI target"),
                Some(
                    "reservations are recorded and answered as by an SPC-4 device, but I/O to \
                     the image is not blocked by them"
                        .to_owned(),
                ),
                Some(
                    "use it for tests and demos; fence production data on a SCSI LUN or a \
                     multipath map"
                        .to_owned(),
                ),
            ),
            DeviceKind::ScsiGeneric { disk } => self.push(
                "scsi-generic",
                Severity::Ok,
                match disk {
                    Some(disk) => format!("{path} is the SCSI generic node of /dev/{disk}"),
                    None => format!("{path} is a SCSI generic node"),
                },
                None,
                None,
            ),
            DeviceKind::ScsiDisk => {
                if d.path_of_maps.is_empty() {
                    self.push(
                        "scsi-disk",
                        Severity::Ok,
                        format!("{path} is a SCSI disk"),
                        None,
                        None,
                    );
                }
            }
            DeviceKind::Multipath { map } => {
                let usable = d.paths.iter().filter(|p| p.usable == Some(true)).count();
                let nodes: Vec<&str> = d.paths.iter().map(|p| p.node.as_str()).collect();
                self.push(
                    "multipath-map",
                    Severity::Ok,
                    format!(
                        "{path} is multipath map {map}: {} path(s), {usable} usable ({})",
                        d.paths.len(),
                        nodes.join(", ")
                    ),
                    None,
                    None,
                );
            }
        }
        for map in &d.path_of_maps {
            self.push(
                "path-of-a-map",
                Severity::Degraded,
                format!("{path} is a path of multipath map {map}"),
                Some(
                    "a reservation through one path registers one I_T nexus; the map's other \
                     paths stay unregistered, and under a registrants-only reservation their \
                     writes conflict"
                        .to_owned(),
                ),
                Some(format!(
                    "give guests /dev/mapper/{map} and check it: prtool check /dev/mapper/{map}"
                )),
            );
        }
        if let (Some(why), false) = (&d.open_error, d.kind == DeviceKind::Missing) {
            self.push(
                "device-unreadable",
                Severity::Degraded,
                format!("cannot read {path} directly: {why}"),
                Some(
                    "the direct checks (SG_IO on the device and on each path) need read access \
                     to the nodes"
                        .to_owned(),
                ),
                Some(format!(
                    "run the check as root (or as a member of the node's group: `ls -l {path}`)"
                )),
            );
        }
        if let Some(why) = &d.map_error {
            self.push(
                "map-unreadable",
                Severity::Degraded,
                format!("cannot read the paths of {path}: {why}"),
                Some("device-mapper's table and status ioctl needs CAP_SYS_ADMIN".to_owned()),
                Some("run the check as root".to_owned()),
            );
        }
        for holder in &d.held_by {
            self.push(
                "held-by",
                Severity::Note,
                format!("{path} is held by {holder}"),
                None,
                None,
            );
        }
        for lock in &d.locks {
            let by = match lock.pid {
                Some(pid) => format!(" by pid {pid}"),
                None => String::new(),
            };
            self.push(
                "node-locked",
                Severity::Note,
                format!(
                    "{path} carries a {} {} lock{by} (QEMU locks the images and disks it uses)",
                    lock.kind, lock.mode
                ),
                None,
                None,
            );
        }
        match self.guest_openers() {
            Some(openers) if openers.is_empty() => self.push(
                "not-open",
                Severity::Note,
                format!("no process on this host (but the helper) has {path} open"),
                None,
                None,
            ),
            Some(openers) => {
                let list: Vec<String> = openers
                    .iter()
                    .map(|o| format!("{} (pid {})", o.command, o.pid))
                    .collect();
                self.push(
                    "open-by",
                    Severity::Note,
                    format!("{path} is open in {}", list.join(", ")),
                    None,
                    None,
                );
            }
            None => {}
        }
    }

    /// The processes holding the device open, but the helper (which holds
    /// descriptors of the devices it serves); `None` when not known.
    fn guest_openers(&self) -> Option<Vec<super::facts::Opener>> {
        let helper = self.facts.helper.process.as_ref().ok().map(|p| p.pid);
        self.facts.device.openers.as_ref().map(|list| {
            list.iter()
                .filter(|o| Some(o.pid) != helper)
                .cloned()
                .collect()
        })
    }

    /// The registrants that are this host's.
    fn is_host(&self, descriptor: &FullStatusDescriptor) -> bool {
        if self.facts.device.kind == DeviceKind::ImageFile {
            // The software target runs on this host: every initiator is local.
            return true;
        }
        self.facts
            .device
            .host_initiators()
            .iter()
            .any(|id| same_initiator(id, &descriptor.transport_id))
    }

    fn reservations(&mut self) {
        if !self.speaks_scsi_pr() {
            return;
        }
        let path = self.path().to_owned();
        if self.facts.device.route == DirectRoute::PrIoctls {
            if let Some(view) = self.facts.device.keys_view.clone() {
                self.keys_only(&view);
                return;
            }
        }
        let Some(pr) = self.facts.device.pr.clone() else {
            self.push(
                "pr-unread",
                Severity::NotReady,
                format!("the reservation state of {path} could not be read"),
                Some("neither directly nor through the helper (see the other findings)".to_owned()),
                Some("fix the findings above, then run the check again".to_owned()),
            );
            return;
        };
        let via = match &pr.source {
            Source::Direct(node) => format!("{} on {node}", self.facts.device.route.words()),
            Source::Helper => "the helper".to_owned(),
        };
        let caps_unsupported = matches!(
            pr.capabilities,
            PrAnswer::Refused {
                unsupported: true,
                ..
            }
        );
        match &pr.capabilities {
            PrAnswer::Good(caps) => {
                let types: Vec<&str> = caps
                    .type_mask
                    .types()
                    .iter()
                    .map(|t| t.short_name())
                    .collect();
                self.push(
                    "capabilities",
                    Severity::Ok,
                    format!(
                        "REPORT CAPABILITIES: types {}{}, PTPL_C={} PTPL_A={}, SIP_C={}, ATP_C={}, CRH={}",
                        if types.is_empty() { "none".to_owned() } else { types.join(" ") },
                        if caps.tmv { "" } else { " (type mask not valid)" },
                        u8::from(caps.ptpl_c),
                        u8::from(caps.ptpl_a),
                        u8::from(caps.sip_c),
                        u8::from(caps.atp_c),
                        u8::from(caps.crh),
                    ),
                    None,
                    None,
                );
                if caps.tmv && !caps.type_mask.contains(CLUSTER_TYPE) {
                    self.push(
                        "no-registrants-only-type",
                        Severity::NotReady,
                        format!(
                            "{path} does not support {} reservations",
                            CLUSTER_TYPE.long_name()
                        ),
                        Some(
                            "cluster fencing (fence_scsi, fence_mpath) reserves Write Exclusive \
                             - Registrants Only, so that every registered node may write"
                                .to_owned(),
                        ),
                        Some(
                            "use a LUN whose target supports it (see the storage's documentation)"
                                .to_owned(),
                        ),
                    );
                }
                if !caps.ptpl_c {
                    self.push(
                        "no-aptpl",
                        Severity::Note,
                        format!("{path} cannot persist reservations through power loss (PTPL_C=0)"),
                        Some("registrations are lost when the storage loses power".to_owned()),
                        None,
                    );
                }
            }
            PrAnswer::Refused {
                unsupported: true, ..
            } => self.push(
                "capabilities-unsupported",
                Severity::Note,
                format!("{path} does not support REPORT CAPABILITIES (an SPC-3 device?)"),
                Some("the reservation types it supports cannot be checked".to_owned()),
                None,
            ),
            other => self.push(
                "capabilities-unread",
                Severity::Note,
                format!(
                    "REPORT CAPABILITIES through {via}: {}",
                    other.problem().unwrap_or_default()
                ),
                None,
                None,
            ),
        }
        let full = match &pr.full_status {
            PrAnswer::Good(full) => full.clone(),
            PrAnswer::Refused {
                unsupported: true, ..
            } if caps_unsupported => {
                self.push(
                    "no-pr-support",
                    Severity::NotReady,
                    format!("{path} does not support persistent reservations"),
                    Some(format!(
                        "PERSISTENT RESERVE IN through {via}: {}",
                        pr.full_status.problem().unwrap_or_default()
                    )),
                    Some(
                        "use a LUN whose target implements SPC-3/SPC-4 persistent reservations"
                            .to_owned(),
                    ),
                );
                return;
            }
            other => {
                self.push(
                    "pr-unanswered",
                    Severity::NotReady,
                    format!(
                        "READ FULL STATUS through {via}: {}",
                        other.problem().unwrap_or_default()
                    ),
                    Some("the device's reservation state cannot be read".to_owned()),
                    Some(if matches!(self.facts.device.kind, DeviceKind::Nvme(_)) {
                        format!(
                            "check the namespace (`nvme resv-report {path}`), then run the check \
                             again"
                        )
                    } else {
                        format!(
                            "check the device and its paths (`sg_persist -s {path}`), then run \
                             the check again"
                        )
                    }),
                );
                return;
            }
        };
        self.registrations(&full);
    }

    fn registrations(&mut self, full: &FullStatus) {
        let path = self.path().to_owned();
        let holder = full.descriptors.iter().find(|d| d.r_holder);
        self.push(
            "registrations",
            Severity::Ok,
            format!(
                "generation 0x{:x}, {} registration(s), {}",
                full.generation,
                full.descriptors.len(),
                match holder {
                    Some(d) => format!(
                        "reservation {} held by key {} ({})",
                        type_name(d),
                        key(d.reservation_key),
                        transport_id_words(&d.transport_id)
                    ),
                    None => "no reservation".to_owned(),
                }
            ),
            None,
            None,
        );
        let image = self.facts.device.kind == DeviceKind::ImageFile;
        let host_known = image || !self.facts.device.host_initiators().is_empty();
        if !host_known && !full.descriptors.is_empty() {
            self.push(
                "initiators-unknown",
                Severity::Degraded,
                format!("this host's initiator ports on {path} are not known"),
                Some(
                    "sysfs names none for its transport: this host's registrations cannot be \
                     told from other hosts'"
                        .to_owned(),
                ),
                Some(if matches!(self.facts.device.kind, DeviceKind::Nvme(_)) {
                    format!(
                        "name this host's ID: prtool check --initiator \
                         iscsi:{}HOSTID {path} (HOSTID as in /etc/nvme/hostid)",
                        blk_pr::nvme::HOST_NQN_UUID_PREFIX
                    )
                } else {
                    format!(
                        "name them: prtool check --initiator sas:ADDRESS|fc:WWPN|iscsi:NAME {path}"
                    )
                }),
            );
            return;
        }
        for d in &full.descriptors {
            if self.is_host(d) {
                continue;
            }
            self.push(
                "foreign-registration",
                Severity::Note,
                format!(
                    "key {} is registered by another host: {} (relative target port {})",
                    key(d.reservation_key),
                    transport_id_words(&d.transport_id),
                    d.relative_target_port
                ),
                Some("another node of the cluster, not a nexus of this host".to_owned()),
                None,
            );
        }
        if let Some(d) = holder.filter(|d| !self.is_host(d)) {
            let writes = match d.scope_type.rtype() {
                Some(ReservationType::WriteExclusive | ReservationType::ExclusiveAccess) => {
                    "this host's writes get RESERVATION CONFLICT until the holder releases"
                }
                _ => "this host's writes are allowed once it is registered",
            };
            self.push(
                "foreign-reservation",
                Severity::Note,
                format!(
                    "another host holds the reservation: {} with key {} ({})",
                    type_name(d),
                    key(d.reservation_key),
                    transport_id_words(&d.transport_id)
                ),
                Some(writes.to_owned()),
                None,
            );
        }
        let mine: Vec<&FullStatusDescriptor> = full
            .descriptors
            .iter()
            .filter(|d| self.is_host(d))
            .collect();
        if image {
            self.emulated_registrations(&mine);
            return;
        }
        let mut keys: Vec<u64> = mine.iter().map(|d| d.reservation_key).collect();
        keys.sort_unstable();
        keys.dedup();
        if keys.is_empty() {
            self.push(
                "host-unregistered",
                Severity::Ok,
                format!("no key of this host is registered on {path}"),
                None,
                None,
            );
            return;
        }
        let list: Vec<String> = keys.iter().map(|k| key(*k)).collect();
        self.push(
            "host-registered",
            Severity::Ok,
            format!(
                "this host's key(s) {} on {} nexus(es)",
                list.join(", "),
                mine.len()
            ),
            None,
            None,
        );
        if let Some(openers) = self.guest_openers() {
            if openers.is_empty() {
                for k in keys {
                    self.push(
                        "stale-registration",
                        Severity::Degraded,
                        format!(
                            "key {} is registered by this host, but no process here has {path} \
                             open: no guest uses it",
                            key(k)
                        ),
                        Some(
                            "left behind by a guest that stopped without unregistering, or by a \
                             manual test"
                                .to_owned(),
                        ),
                        Some(format!(
                            "if no guest of this host should hold it: {}",
                            self.prtool(&format!("register --key {} --sa-key 0 {path}", key(k)))
                        )),
                    );
                }
            }
        }
    }

    /// Through the kernel's PR ioctls: keys and the holder's key, but not who
    /// registered them.
    fn keys_only(&mut self, view: &KeysView) {
        let path = self.path().to_owned();
        let keys = match &view.keys {
            PrAnswer::Good(keys) => keys.clone(),
            other => {
                self.push(
                    "pr-ioctls-unread",
                    Severity::NotReady,
                    format!(
                        "{path} takes no SG_IO, and READ KEYS through the kernel's PR ioctls: {}",
                        other.problem().unwrap_or_default()
                    ),
                    Some(
                        "the kernel has PR read ioctls from 6.19 on; before, a device without \
                         SG_IO tells nothing of its registrations"
                            .to_owned(),
                    ),
                    Some(
                        "check the SCSI disk or sg node below it, or run a kernel 6.19 or later"
                            .to_owned(),
                    ),
                );
                return;
            }
        };
        let list: Vec<String> = keys.keys.iter().map(|k| key(*k)).collect();
        let held = match &view.reservation {
            PrAnswer::Good(r) => match &r.reservation {
                Some(res) => format!(
                    "reservation {} held by key {}",
                    res.scope_type
                        .rtype()
                        .map(|t| format!("{} ({})", t.long_name(), t.short_name()))
                        .unwrap_or_else(|| format!("type 0x{:x}", res.scope_type.0 & 0x0f)),
                    key(res.key)
                ),
                None => "no reservation".to_owned(),
            },
            other => format!(
                "reservation unread ({})",
                other.problem().unwrap_or_default()
            ),
        };
        self.push(
            "registrations-keys-only",
            Severity::Degraded,
            format!(
                "through the kernel's PR ioctls: generation 0x{:x}, {} key(s){}{}, {held}",
                keys.generation,
                keys.keys.len(),
                if list.is_empty() { "" } else { " " },
                list.join(", ")
            ),
            Some(
                "the PR ioctls report keys without the TransportIDs that registered them: this \
                 host's registrations, other hosts' and stale ones cannot be told apart, and \
                 the holder's host is not known"
                    .to_owned(),
            ),
            Some(
                "check a node that takes SG_IO (the disk's sd or sg node) or NVMe passthrough \
                 (the namespace's /dev/nvmeXnY as root)"
                    .to_owned(),
            ),
        );
    }

    /// The software target's initiators are processes of this host: a registration
    /// whose process has exited is stale.
    fn emulated_registrations(&mut self, mine: &[&FullStatusDescriptor]) {
        for d in mine {
            let known = self
                .facts
                .device
                .emulated_initiators
                .iter()
                .find(|i| same_initiator(&i.id, &d.transport_id));
            match known {
                Some(initiator) => match &initiator.alive {
                    Some(command) => self.push(
                        "emulated-registration",
                        Severity::Ok,
                        format!(
                            "key {} is registered by {command} (pid {})",
                            key(d.reservation_key),
                            initiator.pid
                        ),
                        None,
                        None,
                    ),
                    None => self.push(
                        "stale-registration",
                        Severity::Degraded,
                        format!(
                            "key {} is registered by pid {}, which has exited ({})",
                            key(d.reservation_key),
                            initiator.pid,
                            transport_id_words(&d.transport_id)
                        ),
                        Some(
                            "no running process is that initiator any more: the registration \
                             stays until it is preempted or cleared"
                                .to_owned(),
                        ),
                        Some(
                            "restart pr-helper if the image has no APTPL state (the software \
                             target then keeps it in memory only); otherwise PREEMPT it from a \
                             registered initiator"
                                .to_owned(),
                        ),
                    ),
                },
                None => self.push(
                    "emulated-registration",
                    Severity::Note,
                    format!(
                        "key {} is registered by {}",
                        key(d.reservation_key),
                        transport_id_words(&d.transport_id)
                    ),
                    None,
                    None,
                ),
            }
        }
    }

    /// What the helper does when a failed path comes back.
    fn on_return(&self) -> String {
        match self.facts.helper.process.as_ref() {
            Ok(p) if p.program == Program::PrHelper && p.cmdline_known && p.multipath => {
                "on its return pr-helper registers it with the key it registered through the \
                 map, if it carried that REGISTER since it started and the device still holds \
                 the key"
                    .to_owned()
            }
            Ok(p) if p.program == Program::PrHelper && p.cmdline_known => {
                "pr-helper runs with --no-multipath: nothing registers it on its return".to_owned()
            }
            Ok(p) if p.program == Program::QemuPrHelper => {
                "qemu-pr-helper registers returning paths only through multipathd \
                 (reservation_key in multipath.conf)"
                    .to_owned()
            }
            _ => "what the helper does on its return is unknown (its process was not found)"
                .to_owned(),
        }
    }

    fn paths(&mut self) {
        if !self.facts.device.is_map() {
            return;
        }
        let path = self.path().to_owned();
        let paths = self.facts.device.paths.clone();
        if !paths.is_empty() && paths.iter().all(|p| p.usable == Some(false)) {
            self.push(
                "no-usable-path",
                Severity::NotReady,
                format!("every path of {path} is failed"),
                Some("PR commands and I/O through the map fail".to_owned()),
                Some("bring a path back (`multipath -ll`, the storage network)".to_owned()),
            );
        }
        if paths.len() == 1 {
            self.push(
                "single-path",
                Severity::Note,
                format!("{path} has one path only"),
                None,
                None,
            );
        }
        for p in paths.iter().filter(|p| p.usable == Some(false)) {
            let mut fix = format!(
                "find out why: `multipath -ll`, `dmesg | grep {}`; ",
                p.node.trim_start_matches("/dev/")
            );
            fix.push_str(&self.on_return());
            self.push(
                "path-failed",
                Severity::Degraded,
                format!(
                    "path {} ({}) is failed (failed {} time(s))",
                    p.node, p.devnum, p.fail_count
                ),
                Some("device-mapper uses the other paths for I/O and PR commands".to_owned()),
                Some(fix),
            );
        }
        // This host's key on each usable path that answered.
        let mut on_path: Vec<(&PathFacts, Option<u64>)> = Vec::new();
        for p in paths.iter().filter(|p| p.usable == Some(true)) {
            match &p.full_status {
                Some(PrAnswer::Good(full)) => match &p.initiator {
                    Some(id) => {
                        let found = full
                            .descriptors
                            .iter()
                            .find(|d| same_initiator(id, &d.transport_id))
                            .map(|d| d.reservation_key);
                        on_path.push((p, found));
                    }
                    None => self.push(
                        "path-initiator-unknown",
                        Severity::Note,
                        format!(
                            "the initiator port of path {} is not known: its registration is not checked",
                            p.node
                        ),
                        None,
                        Some(format!(
                            "name it: prtool check --initiator sas:ADDRESS|fc:WWPN|iscsi:NAME {path}"
                        )),
                    ),
                },
                Some(answer) => self.push(
                    "path-unanswered",
                    Severity::Degraded,
                    format!(
                        "path {}: READ FULL STATUS: {}",
                        p.node,
                        answer.problem().unwrap_or_default()
                    ),
                    Some("a usable path that does not answer PR commands".to_owned()),
                    Some(format!("check the path: `sg_persist -s {}`", p.node)),
                ),
                None => {}
            }
        }
        if on_path.is_empty() {
            return;
        }
        let expected = self.expected_key(&on_path);
        let Some(expected) = expected else {
            self.push(
                "paths-consistent",
                Severity::Ok,
                format!(
                    "no usable path of {path} carries a key of this host ({} checked)",
                    on_path.len()
                ),
                None,
                None,
            );
            return;
        };
        let repair = if self.helper_registers_paths() {
            format!(
                "{} (pr-helper registers the key again on every usable path)",
                self.prtool(&format!(
                    "register --key {} --sa-key {} {path}",
                    key(expected),
                    key(expected)
                ))
            )
        } else {
            String::new()
        };
        let mut consistent = true;
        for (p, found) in &on_path {
            let direct = format!(
                "prtool --direct register-ignore --sa-key {} {}",
                key(expected),
                p.node
            );
            let fix = if repair.is_empty() {
                direct
            } else {
                format!("{repair}; or on the path alone: {direct}")
            };
            let initiator = p
                .initiator
                .as_ref()
                .map(transport_id_words)
                .unwrap_or_default();
            match found {
                Some(k) if *k == expected => {}
                Some(old) => {
                    consistent = false;
                    self.push(
                        "path-old-key",
                        Severity::Degraded,
                        format!(
                            "path {} ({initiator}) carries key {}, the other paths {}",
                            p.node,
                            key(*old),
                            key(expected)
                        ),
                        Some(
                            "the key changed while this path was away; its writes conflict \
                             under a registrants-only reservation, and it fences like a \
                             separate node"
                                .to_owned(),
                        ),
                        Some(fix),
                    );
                }
                None => {
                    consistent = false;
                    self.push(
                        "path-missing-key",
                        Severity::Degraded,
                        format!(
                            "path {} ({initiator}) carries no key; the other paths carry {}",
                            p.node,
                            key(expected)
                        ),
                        Some(
                            "the path was failed or absent when the key was registered; its \
                             writes conflict under a registrants-only reservation"
                                .to_owned(),
                        ),
                        Some(fix),
                    );
                }
            }
        }
        if consistent {
            self.push(
                "paths-consistent",
                Severity::Ok,
                format!(
                    "every usable path of {path} ({}) carries key {}",
                    on_path.len(),
                    key(expected)
                ),
                None,
                None,
            );
        }
    }

    /// The key this host's paths should carry: the reservation holder's when this
    /// host holds it, else the key most paths carry (the first path's on a tie).
    fn expected_key(&self, on_path: &[(&PathFacts, Option<u64>)]) -> Option<u64> {
        let full = self
            .facts
            .device
            .pr
            .as_ref()
            .and_then(|pr| pr.full_status.good());
        if let Some(d) = full.and_then(|f| f.descriptors.iter().find(|d| d.r_holder)) {
            if self.is_host(d) {
                return Some(d.reservation_key);
            }
        }
        let mut best: Option<(u64, usize)> = None;
        for (_, found) in on_path {
            let Some(k) = found else { continue };
            let count = on_path.iter().filter(|(_, f)| f == &Some(*k)).count();
            if best.is_none_or(|(_, n)| count > n) {
                best = Some((*k, count));
            }
        }
        best.map(|(k, _)| k)
    }

    fn helper(&mut self) {
        let h = &self.facts.helper;
        if h.skipped {
            self.push(
                "helper-not-checked",
                Severity::Note,
                "the helper was not checked (--direct)",
                None,
                None,
            );
            return;
        }
        let socket = h.socket.clone();
        match &h.socket_file {
            SocketFile::NotChecked => {}
            SocketFile::Missing => self.push(
                "socket-missing",
                Severity::NotReady,
                format!("no helper socket at {socket}"),
                Some("the helper is not running, or listens on another path".to_owned()),
                Some(format!(
                    "start it: `systemctl enable --now pr-helper.socket` (socket \
                     /run/qemu-pr-helper.sock), or `pr-helper -k {socket}`; or name its socket: \
                     prtool --socket PATH check {}",
                    self.path()
                )),
            ),
            SocketFile::NotASocket { what } => self.push(
                "not-a-socket",
                Severity::NotReady,
                format!("{socket} is {what}, not a socket"),
                None,
                Some(
                    "remove it and restart the helper, or name the helper's socket with --socket"
                        .to_owned(),
                ),
            ),
            SocketFile::Socket(mode) => {
                let owner = mode.owner.clone().unwrap_or_else(|| mode.uid.to_string());
                let group = mode.group.clone().unwrap_or_else(|| mode.gid.to_string());
                self.push(
                    "socket",
                    Severity::Ok,
                    format!(
                        "{socket}: socket, mode {:04o}, owner {owner}:{group}",
                        mode.mode
                    ),
                    None,
                    None,
                );
            }
        }
        if let Some(why) = &h.directory_problem {
            self.push(
                "socket-directory",
                Severity::NotReady,
                format!("the socket's directory: {why}"),
                None,
                Some(
                    "create the directory or fix its permissions, then restart the helper"
                        .to_owned(),
                ),
            );
        }
        let observed = h.observed_access.as_ref().map(|o| &o.result);
        for access in &h.access {
            if access.named {
                if let (Err(why), Some(Observed::Connected)) = (&access.verdict, observed) {
                    // The kernel let the user in: the bits do not tell the whole
                    // story (an ACL, a capability), and connect() is what counts.
                    self.push(
                        "socket-access",
                        Severity::Ok,
                        format!(
                            "{} may connect to {socket} (tried as that user)",
                            access.who
                        ),
                        None,
                        None,
                    );
                    self.push(
                        "socket-access-differs",
                        Severity::Note,
                        format!(
                            "the permission bits say {} cannot connect ({why}), but a process with its uid and groups connected",
                            access.who
                        ),
                        Some("an access control list or another rule the bits do not show lets it in".to_owned()),
                        Some(format!("see `getfacl {socket}`")),
                    );
                    continue;
                }
            }
            match (&access.verdict, access.named) {
                (Ok(()), _) => self.push(
                    "socket-access",
                    Severity::Ok,
                    format!("{} may connect to {socket}", access.who),
                    None,
                    None,
                ),
                (Err(why), true) => self.push(
                    "socket-access-denied",
                    Severity::NotReady,
                    format!("{} cannot connect to {socket}: {why}", access.who),
                    Some("connecting to a Unix socket needs write permission on it and search permission on every directory above it; the helper also filters peers with --allow-uid/--allow-gid".to_owned()),
                    access.fix.clone(),
                ),
                (Err(why), false) => self.push(
                    "caller-cannot-connect",
                    Severity::Degraded,
                    format!("you ({}) cannot connect to {socket}: {why}", access.who),
                    Some("the checks through the helper were skipped".to_owned()),
                    Some("run the check as root, or as the guests' user (and name that user with --as to check it)".to_owned()),
                ),
            }
        }
        if let Some(o) = &h.observed_access {
            let computed_ok = h
                .access
                .iter()
                .find(|a| a.named)
                .is_some_and(|a| a.verdict.is_ok());
            match (&o.result, computed_ok) {
                (Observed::Connected, true) => self.push(
                    "socket-access-observed",
                    Severity::Ok,
                    format!("{} connected to {socket} (tried as that user)", o.who),
                    None,
                    None,
                ),
                (Observed::Connected, false) => {}
                (Observed::Refused(why), false) => self.push(
                    "socket-access-observed",
                    Severity::Note,
                    format!("{} cannot connect to {socket} when tried either: {why}", o.who),
                    None,
                    None,
                ),
                (Observed::Refused(why), true) => self.push(
                    "socket-access-denied",
                    Severity::NotReady,
                    format!(
                        "{} cannot connect to {socket} when tried: {why}, though the permission bits allow it",
                        o.who
                    ),
                    Some("a rule the bits do not show refuses it: an access control list, an LSM (AppArmor, SELinux), or the socket is another one in that user's view".to_owned()),
                    Some(format!("see `getfacl {socket}` and the LSM's log (`journalctl -k | grep -i denied`)")),
                ),
                (Observed::ProbeFailed(why), _) => self.push(
                    "socket-access-unobserved",
                    Severity::Note,
                    format!("connecting as {} was not tried for real: {why}", o.who),
                    None,
                    None,
                ),
            }
        }
        match &h.handshake {
            None => {}
            Some(Ok(())) => self.push(
                "handshake",
                Severity::Ok,
                format!("connected to {socket} and completed the handshake"),
                None,
                None,
            ),
            Some(Err(why)) => {
                let refused = why.contains("refused");
                self.push(
                    "helper-unreachable",
                    Severity::NotReady,
                    format!("the helper on {socket} does not answer: {why}"),
                    Some(if refused {
                        "no process listens on the socket: a helper that exited left it behind"
                            .to_owned()
                    } else {
                        "the connection or the handshake failed".to_owned()
                    }),
                    Some(format!(
                        "restart the helper (`systemctl restart pr-helper.socket`, or start \
                         `pr-helper -k {socket}`), then {}",
                        self.check_again()
                    )),
                );
            }
        }
        let mut image_not_served = false;
        if self.facts.device.kind == DeviceKind::ImageFile {
            match h.process.as_ref() {
                Ok(p)
                    if p.program == Program::PrHelper
                        && p.cmdline_known
                        && p.emulated_state_dir.is_none() =>
                {
                    image_not_served = true;
                    self.push(
                        "image-not-served",
                        Severity::NotReady,
                        "the helper does not serve image files",
                        Some("pr-helper answers image files only with its software target on".to_owned()),
                        Some("start pr-helper with --emulated-state-dir DIR (e.g. /var/lib/pr-helper)".to_owned()),
                    );
                }
                Ok(p) if p.program == Program::QemuPrHelper => {
                    image_not_served = true;
                    self.push(
                        "image-not-served",
                        Severity::NotReady,
                        "qemu-pr-helper does not serve image files",
                        Some("it sends SG_IO, which a regular file does not take".to_owned()),
                        Some("use pr-helper --emulated-state-dir DIR".to_owned()),
                    );
                }
                _ => {}
            }
        }
        match &h.read_keys {
            None => {}
            Some(PrAnswer::Good(keys)) => {
                let direct = self
                    .facts
                    .device
                    .pr
                    .as_ref()
                    .and_then(|pr| match pr.source {
                        Source::Direct(_) => pr.full_status.good(),
                        Source::Helper => None,
                    });
                match direct {
                    Some(full) => {
                        let mut theirs: Vec<u64> =
                            full.descriptors.iter().map(|d| d.reservation_key).collect();
                        let mut ours = keys.clone();
                        theirs.sort_unstable();
                        ours.sort_unstable();
                        if theirs == ours {
                            self.push(
                                "helper-read-keys",
                                Severity::Ok,
                                format!(
                                    "READ KEYS through the helper matches the device ({} key(s))",
                                    ours.len()
                                ),
                                None,
                                None,
                            );
                        } else {
                            let words =
                                |v: &[u64]| v.iter().map(|k| key(*k)).collect::<Vec<_>>().join(",");
                            self.push(
                                "helper-keys-differ",
                                Severity::Degraded,
                                format!(
                                    "READ KEYS through the helper gives [{}], the device directly [{}]",
                                    words(&ours),
                                    words(&theirs)
                                ),
                                Some("the state changed between the two reads, or the helper reaches another device (another mount namespace)".to_owned()),
                                Some(format!("run the check again: {}", self.check_again())),
                            );
                        }
                    }
                    None => self.push(
                        "helper-read-keys",
                        Severity::Ok,
                        format!("READ KEYS through the helper: {} key(s)", keys.len()),
                        None,
                        None,
                    ),
                }
            }
            Some(other) if !image_not_served => self.push(
                "helper-refuses",
                Severity::NotReady,
                format!(
                    "READ KEYS through the helper: {}",
                    other.problem().unwrap_or_default()
                ),
                Some("guests' PR commands through this helper fail the same way".to_owned()),
                Some("see the helper's log (`journalctl -u pr-helper`)".to_owned()),
            ),
            Some(_) => {}
        }
        self.helper_process();
    }

    fn helper_process(&mut self) {
        let p = match &self.facts.helper.process {
            Ok(p) => p.clone(),
            Err(why) => {
                self.push(
                    "helper-process-unknown",
                    Severity::Note,
                    format!("the helper's process was not found: {why}"),
                    Some("its version, backends and sandbox are not checked".to_owned()),
                    Some("run the check as root, or name its pid file with --pid-file".to_owned()),
                );
                return;
            }
        };
        let program = match &p.program {
            Program::PrHelper => "pr-helper".to_owned(),
            Program::QemuPrHelper => "qemu-pr-helper".to_owned(),
            Program::Other(name) => name.clone(),
            Program::Unknown => "an unknown program".to_owned(),
        };
        let mut parts = vec![format!("pid {}, {}", p.pid, p.found_by)];
        if let Some(version) = &p.version {
            parts.push(format!("version {version:?}"));
        }
        if p.program == Program::PrHelper && p.cmdline_known {
            parts.push(format!(
                "multipath {}",
                if p.multipath { "on" } else { "off" }
            ));
            parts.push(match &p.emulated_state_dir {
                Some(dir) => format!("software target on ({dir})"),
                None => "software target off".to_owned(),
            });
            parts.push(format!(
                "seccomp {}",
                p.seccomp_mode.as_deref().unwrap_or("kill")
            ));
            parts.push(format!(
                "Landlock {}",
                if p.landlock { "on" } else { "off" }
            ));
            parts.push(format!(
                "SG_IO timeout {} s",
                p.sgio_timeout.as_deref().unwrap_or("30")
            ));
        }
        let c = &p.confinement;
        if let Some(seccomp) = c.seccomp {
            parts.push(format!("Seccomp: {seccomp}"));
        }
        if let Some(nnp) = c.no_new_privs {
            parts.push(format!("NoNewPrivs: {}", u8::from(nnp)));
        }
        if let Some(eff) = c.cap_eff {
            parts.push(format!("CapEff: {eff:016x}"));
        }
        if let Some(uid) = c.uid {
            parts.push(format!("uid {uid}"));
        }
        self.push(
            "helper-process",
            Severity::Ok,
            format!("the helper is {program} ({})", parts.join(", ")),
            None,
            None,
        );
        let map = self.facts.device.is_map();
        if map && p.program == Program::PrHelper && p.cmdline_known && !p.multipath {
            self.push(
                "helper-multipath-off",
                Severity::Degraded,
                format!("pr-helper runs with --no-multipath, and {} is a multipath map", self.path()),
                Some("SG_IO through a map reaches its active path only: one nexus registers, the other paths' writes conflict under a registrants-only reservation".to_owned()),
                Some("remove --no-multipath from the helper's options (/etc/default/pr-helper) and restart it".to_owned()),
            );
        }
        if map && p.program == Program::QemuPrHelper {
            self.push(
                "qemu-pr-helper-map",
                Severity::Note,
                "qemu-pr-helper serves multipath maps through libmpathpersist and multipathd",
                Some("that needs multipathd running with reservation_key in multipath.conf, which is not checked".to_owned()),
                Some("pr-helper registers every path of a map itself".to_owned()),
            );
        }
        if p.program == Program::PrHelper && p.cmdline_known {
            let seccomp_off = p.seccomp_mode.as_deref() == Some("none");
            if seccomp_off || !p.landlock {
                self.push(
                    "sandbox-reduced",
                    Severity::Note,
                    format!(
                        "the helper runs with {}",
                        match (seccomp_off, p.landlock) {
                            (true, false) => "--seccomp none and --no-landlock",
                            (true, true) => "--seccomp none",
                            _ => "--no-landlock",
                        }
                    ),
                    None,
                    Some("drop those options unless a problem needs them".to_owned()),
                );
            }
        }
    }

    fn host(&mut self) {
        let caller = &self.facts.caller;
        if caller.uid != 0
            && !caller.cap_sys_rawio
            && self.speaks_scsi_pr()
            && !matches!(
                self.facts.device.kind,
                DeviceKind::ImageFile | DeviceKind::Nvme(_)
            )
        {
            self.push(
                "direct-needs-rawio",
                Severity::Note,
                "you lack CAP_SYS_RAWIO: `prtool --direct` PR OUT commands need it (PR IN needs read access only)",
                Some("the helper holds it for the guests".to_owned()),
                None,
            );
        }
        if caller.uid != 0 && !caller.cap_sys_admin && self.facts.device.route == DirectRoute::Nvme
        {
            self.push(
                "direct-needs-sys-admin",
                Severity::Note,
                "you lack CAP_SYS_ADMIN: the NVMe commands the check and `prtool --direct` send \
                 (Identify, Get Features, the reservation commands) may be refused",
                Some(
                    "the kernel lets unprivileged callers send few NVMe passthrough commands"
                        .to_owned(),
                ),
                Some("run the check as root".to_owned()),
            );
        }
        let timeout = self.facts.device.queue_timeout;
        let helper_timeout = self.facts.helper.process.as_ref().ok().and_then(|p| {
            (p.program == Program::PrHelper && p.cmdline_known)
                .then(|| p.sgio_timeout.clone().unwrap_or_else(|| "30".to_owned()))
        });
        if let (Some(helper), Some(disk)) = (&helper_timeout, timeout) {
            self.push(
                "sgio-timeout",
                Severity::Ok,
                format!(
                    "the helper sends SG_IO with a {helper} s timeout; the disk's command timeout is {disk} s"
                ),
                None,
                None,
            );
        }
        match &self.facts.libvirt {
            super::facts::LibvirtFacts::Absent => {}
            super::facts::LibvirtFacts::Unreadable { path, why } => self.push(
                "libvirt-config-unreadable",
                Severity::Note,
                format!("cannot read {path}: {why}"),
                None,
                Some("run the check as root".to_owned()),
            ),
            super::facts::LibvirtFacts::PrHelper { path, value } => {
                let effective = value.clone().unwrap_or_else(|| "qemu-pr-helper".to_owned());
                let ours = std::path::Path::new(&effective)
                    .file_name()
                    .is_some_and(|n| n == "pr-helper");
                if ours {
                    self.push(
                        "libvirt-pr-helper",
                        Severity::Ok,
                        format!("libvirt starts {effective} for managed reservations ({path})"),
                        None,
                        None,
                    );
                } else {
                    self.push(
                        "libvirt-pr-helper",
                        Severity::Note,
                        format!(
                            "libvirt starts {effective} for <reservations managed='yes'> ({path}{})",
                            if value.is_none() { ": pr_helper is not set" } else { "" }
                        ),
                        None,
                        Some(format!(
                            "to use pr-helper: set pr_helper = \"/usr/bin/pr-helper\" in {path} and restart libvirtd"
                        )),
                    );
                }
            }
        }
        let _ = self.helper_program();
    }

    fn write_test(&mut self) {
        let Some(test) = &self.facts.write_test else {
            return;
        };
        match test {
            WriteTest::Refused(why) => self.push(
                "write-test-refused",
                Severity::Degraded,
                format!("the write test did not run: {why}"),
                Some("it only runs where it cannot disturb a reservation or a registration of this host".to_owned()),
                None,
            ),
            WriteTest::Ran {
                route,
                key: k,
                steps,
                left_as_found,
            } => {
                let failed = steps.iter().find_map(|(step, r)| r.as_ref().err().map(|e| (step, e)));
                if let Some((step, why)) = failed {
                    self.push(
                        "write-test-failed",
                        Severity::NotReady,
                        format!("write test through {route}, key {}: {step} failed: {why}", key(*k)),
                        Some("a cluster node would fail the same way".to_owned()),
                        None,
                    );
                } else {
                    let names: Vec<&str> = steps.iter().map(|(s, _)| s.as_str()).collect();
                    self.push(
                        "write-test",
                        Severity::Ok,
                        format!(
                            "write test through {route}, key {}: {}",
                            key(*k),
                            names.join(", ")
                        ),
                        None,
                        None,
                    );
                }
                match left_as_found {
                    Ok(()) => self.push(
                        "write-test-left-as-found",
                        Severity::Ok,
                        "READ FULL STATUS after the write test equals the one before (but for the generation)",
                        None,
                        None,
                    ),
                    Err(why) => self.push(
                        "write-test-left-changes",
                        Severity::NotReady,
                        format!("the write test left the device changed: {why}"),
                        None,
                        Some(self.prtool(&format!(
                            "register-ignore --sa-key 0 {} (removes this host's nexus's throwaway key {})",
                            self.path(),
                            key(*k)
                        ))),
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "findings_tests.rs"]
mod tests;
