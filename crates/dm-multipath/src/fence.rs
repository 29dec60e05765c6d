//! Fencing on one map: what each service action does on which paths, and how the
//! map's key is kept equal to what the map's own I_T nexuses hold on the device.
//!
//! Pure logic over [`PathIo`] (the per-path I/O and each path's own nexus identity):
//! no file, no ioctl of its own. Every decision about a path's registration is taken
//! from the device (READ FULL STATUS, matched to the path's nexus) or made atomic on
//! the device (REGISTER with the reservation key the nexus holds), never from READ
//! KEYS: another host may hold the same key.
//!
//! The guarantees (each checked after every step of the model-based fault test,
//! `fault_tests.rs`):
//! 1. a host that was preempted or cleared holds no registration on any of its
//!    nexuses until its guest registers again;
//! 2. every GOOD answer is true on the device;
//! 3. no command the guest sent is executed twice;
//! 4. the remembered key equals what the map's nexuses hold, or is forgotten.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use scsi::cdb::opcode;
use scsi::pr::{
    FullStatus, FullStatusDescriptor, PrInAction, PrOutAction, PrOutCdb, PrOutParams,
    RegisterMoveParams, ReportCapabilities, ReservationType, Scope, TransportId, pr_in_cdb,
    pr_out_cdb,
};
use scsi::sense::{Sense, key};
use scsi::status::Status;

use crate::devnum::DevNum;
use crate::engine::{
    Answer, Fault, NO_PATH_SENSE, PathIo, PathReply, UNIT_ATTENTION_RETRIES, command_name,
};
use crate::map::{LastLook, MapPaths};
use crate::plan::RememberedKey;

/// An I_T nexus as READ FULL STATUS names it: the initiator port's TransportID and
/// the relative target port (unknown: any port of that initiator matches).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NexusId {
    /// The initiator port.
    pub initiator: TransportId,
    /// The RELATIVE TARGET PORT IDENTIFIER, when known.
    pub target_port: Option<u16>,
}

impl NexusId {
    /// Whether the READ FULL STATUS descriptor `d` is this nexus's registration.
    pub fn matches(&self, d: &FullStatusDescriptor) -> bool {
        same_initiator(&self.initiator, &d.transport_id)
            && (d.all_tg_pt || self.target_port.is_none_or(|p| p == d.relative_target_port))
    }
}

/// Whether two TransportIDs name the same initiator port. iSCSI names compare
/// without case (RFC 3720 names are case-insensitive), and an ISID only counts when
/// both sides carry one.
pub fn same_initiator(a: &TransportId, b: &TransportId) -> bool {
    match (a, b) {
        (TransportId::Iscsi { name: na, isid: ia }, TransportId::Iscsi { name: nb, isid: ib }) => {
            na.eq_ignore_ascii_case(nb)
                && match (ia, ib) {
                    (Some(ia), Some(ib)) => ia.eq_ignore_ascii_case(ib),
                    _ => true,
                }
        }
        _ => a == b,
    }
}

/// How many nexuses of paths that left a map's table are remembered.
pub const FORMER_NEXUSES: usize = 64;

/// What the map's nexuses should hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKey {
    /// Not known (a fresh helper): learned from READ FULL STATUS at the first look.
    #[default]
    Unknown,
    /// No registration: never registered, unregistered, or preempted / cleared.
    Unregistered,
    /// This key, on every nexus of the map.
    Registered(RememberedKey),
}

impl HostKey {
    /// The key, if registered.
    pub fn key(&self) -> Option<RememberedKey> {
        match self {
            HostKey::Registered(key) => Some(*key),
            _ => None,
        }
    }

    fn wanted(&self) -> Option<Option<u64>> {
        match self {
            HostKey::Unknown => None,
            HostKey::Unregistered => Some(None),
            HostKey::Registered(key) => Some(Some(key.key)),
        }
    }
}

/// What the helper keeps per map between commands (in memory only).
#[derive(Debug, Default)]
pub struct MapMemory {
    /// What the map's nexuses hold.
    pub key: HostKey,
    /// The paths at the last look, to tell which came back.
    pub last: LastLook,
    /// Paths that do not hold `key` yet (returned, missed a change, or a repair
    /// failed): retried at every look until they do or the key is forgotten.
    pub owed: BTreeSet<DevNum>,
    /// Each path's nexus, once known.
    ids: HashMap<DevNum, NexusId>,
    /// Nexuses of paths that left the table: a registration or reservation they
    /// still hold on the device is the host's (at most [`FORMER_NEXUSES`]).
    former: Vec<NexusId>,
    /// Learning was tried with a readable device (do not ask at every command).
    learn_tried: bool,
    /// A unit attention about registrations or reservations was seen: look again.
    recheck: bool,
}

impl MapMemory {
    /// A memory that already knows the map's key, or knows it does not know it and
    /// will not ask the device (a single stateless command).
    pub fn knowing(key: Option<RememberedKey>) -> Self {
        Self {
            key: key.map_or(HostKey::Unknown, HostKey::Registered),
            learn_tried: true,
            ..Self::default()
        }
    }

    /// Makes the next look read the device (and forget the key if the map's
    /// nexuses no longer hold it).
    pub fn recheck_soon(&mut self) {
        self.recheck = true;
    }

    /// Whether a look must read the device.
    fn needs_look(&self, paths: &MapPaths) -> bool {
        (self.key == HostKey::Unknown && !self.learn_tried)
            || self.recheck
            || (self.key != HostKey::Unknown && self.owed.iter().any(|p| paths.is_usable(*p)))
    }
}

/// Whether a command that failed on a path may have reached the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The device answered (whatever it answered).
    Answered,
    /// It never left the host: safe to send on another path.
    NotDelivered,
    /// It may have been executed (a timeout, an abort, a reset): the device's state
    /// decides before anything is sent again.
    MaybeDelivered,
}

/// How far a path's command got, from its fault.
pub fn delivery(fault: Option<&Fault>) -> Delivery {
    use scsi::sgio::host;
    const DID_IMM_RETRY: u16 = 0x0c;
    const DID_REQUEUE: u16 = 0x0d;
    const DID_TRANSPORT_FAILFAST: u16 = 0x0f;
    match fault {
        None => Delivery::Answered,
        Some(Fault::Unreachable(_)) => Delivery::NotDelivered,
        Some(Fault::Errno(errno)) => match *errno {
            libc::ENODEV
            | libc::ENXIO
            | libc::EBADF
            | libc::EACCES
            | libc::EPERM
            | libc::EINVAL
            | libc::ENOMEM
            | libc::EFAULT
            | libc::ENOTTY
            | libc::EOPNOTSUPP
            | libc::ENOENT => Delivery::NotDelivered,
            _ => Delivery::MaybeDelivered,
        },
        Some(Fault::HostStatus(status)) => match *status {
            host::DID_NO_CONNECT
            | host::DID_BUS_BUSY
            | host::DID_BAD_TARGET
            | DID_IMM_RETRY
            | DID_REQUEUE
            | DID_TRANSPORT_FAILFAST => Delivery::NotDelivered,
            _ => Delivery::MaybeDelivered,
        },
        Some(Fault::Timeout) => Delivery::MaybeDelivered,
    }
}

/// READ FULL STATUS as read through one path.
#[derive(Debug, Clone)]
struct View {
    generation: u32,
    descriptors: Vec<FullStatusDescriptor>,
}

/// What one nexus holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    key: Option<u64>,
    holder: bool,
    rtype: Option<ReservationType>,
}

impl View {
    fn held(&self, id: &NexusId) -> Held {
        let mut held = Held {
            key: None,
            holder: false,
            rtype: None,
        };
        for d in self.descriptors.iter().filter(|d| id.matches(d)) {
            held.key.get_or_insert(d.reservation_key);
            if d.r_holder {
                held.holder = true;
                held.rtype = held.rtype.or(d.scope_type.rtype());
            }
        }
        held
    }

    fn has_key(&self, key: u64) -> bool {
        self.descriptors.iter().any(|d| d.reservation_key == key)
    }

    fn reservation_type(&self) -> Option<ReservationType> {
        self.descriptors
            .iter()
            .find(|d| d.r_holder)
            .and_then(|d| d.scope_type.rtype())
    }

    /// The TYPE for a PREEMPT that removes a key without taking the reservation:
    /// the reservation's own, so that a holder's key keeps its type, or WRITE
    /// EXCLUSIVE when there is none. SPC-4 ignores TYPE then, but a device server
    /// may still check the field first (LIO up to Debian 12's 6.1 kernel,
    /// pr-target): TYPE 0 earns INVALID FIELD IN CDB before the key is looked at,
    /// so the key stays and a RESERVATION CONFLICT that would say the host was
    /// preempted is never seen.
    fn preempt_type(&self) -> ReservationType {
        self.reservation_type()
            .unwrap_or(ReservationType::WriteExclusive)
    }
}

/// The CDB and parameter list of a plain REGISTER.
pub fn register(rk: u64, sak: u64, aptpl: bool) -> ([u8; 10], Vec<u8>) {
    out_command(PrOutAction::Register, None, rk, sak, aptpl)
}

fn out_command(
    action: PrOutAction,
    rtype: Option<ReservationType>,
    rk: u64,
    sak: u64,
    aptpl: bool,
) -> ([u8; 10], Vec<u8>) {
    let mut data = vec![0u8; scsi::pr::PARAMETER_LIST_LEN];
    data[0..8].copy_from_slice(&rk.to_be_bytes());
    data[8..16].copy_from_slice(&sak.to_be_bytes());
    if aptpl {
        data[20] = 0x01;
    }
    let cdb = pr_out_cdb(action, Scope::LogicalUnit, rtype, data.len() as u32);
    (cdb, data)
}

/// One command on one path, sent again (a bounded number of times) while the path
/// answers UNIT ATTENTION; a unit attention about registrations or reservations
/// sets `recheck`.
pub(crate) fn send_once(
    io: &(impl PathIo + ?Sized),
    map: &str,
    path: DevNum,
    cdb: &[u8],
    data_out: &[u8],
    recheck: &AtomicBool,
) -> PathReply {
    let mut attempt = 0;
    loop {
        let started = Instant::now();
        let reply = io.send(path, cdb, data_out);
        let latency_us = started.elapsed().as_micros() as u64;
        match &reply.fault {
            None => {
                tracing::debug!(map, path = %path, command = command_name(cdb), answer = %reply.answer, latency_us, "path command")
            }
            Some(fault) => {
                tracing::debug!(map, path = %path, command = command_name(cdb), fault = %fault, latency_us, "path command")
            }
        }
        if delivery(reply.fault.as_ref()) == Delivery::MaybeDelivered {
            // The lost answer may have been a unit attention (reported once).
            recheck.store(true, Ordering::Relaxed);
        }
        if reply.fault.is_none() && reply.answer.is_unit_attention() {
            if let Some(sense) = reply.answer.sense_code()
                && sense.key == key::UNIT_ATTENTION
                && sense.asc == 0x2A
                && matches!(sense.ascq, 0x03..=0x05)
            {
                recheck.store(true, Ordering::Relaxed);
            }
            if attempt < UNIT_ATTENTION_RETRIES {
                attempt += 1;
                continue;
            }
        }
        return reply;
    }
}

/// `work` for every item, the first on this thread and the others on threads of
/// their own (a 4-path registration costs about one path's latency). A thread that
/// cannot be created does its work on this thread afterwards: never a panic.
pub(crate) fn in_parallel<T, F>(items: &[T], work: F) -> Vec<PathReply>
where
    T: Sync,
    F: Fn(&T) -> PathReply + Sync,
{
    match items {
        [] => Vec::new(),
        [only] => vec![work(only)],
        [first, rest @ ..] => std::thread::scope(|scope| {
            let work = &work;
            let handles: Vec<_> = rest
                .iter()
                .map(|item| {
                    let spawned = std::thread::Builder::new()
                        .name("pr-helper-path".into())
                        .spawn_scoped(scope, move || work(item));
                    (item, spawned.ok())
                })
                .collect();
            let mut replies = vec![work(first)];
            for (item, handle) in handles {
                let reply = match handle {
                    Some(handle) => handle.join().unwrap_or_else(|_| PathReply {
                        answer: Answer::check_condition(Sense::IO_ERROR),
                        fault: Some(Fault::Unreachable(
                            "the thread sending on a path panicked".into(),
                        )),
                    }),
                    None => work(item),
                };
                replies.push(reply);
            }
            replies
        }),
    }
}

/// Whether a registrant with `key` holds the reservation (nexuses not known).
fn ours_holds(view: &View, key: u64) -> bool {
    view.descriptors
        .iter()
        .any(|d| d.r_holder && d.reservation_key == key)
}

fn is_good(reply: &PathReply) -> bool {
    reply.fault.is_none() && reply.answer.status == Status::GOOD
}

/// One command (or one look) on one map: the paths as the map's status shows them
/// now, the map's memory, and the I/O.
pub struct Run<'a, I: PathIo + ?Sized> {
    io: &'a I,
    map: &'a str,
    paths: &'a MapPaths,
    mem: &'a mut MapMemory,
    recheck: AtomicBool,
    /// The last READ FULL STATUS this run read.
    last_view: std::cell::RefCell<Option<View>>,
    /// Paths that came back at this run's look.
    returning: Vec<DevNum>,
}

impl<'a, I: PathIo + ?Sized> Run<'a, I> {
    /// A run on `paths` with `mem`.
    pub fn new(io: &'a I, map: &'a str, paths: &'a MapPaths, mem: &'a mut MapMemory) -> Self {
        Self {
            io,
            map,
            paths,
            mem,
            recheck: AtomicBool::new(false),
            last_view: std::cell::RefCell::new(None),
            returning: Vec::new(),
        }
    }

    fn usable(&self) -> Vec<DevNum> {
        self.paths.usable()
    }

    /// Usable paths, those believed to hold the key first.
    fn usable_settled_first(&self) -> Vec<DevNum> {
        let mut usable = self.usable();
        usable.sort_by_key(|p| self.mem.owed.contains(p));
        usable
    }

    /// The map's paths that are not usable now.
    fn failed_paths(&self) -> impl Iterator<Item = DevNum> + '_ {
        self.paths.paths.iter().filter(|p| !p.usable).map(|p| p.dev)
    }

    fn all_paths(&self) -> Vec<DevNum> {
        self.paths.paths.iter().map(|p| p.dev).collect()
    }

    fn id(&mut self, path: DevNum) -> Option<NexusId> {
        if let Some(id) = self.mem.ids.get(&path) {
            return Some(id.clone());
        }
        let id = self.io.identity(path)?;
        self.mem.ids.insert(path, id.clone());
        Some(id)
    }

    /// What `path`'s nexus holds in `view`; `None` when its nexus is not known.
    fn held(&mut self, view: &View, path: DevNum) -> Option<Held> {
        self.id(path).map(|id| view.held(&id))
    }

    fn send(&self, path: DevNum, cdb: &[u8], data: &[u8]) -> PathReply {
        send_once(self.io, self.map, path, cdb, data, &self.recheck)
    }

    fn send_each<F>(&self, paths: &[DevNum], command: F) -> Vec<PathReply>
    where
        F: Fn(DevNum) -> ([u8; 10], Vec<u8>) + Sync,
    {
        let io = self.io;
        let map = self.map;
        let recheck = &self.recheck;
        in_parallel(paths, |&path| {
            let (cdb, data) = command(path);
            send_once(io, map, path, &cdb, &data, recheck)
        })
    }

    /// A PR IN through the first path that carries it (reads are safe to resend).
    fn read(&self, order: &[DevNum], cdb: &[u8]) -> (Option<DevNum>, Answer) {
        let mut last = None;
        for &path in order {
            let reply = self.send(path, cdb, &[]);
            match &reply.fault {
                None => return (Some(path), reply.answer),
                Some(fault) => {
                    tracing::info!(map = self.map, path = %path, command = command_name(cdb), fault = %fault, "path failed, trying the next");
                    last = Some(reply.answer);
                }
            }
        }
        (
            None,
            last.unwrap_or_else(|| Answer::check_condition(NO_PATH_SENSE)),
        )
    }

    /// READ FULL STATUS through the usable paths (settled ones first).
    fn view(&self) -> Option<View> {
        let order = self.usable_settled_first();
        let mut allocation: u16 = 8192;
        loop {
            let (_, answer) = self.read(&order, &pr_in_cdb(PrInAction::ReadFullStatus, allocation));
            if answer.status != Status::GOOD {
                tracing::info!(map = self.map, answer = %answer, "cannot read the device's registrations");
                return None;
            }
            let decoded = FullStatus::decode(&answer.data).ok()?;
            if decoded.truncated && allocation < u16::MAX {
                allocation = u16::try_from(decoded.advertised_len).unwrap_or(u16::MAX);
                continue;
            }
            let view = View {
                generation: decoded.value.generation,
                descriptors: decoded.value.descriptors,
            };
            *self.last_view.borrow_mut() = Some(view.clone());
            return Some(view);
        }
    }

    /// The logical unit's APTPL setting (PTPL_A of REPORT CAPABILITIES).
    fn persisting(&self) -> bool {
        let (_, answer) = self.read(
            &self.usable(),
            &pr_in_cdb(PrInAction::ReportCapabilities, 8),
        );
        answer.status == Status::GOOD
            && ReportCapabilities::decode(&answer.data).is_ok_and(|d| d.value.ptpl_a)
    }

    /// Before every command and after every event about the map: paths that came
    /// back are owed the key; the device is read when something is owed, when the key
    /// is not known yet (restart recovery) or after a unit attention about
    /// registrations.
    pub fn look(&mut self) {
        let returning = self.mem.last.returning(self.paths);
        self.returning.clone_from(&returning);
        for &path in &returning {
            // The node may now be another device behind the same number.
            self.io.reset(path);
            self.mem.ids.remove(&path);
            if self.mem.key != HostKey::Unknown {
                self.mem.owed.insert(path);
            }
        }
        let all = self.all_paths();
        self.mem.owed.retain(|p| all.contains(p));
        let gone: Vec<NexusId> = self
            .mem
            .ids
            .iter()
            .filter(|(p, _)| !all.contains(p))
            .map(|(_, id)| id.clone())
            .collect();
        for id in gone {
            if !self.mem.former.contains(&id) {
                self.mem.former.push(id);
            }
        }
        let excess = self.mem.former.len().saturating_sub(FORMER_NEXUSES);
        self.mem.former.drain(..excess);
        self.mem.ids.retain(|p, _| all.contains(p));
        if self.mem.needs_look(self.paths) {
            self.reconcile();
        }
    }

    /// After a command: a unit attention about registrations seen meanwhile is
    /// looked into now.
    pub fn finish(&mut self) {
        // Also what the look before the command could not do (the device was not
        // readable then): retried now. A unit attention seen while looking is looked
        // into once more (a bounded number of times).
        let mut rounds = 0;
        loop {
            if self.recheck.swap(false, Ordering::Relaxed) {
                self.mem.recheck = true;
            }
            // A READ FULL STATUS read on the way that shows none of the map's nexuses
            // holding its key: looked into (and the key forgotten) now.
            let seen = self.last_view.borrow_mut().take();
            if let (Some(view), HostKey::Registered(key)) = (seen, self.mem.key) {
                let mut identified = false;
                let mut holds = false;
                for path in self.all_paths() {
                    if let Some(held) = self.held(&view, path) {
                        identified = true;
                        holds |= held.key == Some(key.key);
                    }
                }
                if identified && !holds {
                    self.mem.recheck = true;
                }
            }
            let again = self.mem.recheck || (rounds == 0 && self.mem.needs_look(self.paths));
            if !again || rounds == 3 {
                return;
            }
            rounds += 1;
            self.reconcile();
        }
    }

    /// Reads the device and brings the map's nexuses to the key: learns the key if
    /// it is not known, forgets it when none of the map's nexuses holds it.
    fn reconcile(&mut self) {
        let Some(view) = self.view() else {
            return;
        };
        self.mem.recheck = false;
        if self.mem.key == HostKey::Unknown {
            self.mem.learn_tried = true;
            self.learn(&view);
        }
        if self.mem.key == HostKey::Unknown {
            return;
        }
        let targets = self.not_holding(&view);
        self.bring(&view, targets);
        self.sweep_unreachable();
    }

    /// Registrations in `view` from one of the map's initiator ports through a target
    /// port none of its paths goes through now are the host's too (the initiator
    /// port is the host's, and dm-multipath claims every path to the unit): counted
    /// among the nexuses that left the table, also after a restart, which forgot
    /// those.
    fn adopt_own_nexuses(&mut self, view: &View) {
        let mut ids = Vec::new();
        for path in self.all_paths() {
            ids.extend(self.id(path));
        }
        for d in &view.descriptors {
            if ids.iter().any(|id| id.matches(d))
                || !ids
                    .iter()
                    .any(|id| same_initiator(&id.initiator, &d.transport_id))
            {
                continue;
            }
            let id = NexusId {
                initiator: d.transport_id.clone(),
                target_port: Some(d.relative_target_port),
            };
            if !self.mem.former.iter().any(|f| f.matches(d)) {
                self.mem.former.push(id);
            }
        }
        let excess = self.mem.former.len().saturating_sub(FORMER_NEXUSES);
        self.mem.former.drain(..excess);
    }

    /// Nexuses of the map that no usable path reaches now (their path failed or
    /// left the table) and that still hold a key the host no longer holds: the guest
    /// changed its key while they were away. Such a registration is not the host's
    /// any more, yet it survives the other hosts' fencing of the host's key (they
    /// preempt the key they know) and gives write access back the moment its path
    /// returns (under WE-RO or EA-RO a registrant writes, before any look). Taken
    /// away by PREEMPT of that key through a path that holds the map's key, only when
    /// every registration with that key is one of the map's nexuses (never another
    /// host's), with the type of the reservation held now (a stale holder's
    /// reservation moves to the issuing nexus and stays the host's). The map's paths
    /// that lost the key with it are brought back.
    fn sweep_unreachable(&mut self) {
        let HostKey::Registered(key) = self.mem.key else {
            return;
        };
        let Some(view) = self.last_view.borrow().clone() else {
            return;
        };
        let mut stale = self.unreachable_keys(&view);
        stale.remove(&key.key);
        let holding: Vec<DevNum> = self
            .usable()
            .into_iter()
            .filter(|&path| {
                self.id(path)
                    .is_some_and(|id| view.held(&id).key == Some(key.key))
            })
            .collect();
        // Only the map's nexuses count (its paths', those that left its table, and
        // its initiator ports' through other target ports: see adopt_own_nexuses).
        let ids = self.our_nexuses();
        let ours = |d: &FullStatusDescriptor| ids.iter().any(|id| id.matches(d));
        let Some(&through) = holding.first() else {
            return;
        };
        let rtype = Some(view.preempt_type());
        let mut swept = false;
        for stale_key in stale {
            if view
                .descriptors
                .iter()
                .any(|d| d.reservation_key == stale_key && !ours(d))
            {
                tracing::warn!(
                    map = self.map,
                    key = format_args!("0x{stale_key:x}"),
                    "a nexus of the host that no path reaches holds an old key another host holds too: left (preempting it would fence that host)"
                );
                continue;
            }
            let (cdb, data) = out_command(PrOutAction::Preempt, rtype, key.key, stale_key, false);
            let reply = self.send(through, &cdb, &data);
            if is_good(&reply) {
                tracing::info!(map = self.map, path = %through, key = format_args!("0x{stale_key:x}"), "an old key on a nexus of the host that no path reaches: preempted");
                swept = true;
            } else {
                tracing::info!(map = self.map, path = %through, key = format_args!("0x{stale_key:x}"), answer = %reply.answer, fault = ?reply.fault, "an old key on a nexus that no path reaches could not be preempted: tried again at the next look");
                self.mem.recheck = true;
            }
        }
        if swept && let Some(after) = self.view() {
            let targets = self.not_holding(&after);
            self.bring(&after, targets);
        }
    }

    /// Restart recovery: the key the map's nexuses hold. When they disagree, the key
    /// of the paths that were usable at the last look and still are (a failed or
    /// returning path missed the latest change), if they agree.
    fn learn(&mut self, view: &View) {
        let mut all = BTreeSet::new();
        let mut settled = BTreeSet::new();
        let mut identified = false;
        for path in self.all_paths() {
            if let Some(held) = self.held(view, path) {
                identified = true;
                all.extend(held.key);
                if self.paths.is_usable(path) && !self.returning.contains(&path) {
                    settled.extend(held.key);
                }
            }
        }
        let keys = if all.len() > 1 { settled } else { all };
        match keys.len() {
            0 if identified => self.mem.key = HostKey::Unregistered,
            1 => {
                let key = keys.into_iter().next().unwrap_or_default();
                let aptpl = self.persisting();
                tracing::info!(
                    map = self.map,
                    key = format_args!("0x{key:x}"),
                    "learned the map's key from the device (READ FULL STATUS)"
                );
                self.mem.key = HostKey::Registered(RememberedKey { key, aptpl });
            }
            0 => {}
            _ => {
                tracing::warn!(map = self.map, keys = ?keys, "the map's nexuses hold different keys: left as they are until the guest registers");
            }
        }
    }

    /// Usable paths whose nexus does not hold what the map should hold (or is not
    /// known and owed).
    fn not_holding(&mut self, view: &View) -> Vec<DevNum> {
        let Some(wanted) = self.mem.key.wanted() else {
            return Vec::new();
        };
        let mut targets = Vec::new();
        for path in self.usable() {
            match self.held(view, path) {
                Some(held) if held.key == wanted => {
                    self.mem.owed.remove(&path);
                }
                Some(_) => targets.push(path),
                None if self.mem.owed.contains(&path) => targets.push(path),
                None => {}
            }
        }
        targets
    }

    /// Whether one of the map's nexuses other than `except` holds `key`: the host
    /// is still registered. Nexuses not known: a REGISTER of `key` over itself on a
    /// usable path, which the device accepts only from a nexus holding it.
    fn anchored(&mut self, view: &View, key: RememberedKey, except: &[DevNum]) -> bool {
        let mut identified = false;
        for path in self.all_paths() {
            if except.contains(&path) {
                continue;
            }
            if let Some(held) = self.held(view, path) {
                identified = true;
                if held.key == Some(key.key) {
                    return true;
                }
            }
        }
        if identified {
            return false;
        }
        let others: Vec<DevNum> = self
            .usable()
            .into_iter()
            .filter(|p| !except.contains(p))
            .collect();
        let (cdb, data) = register(key.key, key.key, key.aptpl);
        others
            .iter()
            .any(|&path| is_good(&self.send(path, &cdb, &data)))
    }

    /// Brings `targets` to the map's key, atomically: REGISTER with the key the
    /// nexus holds (0 when READ FULL STATUS shows none), so a registration that
    /// changed meanwhile conflicts instead of being overwritten. Registers only
    /// while another of the map's nexuses holds the key, and checks the PR
    /// generation afterwards: if it moved by more than our own changes and the host
    /// lost its key meanwhile, what was registered is taken back.
    fn bring(&mut self, view: &View, targets: Vec<DevNum>) {
        if targets.is_empty() {
            return;
        }
        let key = match self.mem.key {
            HostKey::Unknown => return,
            HostKey::Unregistered => {
                self.unregister(view, &targets);
                return;
            }
            HostKey::Registered(key) => key,
        };
        if !self.anchored(view, key, &targets) {
            tracing::info!(
                map = self.map,
                key = format_args!("0x{:x}", key.key),
                "the device no longer holds the map's key on any of its nexuses (preempted or cleared): forgotten, the paths stay unregistered"
            );
            self.mem.key = HostKey::Unregistered;
            self.unregister(view, &targets);
            return;
        }
        let mut plans = Vec::new();
        for &path in &targets {
            let from = self.held(view, path).map(|h| h.key);
            plans.push((path, from));
        }
        let replies = {
            let io = self.io;
            let map = self.map;
            let recheck = &self.recheck;
            in_parallel(&plans, |&(path, from)| match from {
                Some(from) => {
                    let (cdb, data) = register(from.unwrap_or(0), key.key, key.aptpl);
                    send_once(io, map, path, &cdb, &data, recheck)
                }
                None => {
                    // Nexus not known: over itself first (GOOD only if it holds the key
                    // already), else from unregistered. Either way one change when GOOD.
                    let (cdb, data) = register(key.key, key.key, key.aptpl);
                    let first = send_once(io, map, path, &cdb, &data, recheck);
                    if is_good(&first) {
                        return first;
                    }
                    let (cdb, data) = register(0, key.key, key.aptpl);
                    send_once(io, map, path, &cdb, &data, recheck)
                }
            })
        };
        // Paths the registration reached or may have reached (a lost answer).
        let mut touched = Vec::new();
        for (&(path, _), reply) in plans.iter().zip(&replies) {
            if is_good(reply) {
                tracing::info!(map = self.map, path = %path, key = format_args!("0x{:x}", key.key), "path re-registered with the map's key");
            } else {
                tracing::info!(map = self.map, path = %path, answer = %reply.answer, fault = ?reply.fault, "path registration failed: retried at the next look");
                self.mem.owed.insert(path);
            }
            if is_good(reply) || delivery(reply.fault.as_ref()) == Delivery::MaybeDelivered {
                touched.push((path, is_good(reply)));
            }
        }
        if touched.is_empty() {
            return;
        }
        let Some(after) = self.view() else {
            return;
        };
        let mut registered = Vec::new();
        for &(path, good) in &touched {
            let holds = match self.held(&after, path) {
                Some(held) => held.key == Some(key.key),
                None => good,
            };
            if holds {
                self.mem.owed.remove(&path);
                registered.push(path);
            }
        }
        if after.generation == view.generation.wrapping_add(registered.len() as u32) {
            return;
        }
        // Someone else changed registrations meanwhile: decide again.
        if self.anchored(&after, key, &registered) {
            return;
        }
        tracing::info!(
            map = self.map,
            key = format_args!("0x{:x}", key.key),
            "the host lost its key while paths were registered (preempted meanwhile): taken back"
        );
        self.mem.key = HostKey::Unregistered;
        self.unregister(&after, &registered);
    }

    /// Unregisters `targets` that hold a key (REGISTER of that key to 0: a nexus
    /// whose key changed meanwhile is left alone).
    fn unregister(&mut self, view: &View, targets: &[DevNum]) {
        let mut plans = Vec::new();
        for &path in targets {
            match self.held(view, path) {
                Some(Held {
                    key: Some(from), ..
                }) => plans.push((path, from)),
                Some(_) => {
                    self.mem.owed.remove(&path);
                }
                None => {}
            }
        }
        let replies = self.send_each(&plans.iter().map(|p| p.0).collect::<Vec<_>>(), |path| {
            let from = plans.iter().find(|p| p.0 == path).map_or(0, |p| p.1);
            register(from, 0, false)
        });
        for (&(path, from), reply) in plans.iter().zip(replies) {
            if is_good(&reply) {
                tracing::info!(map = self.map, path = %path, key = format_args!("0x{from:x}"), "path unregistered (the host holds no key)");
                self.mem.owed.remove(&path);
            } else {
                self.mem.owed.insert(path);
            }
        }
    }

    /// Executes one PR IN or PR OUT from the guest on the map.
    pub fn command(&mut self, cdb: &[u8], data: &[u8]) -> Answer {
        let usable = self.usable();
        if usable.is_empty() {
            tracing::info!(
                map = self.map,
                command = command_name(cdb),
                "no usable path: CHECK CONDITION"
            );
            return Answer::check_condition(NO_PATH_SENSE);
        }
        if cdb.first() != Some(&opcode::PERSISTENT_RESERVE_OUT) {
            return self.read(&usable, cdb).1;
        }
        let Ok(out) = PrOutCdb::decode(cdb) else {
            return self.one_path(cdb, data, |_, _, _| None).1;
        };
        let params = PrOutParams::decode_header(data).ok();
        match (out.action, params) {
            (PrOutAction::Register | PrOutAction::RegisterAndIgnoreExistingKey, Some(params))
                if !params.spec_i_pt =>
            {
                self.register_all(
                    out.action == PrOutAction::RegisterAndIgnoreExistingKey,
                    &params,
                    cdb,
                    data,
                )
            }
            (PrOutAction::Register | PrOutAction::RegisterAndIgnoreExistingKey, Some(params)) => {
                self.register_specified(&params, cdb, data)
            }
            (PrOutAction::Reserve, Some(params)) => {
                let rtype = out.scope_type.rtype();
                let rk = params.reservation_key;
                self.one_path(cdb, data, move |run, view, path| {
                    let held = run.held(view, path)?;
                    Some(held.key == Some(rk) && held.holder && held.rtype == rtype)
                })
                .1
            }
            (PrOutAction::Release, Some(params)) => {
                self.release(&params, out.scope_type.rtype(), cdb, data)
            }
            (PrOutAction::Clear, Some(params)) => {
                // Whether a CLEAR whose answer was lost executed: every registration
                // of before is gone (the device's state before it is read first).
                let rk = params.reservation_key;
                let before = self.view();
                let (_, answer) = self.one_path(cdb, data, move |run, view, path| {
                    let before = before.as_ref()?;
                    let id = run.id(path)?;
                    if before.held(&id).key != Some(rk) {
                        return Some(false);
                    }
                    let gone = before.descriptors.iter().all(|old| {
                        !view.descriptors.iter().any(|new| {
                            new.reservation_key == old.reservation_key
                                && new.transport_id == old.transport_id
                                && new.relative_target_port == old.relative_target_port
                        })
                    });
                    Some(gone)
                });
                if answer.status == Status::GOOD {
                    self.forget_all("CLEAR");
                }
                answer
            }
            (PrOutAction::Preempt | PrOutAction::PreemptAndAbort, Some(params))
                if params.reservation_key != 0
                    && params.reservation_key == params.service_action_key =>
            {
                self.preempt_own(&params, out.scope_type.rtype(), cdb, data)
            }
            (PrOutAction::Preempt | PrOutAction::PreemptAndAbort, Some(params)) => {
                let (rk, sak) = (params.reservation_key, params.service_action_key);
                self.one_path(cdb, data, move |run, view, path| {
                    let held = run.held(view, path)?;
                    if held.key != Some(rk) || sak == 0 {
                        return None;
                    }
                    if view.has_key(sak) {
                        return Some(false);
                    }
                    (view.reservation_type().is_none() || held.holder).then_some(true)
                })
                .1
            }
            (PrOutAction::RegisterAndMove, _) => self.register_and_move(cdb, data),
            _ => self.one_path(cdb, data, |_, _, _| None).1,
        }
    }

    /// A one-path PR OUT: the paths believed registered first, the next only when
    /// the command was not delivered. When it may have been (a timeout, an abort, a
    /// reset), `executed` decides from the device's state: `Some(true)` it was
    /// (GOOD), `Some(false)` it was not (the next path), `None` cannot tell (the
    /// failure is the answer: never twice).
    fn one_path<F>(&mut self, cdb: &[u8], data: &[u8], executed: F) -> (Option<DevNum>, Answer)
    where
        F: Fn(&mut Self, &View, DevNum) -> Option<bool>,
    {
        let order = self.usable_settled_first();
        self.one_path_on(&order, cdb, data, executed)
    }

    fn one_path_on<F>(
        &mut self,
        order: &[DevNum],
        cdb: &[u8],
        data: &[u8],
        executed: F,
    ) -> (Option<DevNum>, Answer)
    where
        F: Fn(&mut Self, &View, DevNum) -> Option<bool>,
    {
        let mut last = None;
        for &path in order {
            let reply = self.send(path, cdb, data);
            match delivery(reply.fault.as_ref()) {
                Delivery::Answered => {
                    if reply.answer.status == Status::RESERVATION_CONFLICT {
                        // Maybe the host was preempted: the device is read afterwards.
                        self.recheck.store(true, Ordering::Relaxed);
                    }
                    return (Some(path), reply.answer);
                }
                Delivery::NotDelivered => {
                    tracing::info!(map = self.map, path = %path, command = command_name(cdb), fault = ?reply.fault, "not delivered, trying the next path");
                    last = Some(reply.answer);
                }
                Delivery::MaybeDelivered => {
                    let verdict = match self.view() {
                        Some(view) => executed(self, &view, path),
                        None => None,
                    };
                    match verdict {
                        Some(true) => {
                            tracing::info!(map = self.map, path = %path, command = command_name(cdb), fault = ?reply.fault, "the path failed after the device executed the command");
                            return (Some(path), Answer::good(Vec::new()));
                        }
                        Some(false) => {
                            tracing::info!(map = self.map, path = %path, command = command_name(cdb), fault = ?reply.fault, "the device did not execute it: trying the next path");
                            last = Some(reply.answer);
                        }
                        None => {
                            tracing::info!(map = self.map, path = %path, command = command_name(cdb), fault = ?reply.fault, "may have been executed and the device cannot tell: not sent again");
                            return (None, reply.answer);
                        }
                    }
                }
            }
        }
        (
            None,
            last.unwrap_or_else(|| Answer::check_condition(NO_PATH_SENSE)),
        )
    }

    /// REGISTER / REGISTER AND IGNORE EXISTING KEY: every usable path in parallel.
    /// GOOD only when every usable path holds what was asked; otherwise rolled back
    /// and the failure answered.
    fn register_all(
        &mut self,
        ignore: bool,
        params: &PrOutParams,
        cdb: &[u8],
        data: &[u8],
    ) -> Answer {
        let mut usable = self.usable();
        let before = self.mem.key;
        let wanted = (params.service_action_key != 0).then_some(params.service_action_key);
        let mut fixed = [0u8; 10];
        fixed.copy_from_slice(cdb.get(..10).unwrap_or(&[0; 10]));
        // Usable paths an unregistration's preparation left with no key: done.
        let mut cleared = Vec::new();
        if wanted.is_none() {
            cleared = match self.clear_unreachable_before_unregister(ignore, params) {
                Ok(cleared) => cleared,
                Err(answer) => return *answer,
            };
            usable.retain(|p| !cleared.contains(p));
        }
        // Unregistering the holder releases the reservation, which no rollback can
        // bring back: the holder's path goes last, once every other path is done.
        let mut holders = Vec::new();
        if wanted.is_none()
            && let Some(view) = self.view()
            && view
                .reservation_type()
                .is_some_and(|t| !t.all_registrants())
        {
            for &path in &usable {
                if self.held(&view, path).is_some_and(|h| h.holder) {
                    holders.push(path);
                }
            }
            usable.retain(|p| !holders.contains(p));
        }
        let mut replies = self.send_each(&usable, |_| (fixed, data.to_vec()));
        if !holders.is_empty() {
            let others_good = replies.iter().all(is_good);
            for &path in &holders {
                usable.push(path);
                replies.push(if others_good {
                    self.send(path, &fixed, data)
                } else {
                    PathReply {
                        answer: Answer::check_condition(Sense::IO_ERROR),
                        fault: Some(Fault::Unreachable(
                            "not sent: the registration failed on another path".into(),
                        )),
                    }
                });
            }
        }
        for &path in &cleared {
            usable.push(path);
            replies.push(PathReply {
                answer: Answer::good(Vec::new()),
                fault: None,
            });
        }
        let mut done: Vec<bool> = replies.iter().map(is_good).collect();
        // The host's registration is proven when a path accepted the reservation key
        // (or the guest asked to ignore it): only then are the other paths repaired.
        let proven = ignore || done.iter().any(|&d| d);
        if !done.iter().all(|&d| d)
            && let Some(view) = self.view()
        {
            let mut repairs = Vec::new();
            for (i, &path) in usable.iter().enumerate() {
                if done[i] {
                    continue;
                }
                let delivered = delivery(replies[i].fault.as_ref());
                let Some(held) = self.held(&view, path) else {
                    continue;
                };
                // Already as asked: a command that executed before its path failed, a
                // path brought in line by another that accepted the key, or QEMU's
                // migrate-pr REGISTER (0, K) on the host whose nexuses hold K already
                // (a same-host live update, a deliberate difference from SPC-4's
                // RESERVATION CONFLICT). A wrong reservation key still conflicts.
                let migrate_pr =
                    !ignore && params.reservation_key == 0 && params.service_action_key != 0;
                if held.key == wanted
                    && (proven || migrate_pr || delivered == Delivery::MaybeDelivered)
                {
                    done[i] = true;
                    continue;
                }
                let repairable = delivered == Delivery::MaybeDelivered
                    || (delivered == Delivery::Answered
                        && replies[i].answer.status == Status::RESERVATION_CONFLICT);
                if proven && repairable {
                    repairs.push((i, path, held.key));
                }
            }
            let io = self.io;
            let map = self.map;
            let recheck = &self.recheck;
            let repaired = in_parallel(&repairs, |&(_, path, from)| {
                let (cdb, data) = register(from.unwrap_or(0), wanted.unwrap_or(0), params.aptpl);
                send_once(io, map, path, &cdb, &data, recheck)
            });
            for (&(i, path, _), reply) in repairs.iter().zip(repaired) {
                if is_good(&reply) {
                    tracing::info!(map = self.map, path = %path, "path brought in line with the map's registration");
                    done[i] = true;
                }
            }
        }
        if done.iter().all(|&d| d) {
            self.mem.key = match wanted {
                Some(key) => HostKey::Registered(RememberedKey {
                    key,
                    aptpl: params.aptpl,
                }),
                None => HostKey::Unregistered,
            };
            // Paths that are failed now missed it: they are brought in line when they
            // return.
            self.mem.owed = self.failed_paths().collect();
            if wanted.is_some() && self.view().is_some() {
                self.sweep_unreachable();
            }
            return Answer::good(Vec::new());
        }
        let failed: Vec<String> = usable
            .iter()
            .zip(&replies)
            .zip(&done)
            .filter(|(_, d)| !**d)
            .map(|((path, reply), _)| match &reply.fault {
                Some(fault) => format!("{path} ({fault})"),
                None => format!("{path} ({})", reply.answer),
            })
            .collect();
        let answer = replies
            .iter()
            .zip(&done)
            .find(|(r, d)| !**d && r.fault.is_none())
            .or_else(|| replies.iter().zip(&done).find(|(_, d)| !**d))
            .map(|(r, _)| r.answer.clone())
            .unwrap_or_else(|| Answer::check_condition(NO_PATH_SENSE));
        // Paths the command never reached (their node cannot be opened, the
        // transport refused it before sending) hold what they held: the new key stays
        // on the others and is remembered, and those paths are owed it (brought in
        // line when they work, or unregistered if the key is preempted meanwhile).
        // Anything the device refused, or that may have executed, is rolled back.
        let unreached = replies.iter().zip(&done).all(|(r, d)| {
            *d || (r.fault.is_some() && delivery(r.fault.as_ref()) == Delivery::NotDelivered)
        });
        if let (Some(key), true, true) = (wanted, unreached, done.iter().any(|&d| d)) {
            tracing::info!(map = self.map, command = command_name(cdb), paths = %failed.join(", "), "registration did not reach some paths: they are owed the key");
            self.mem.key = HostKey::Registered(RememberedKey {
                key,
                aptpl: params.aptpl,
            });
            self.mem.owed = self
                .failed_paths()
                .chain(
                    usable
                        .iter()
                        .zip(&done)
                        .filter(|(_, d)| !**d)
                        .map(|(p, _)| *p),
                )
                .collect();
            return answer;
        }
        tracing::info!(map = self.map, command = command_name(cdb), paths = %failed.join(", "), "registration failed on some paths: rolled back");
        self.roll_back(before, wanted, &usable, &done);
        answer
    }

    /// Before an unregistration: a nexus of the map that no usable path reaches (its
    /// path failed or left the table) and still holds a key would keep it once the
    /// usable paths are unregistered, and with it an all-registrants reservation or
    /// the reservation it holds; the map would then hold no key to preempt it with.
    /// So it is preempted first, through a usable path holding the key the guest's
    /// command names (PREEMPT of the stale key: every registration with it goes, the
    /// issuer's too unless that key held a reservation of another type, which the
    /// issuer then takes and its own unregistration releases). Only when every
    /// registration with that key is one of the map's nexuses (never another host's).
    /// Returns the usable paths that hold no key afterwards (as the guest asked).
    /// When it cannot be done the guest is told so (CHECK CONDITION, LOGICAL UNIT
    /// COMMUNICATION FAILURE) and its registration stays: GOOD would be untrue.
    fn clear_unreachable_before_unregister(
        &mut self,
        ignore: bool,
        params: &PrOutParams,
    ) -> Result<Vec<DevNum>, Box<Answer>> {
        let Some(view) = self.view() else {
            // Cannot be read: the paths' own answers decide.
            return Ok(Vec::new());
        };
        let stale = self.unreachable_keys(&view);
        if stale.is_empty() {
            return Ok(Vec::new());
        }
        let mut anchor = None;
        let mut usable_registered = false;
        for path in self.usable() {
            let Some(held) = self.held(&view, path) else {
                usable_registered = true;
                continue;
            };
            let Some(key) = held.key else {
                continue;
            };
            usable_registered = true;
            if anchor.is_none() && (ignore || key == params.reservation_key) {
                anchor = Some((path, key));
            }
        }
        let map = self.map;
        let keys = stale.clone();
        let refuse = move |why: &str| {
            tracing::warn!(map, keys = ?keys, why, "unregistration refused: a nexus of the map that no usable path reaches would keep its registration");
            Box::new(Answer::check_condition(Sense::LUN_COMM_FAILURE))
        };
        let Some((through, own)) = anchor else {
            if usable_registered && !ignore {
                // The device refuses the guest's command by itself (a wrong key).
                return Ok(Vec::new());
            }
            return Err(refuse("no usable path holds a key to preempt it with"));
        };
        let ours = self.our_nexuses();
        if let Some(shared) = stale.iter().find(|&&k| {
            view.descriptors
                .iter()
                .any(|d| d.reservation_key == k && !ours.iter().any(|id| id.matches(d)))
        }) {
            tracing::info!(
                map = self.map,
                key = format_args!("0x{shared:x}"),
                "another host holds the same key"
            );
            return Err(refuse("preempting its key would fence another host"));
        }
        let rtype = Some(view.preempt_type());
        // The own key last: its PREEMPT may unregister the issuer too.
        let mut order: Vec<u64> = stale.iter().copied().filter(|&k| k != own).collect();
        order.extend(stale.iter().copied().filter(|&k| k == own));
        for stale_key in order {
            let (cdb, data) = out_command(PrOutAction::Preempt, rtype, own, stale_key, false);
            let reply = self.send(through, &cdb, &data);
            tracing::info!(map = self.map, path = %through, key = format_args!("0x{stale_key:x}"), answer = %reply.answer, fault = ?reply.fault, "before unregistering: preempted a key a nexus of the map that no usable path reaches holds");
            if !is_good(&reply) {
                break;
            }
        }
        self.mem.recheck = true;
        let Some(after) = self.view() else {
            return Err(Box::new(Answer::check_condition(Sense::LUN_COMM_FAILURE)));
        };
        if !self.unreachable_keys(&after).is_empty() {
            return Err(refuse("its key could not be preempted"));
        }
        let mut cleared = Vec::new();
        for path in self.usable() {
            if self.held(&after, path).is_some_and(|h| h.key.is_none()) {
                cleared.push(path);
            }
        }
        Ok(cleared)
    }

    /// The map's nexuses as far as known: its paths', those that left its table,
    /// and its initiator ports' through other target ports (see adopt_own_nexuses).
    fn our_nexuses(&mut self) -> Vec<NexusId> {
        let mut ids = Vec::new();
        for path in self.all_paths() {
            ids.extend(self.id(path));
        }
        ids.extend(self.mem.former.iter().cloned());
        ids
    }

    /// The keys that nexuses of the map no usable path reaches hold in `view`.
    fn unreachable_keys(&mut self, view: &View) -> BTreeSet<u64> {
        self.adopt_own_nexuses(view);
        let mut usable_ids = Vec::new();
        for path in self.usable() {
            usable_ids.extend(self.id(path));
        }
        let ours = self.our_nexuses();
        view.descriptors
            .iter()
            .filter(|d| {
                ours.iter().any(|id| id.matches(d)) && !usable_ids.iter().any(|id| id.matches(d))
            })
            .map(|d| d.reservation_key)
            .collect()
    }

    /// After a registration that did not reach every path: every nexus back to what
    /// the host held before (if it still holds it anywhere), else none.
    fn roll_back(
        &mut self,
        before: HostKey,
        wanted: Option<u64>,
        usable: &[DevNum],
        done: &[bool],
    ) {
        let Some(view) = self.view() else {
            // Cannot see the device: the old key, every path owed.
            self.mem.owed.extend(usable.iter().copied());
            return;
        };
        match before {
            HostKey::Registered(old) if wanted != Some(old.key) => {
                self.mem.key = before;
                let targets = self.not_holding(&view);
                let unknown_changed: Vec<DevNum> = usable
                    .iter()
                    .zip(done)
                    .filter(|(_, d)| **d)
                    .map(|(p, _)| *p)
                    .filter(|p| !targets.contains(p))
                    .collect();
                let mut targets = targets;
                for path in unknown_changed {
                    if self.held(&view, path).is_none() {
                        targets.push(path);
                        self.mem.owed.insert(path);
                    }
                }
                self.bring(&view, targets);
            }
            HostKey::Registered(old) => {
                // The same key again: if a nexus this command did not change holds it,
                // the host was registered and stays so (the others are owed);
                // otherwise its paths hold the key only by this command: taken back.
                // After a unit attention about registrations the memory was stale:
                // only nexuses this command did not touch count.
                let stale = self.recheck.load(Ordering::Relaxed);
                let changed: Vec<DevNum> = usable
                    .iter()
                    .zip(done)
                    .filter(|(_, d)| **d || stale)
                    .map(|(p, _)| *p)
                    .collect();
                if self.anchored(&view, old, &changed) {
                    for (path, d) in usable.iter().zip(done) {
                        if !d {
                            self.mem.owed.insert(*path);
                        }
                    }
                } else {
                    self.mem.key = HostKey::Unregistered;
                    self.unregister(&view, &changed);
                }
            }
            HostKey::Unregistered => {
                let targets = self.not_holding(&view);
                self.unregister(&view, &targets);
            }
            HostKey::Unknown => {
                // Not known before: only what this command changed is taken back.
                if let Some(key) = wanted {
                    let changed: Vec<DevNum> = usable
                        .iter()
                        .zip(done)
                        .filter(|(_, d)| **d)
                        .map(|(p, _)| *p)
                        .collect();
                    let replies = self.send_each(&changed, |_| register(key, 0, false));
                    drop(replies);
                }
                self.mem.learn_tried = false;
            }
        }
    }

    /// REGISTER with SPEC_I_PT: once, through one path (it registers other initiators
    /// too); then the map's other paths take the same key.
    fn register_specified(&mut self, params: &PrOutParams, cdb: &[u8], data: &[u8]) -> Answer {
        let wanted = params.service_action_key;
        let (through, answer) = self.one_path(cdb, data, move |run, view, path| {
            let held = run.held(view, path)?;
            (held.key == Some(wanted)).then_some(true)
        });
        if answer.status != Status::GOOD || through.is_none() {
            return answer;
        }
        self.mem.key = if wanted == 0 {
            HostKey::Unregistered
        } else {
            HostKey::Registered(RememberedKey {
                key: wanted,
                aptpl: params.aptpl,
            })
        };
        if let Some(through) = through {
            self.spread_from(through);
        }
        answer
    }

    /// PREEMPT (AND ABORT) of the map's own key (QEMU's migrate-pr on the
    /// destination, fence_scsi): the device removes every registration with that
    /// key except the issuing nexus's, so the map's other paths are registered again.
    fn preempt_own(
        &mut self,
        params: &PrOutParams,
        rtype: Option<ReservationType>,
        cdb: &[u8],
        data: &[u8],
    ) -> Answer {
        let own = params.reservation_key;
        let (through, answer) = self.one_path(cdb, data, move |run, view, path| {
            let held = run.held(view, path)?;
            if held.key != Some(own) {
                return None;
            }
            Some(held.holder && held.rtype == rtype)
        });
        let Some(through) = through.filter(|_| answer.status == Status::GOOD) else {
            return answer;
        };
        let aptpl = self
            .mem
            .key
            .key()
            .filter(|k| k.key == own)
            .map_or(params.aptpl, |k| k.aptpl);
        self.mem.key = HostKey::Registered(RememberedKey { key: own, aptpl });
        self.spread_from(through);
        answer
    }

    /// After a one-path command that gave `through`'s nexus the map's key: the
    /// map's other paths are owed it and brought in line now.
    fn spread_from(&mut self, through: DevNum) {
        self.mem.owed = self
            .all_paths()
            .into_iter()
            .filter(|&p| p != through)
            .collect();
        if let Some(view) = self.view() {
            let targets = self.not_holding(&view);
            self.bring(&view, targets);
            if self.view().is_some() {
                self.sweep_unreachable();
            }
        }
    }

    /// RELEASE: sent where the reservation is held. When the holder's path is not
    /// usable, the reservation is taken over through a live path (PREEMPT of the
    /// holder's key), the other paths registered again, and released there. GOOD only when
    /// READ FULL STATUS shows none of the map's nexuses holding it.
    fn release(
        &mut self,
        params: &PrOutParams,
        rtype: Option<ReservationType>,
        cdb: &[u8],
        data: &[u8],
    ) -> Answer {
        let rk = params.reservation_key;
        let Some(view) = self.view() else {
            // The device's registrations cannot be read now: the RELEASE goes to one
            // path, and GOOD stays only if a READ FULL STATUS afterwards shows no
            // reservation of the map's key.
            let answer = self.one_path(cdb, data, |_, _, _| None).1;
            if answer.status != Status::GOOD {
                return answer;
            }
            return match self.view() {
                Some(after) if !(rk != 0 && ours_holds(&after, rk)) => {
                    self.adopt_own_nexuses(&after);
                    let mut held = false;
                    for path in self.all_paths() {
                        held |= self.held(&after, path).is_some_and(|h| h.holder);
                    }
                    held |= self.mem.former.iter().any(|id| after.held(id).holder);
                    if held {
                        Answer::check_condition(Sense::LUN_COMM_FAILURE)
                    } else {
                        answer
                    }
                }
                _ => Answer::check_condition(Sense::LUN_COMM_FAILURE),
            };
        };
        self.adopt_own_nexuses(&view);
        let mut holders = Vec::new();
        let mut registered_usable = Vec::new();
        for path in self.all_paths() {
            if let Some(held) = self.held(&view, path) {
                if held.holder {
                    holders.push(path);
                }
                if held.key == Some(rk) && self.paths.is_usable(path) {
                    registered_usable.push(path);
                }
            } else if self.paths.is_usable(path) {
                registered_usable.push(path);
            }
        }
        // A holder with the map's key on a nexus not among the map's paths now (its
        // path left the table, or its nexus cannot be told) is the map's too.
        let held_by_key = (rk != 0 && ours_holds(&view, rk))
            || self.mem.former.iter().any(|id| view.held(id).holder);
        let not_ours = move |run: &mut Self, view: &View, _path: DevNum| {
            let mut ours = (rk != 0 && ours_holds(view, rk))
                || run.mem.former.iter().any(|id| view.held(id).holder);
            for path in run.all_paths() {
                ours |= run.held(view, path).is_some_and(|h| h.holder);
            }
            Some(!ours)
        };
        if holders.is_empty() && !held_by_key {
            // The host holds no reservation: the device's own answer (GOOD for a
            // registered non-holder, which changes nothing and is true). A RELEASE
            // whose answer was lost counts as GOOD only from a nexus registered with
            // the reservation key: from any other the device answered RESERVATION
            // CONFLICT (SPC-4) and changed nothing, which is no reason for GOOD
            // however the reservation looks now (the next path answers for itself).
            let before = view.clone();
            return self
                .one_path(cdb, data, move |run, view, path| {
                    let held = run.held(&before, path)?;
                    if rk == 0 || held.key != Some(rk) {
                        return Some(false);
                    }
                    not_ours(run, view, path)
                })
                .1;
        }
        let usable_holders: Vec<DevNum> = holders
            .iter()
            .copied()
            .filter(|p| self.paths.is_usable(*p))
            .collect();
        let answer = if !usable_holders.is_empty() {
            self.one_path_on(&usable_holders, cdb, data, not_ours).1
        } else {
            self.take_over(params, rtype, &view, &registered_usable)
        };
        if answer.status != Status::GOOD {
            return answer;
        }
        let Some(after) = self.view() else {
            return Answer::check_condition(Sense::LUN_COMM_FAILURE);
        };
        if not_ours(self, &after, DevNum::new(0, 0)) != Some(true) {
            tracing::warn!(
                map = self.map,
                "RELEASE answered GOOD but the map still holds the reservation"
            );
            return Answer::check_condition(Sense::LUN_COMM_FAILURE);
        }
        answer
    }

    /// The holder's path is down: PREEMPT of the own key through a live registered
    /// path makes that nexus the holder, the other paths are registered again, then
    /// RELEASE goes there.
    fn take_over(
        &mut self,
        params: &PrOutParams,
        rtype: Option<ReservationType>,
        view: &View,
        registered_usable: &[DevNum],
    ) -> Answer {
        let held_type = view.reservation_type();
        if held_type.is_some() && held_type != rtype {
            // What the holder would answer to a RELEASE of another type.
            return Answer::check_condition(Sense::INVALID_RELEASE_OF_PERSISTENT_RESERVATION);
        }
        let Some(&through) = registered_usable.first() else {
            // No live path holds the key: the device's answer to a non-registrant.
            return Answer::plain(Status::RESERVATION_CONFLICT);
        };
        let own = params.reservation_key;
        // The holder's key: the map's own, or an older one a nexus whose path is gone
        // still holds.
        let holder_key = view
            .descriptors
            .iter()
            .find(|d| d.r_holder)
            .map_or(own, |d| d.reservation_key);
        tracing::info!(map = self.map, path = %through, key = format_args!("0x{holder_key:x}"), "the reservation holder's path is down: taking the reservation over (PREEMPT of the holder's key) to release it");
        let (cdb, data) = out_command(PrOutAction::Preempt, rtype, own, holder_key, false);
        let reply = self.send(through, &cdb, &data);
        if !is_good(&reply) {
            return reply.answer;
        }
        if let Some(after) = self.view() {
            // The map's other nexuses lost the key with the PREEMPT.
            let targets: Vec<DevNum> = self.not_holding(&after);
            for path in self.all_paths() {
                if path != through {
                    self.mem.owed.insert(path);
                }
            }
            self.bring(&after, targets);
        }
        let (cdb, data) = out_command(PrOutAction::Release, rtype, own, 0, false);
        let reply = self.send(through, &cdb, &data);
        reply.answer
    }

    /// REGISTER AND MOVE: from the holder's nexus, once. With UNREG the host keeps no
    /// registration: the map's other paths are unregistered too.
    fn register_and_move(&mut self, cdb: &[u8], data: &[u8]) -> Answer {
        let params = RegisterMoveParams::decode(data).ok();
        let mut order = self.usable_settled_first();
        if let Some(view) = self.view() {
            let mut holders = Vec::new();
            for &path in &order {
                if self.held(&view, path).is_some_and(|h| h.holder) {
                    holders.push(path);
                }
            }
            order.sort_by_key(|p| !holders.contains(p));
        }
        let moved = params.clone();
        let (_, answer) = self.one_path_on(&order, cdb, data, move |_, view, _| {
            let moved = moved.as_ref()?;
            view.descriptors
                .iter()
                .any(|d| {
                    d.r_holder
                        && d.reservation_key == moved.service_action_key
                        && same_initiator(&d.transport_id, &moved.transport_id)
                })
                .then_some(true)
        });
        if answer.status == Status::GOOD
            && let Some(params) = params
            && params.unreg
        {
            self.forget_all("REGISTER AND MOVE with UNREG");
        }
        answer
    }

    /// The host keeps no registration: every nexus of the map that still holds one
    /// is unregistered.
    fn forget_all(&mut self, why: &str) {
        tracing::info!(map = self.map, why, "the host holds no key any more");
        self.mem.key = HostKey::Unregistered;
        self.mem.owed = self.all_paths().into_iter().collect();
        if let Some(view) = self.view() {
            let targets = self.not_holding(&view);
            self.unregister(&view, &targets);
        }
    }
}
