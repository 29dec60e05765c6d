//! The model-based fault test: the real service ([`Multipath`] over a fake
//! [`System`]) against one logical unit (pr-target's SPC-4 state machine) seen
//! through several nexuses by two hosts. Host A's map has three paths (two initiator
//! ports, one of them through two target ports); host B's map has two and runs a
//! service of its own. Random sequences of guest commands, path faults (before
//! delivery, after execution, timeouts that did not execute), path flaps and
//! disappearances, helper restarts, the other host's preemptions, clears and
//! reservations (also in the middle of A's commands), and QEMU's migrate-pr (to the
//! other host and on the same host) are checked after every step against:
//!
//! 1. a host that was preempted or cleared holds no registration on any of its
//!    nexuses until its guest registers again;
//! 2. every GOOD answer is true on the device;
//! 3. no command is executed twice (a rollback of the guest's registration that
//!    repeats the bytes of the bring-up before it is a new command, not a re-send);
//! 4. the remembered key equals what the map's nexuses hold (paths owed a retry
//!    aside), or is forgotten; and once faults stop, nothing is owed.
//!
//! `PR_FAULT_CASES` sets the number of random cases (default 1500), `PR_FAULT_SEED`
//! the seed (default [`DEFAULT_SEED`], so every run checks the same cases; a number,
//! or `random` to explore). `PR_FAULT_DUMP` set prints every command the device
//! executes and its outcome (for reading a shrunk case).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pr_target::{LogicalUnit, Nexus, Outcome, build};
use proptest::prelude::*;
use scsi::pr::{PrOutAction, TransportId};
use scsi::sense::Sense;
use scsi::sgio::host;
use scsi::status::Status;

use crate::devnum::DevNum;
use crate::engine::{Answer, Fault, PathIo, PathReply};
use crate::fence::{HostKey, NexusId};
use crate::map::{MapPath, MapPaths};
use crate::service::{LookError, Multipath, System};

const MAP_A: DevNum = DevNum::new(253, 0);
const MAP_B: DevNum = DevNum::new(253, 1);
/// A's paths: initiator a01 through target ports 1 and 2, initiator a03 through 2.
const A: [DevNum; 3] = [DevNum::new(8, 0), DevNum::new(8, 32), DevNum::new(8, 64)];
const B: [DevNum; 2] = [DevNum::new(8, 16), DevNum::new(8, 48)];
const WE_RO: u8 = 0x5;
const WE: u8 = 0x1;
const EA_AR: u8 = 0x8;

fn nexus_of(path: DevNum) -> Nexus {
    let (initiator, port) = match path {
        p if p == A[0] => (0x5001405000000a01, 1),
        p if p == A[1] => (0x5001405000000a01, 2),
        p if p == A[2] => (0x5001405000000a03, 2),
        p if p == B[0] => (0x5001405000000a02, 1),
        _ => (0x5001405000000a04, 2),
    };
    Nexus::new(TransportId::Sas { address: initiator }, port)
}

/// A fault armed on a path for its next commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Armed {
    /// Never reaches the device (DID_NO_CONNECT).
    BeforeDelivery,
    /// Executed, then the path fails (DID_TIME_OUT): the answer is lost.
    AfterExecution,
    /// Times out without reaching the device (DID_TIME_OUT, not executed).
    LostOnTheWay,
}

#[derive(Debug, Clone, Copy)]
struct PathState {
    in_table: bool,
    /// dm-multipath's view: not failed.
    usable: bool,
    /// The transport works (a failed path may still work; a flapping one does not).
    up: bool,
    fail_count: u32,
    armed: Option<(Armed, u32)>,
}

/// What the other host does, through its own map or directly on its nexus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OtherCmd {
    /// Preempts every key A's nexuses hold (fence_scsi fencing A), WE-RO.
    PreemptA,
    /// CLEAR.
    Clear,
    /// RESERVE WE with its key.
    Reserve,
    /// RELEASE WE.
    Release,
    /// REGISTER AND IGNORE with its own key (comes back after being fenced).
    Register,
}

/// The device and the paths' transports, shared by both hosts' services.
#[derive(Debug)]
struct World {
    lu: Mutex<Device>,
    paths: Mutex<HashMap<DevNum, PathState>>,
    /// Before the n-th device command from now, the other host does this.
    interleave: Mutex<Option<(u32, OtherCmd)>>,
    b_key: Mutex<u64>,
}

#[derive(Debug)]
struct Device {
    lu: LogicalUnit,
    /// Unit attentions pending per nexus.
    attention: HashMap<Nexus, Vec<Sense>>,
    /// Every PR OUT the device executed: nexus, CDB, list.
    executed: Vec<(Nexus, Vec<u8>, Vec<u8>)>,
    /// The interleaved action of the other host that ran, and whether it succeeded.
    interleaved: Option<(OtherCmd, bool)>,
    /// Answers from the device that reached host A's helper.
    from_a: usize,
}

impl Device {
    /// Executes like a device server: a pending unit attention first; unit attentions
    /// for the nexuses another nexus's command took a registration or reservation from.
    fn execute(&mut self, nexus: &Nexus, cdb: &[u8], data: &[u8]) -> Outcome {
        if let Some(pending) = self.attention.get_mut(nexus)
            && !pending.is_empty()
        {
            return Outcome::CheckCondition(pending.remove(0));
        }
        let before: Vec<Nexus> = self
            .lu
            .registrations()
            .iter()
            .map(|r| r.nexus.clone())
            .collect();
        let reserved = self.lu.reservation().is_some();
        let outcome = self.lu.execute(nexus, cdb, data);
        if std::env::var_os("PR_FAULT_DUMP").is_some() {
            eprintln!(
                "DEV {:x?} tp{} {:02x?} {:02x?} -> {:?}",
                nexus.initiator,
                nexus.target_port,
                &cdb[..cdb.len().min(10)],
                &data[..data.len().min(16)],
                match &outcome {
                    Outcome::Good(_) => "GOOD".to_string(),
                    o => format!("{o:?}"),
                }
            );
        }
        if cdb.first() == Some(&pr_target::PERSISTENT_RESERVE_OUT)
            && matches!(outcome, Outcome::Good(_))
        {
            self.executed.push((
                nexus.clone(),
                cdb.get(..10).unwrap_or(cdb).to_vec(),
                data.to_vec(),
            ));
            for lost in before
                .iter()
                .filter(|n| *n != nexus && self.lu.key_of(n).is_none())
            {
                self.attention
                    .entry(lost.clone())
                    .or_default()
                    .push(Sense::REGISTRATIONS_PREEMPTED);
            }
            if reserved && self.lu.reservation().is_none() {
                for r in self.lu.registrations() {
                    if r.nexus != *nexus {
                        self.attention
                            .entry(r.nexus.clone())
                            .or_default()
                            .push(Sense::RESERVATIONS_RELEASED);
                    }
                }
            }
        }
        outcome
    }

    fn key_of(&self, path: DevNum) -> Option<u64> {
        self.lu.key_of(&nexus_of(path))
    }
}

impl World {
    fn new() -> Arc<Self> {
        let mut paths = HashMap::new();
        for path in A.iter().chain(&B) {
            paths.insert(
                *path,
                PathState {
                    in_table: true,
                    usable: true,
                    up: true,
                    fail_count: 0,
                    armed: None,
                },
            );
        }
        Arc::new(Self {
            lu: Mutex::new(Device {
                lu: LogicalUnit::new(vec![1, 2]),
                attention: HashMap::new(),
                executed: Vec::new(),
                interleaved: None,
                from_a: 0,
            }),
            paths: Mutex::new(paths),
            interleave: Mutex::new(None),
            b_key: Mutex::new(0xb1),
        })
    }

    fn state(&self, path: DevNum) -> PathState {
        self.paths.lock().unwrap()[&path]
    }

    fn update(&self, path: DevNum, change: impl FnOnce(&mut PathState)) {
        change(self.paths.lock().unwrap().get_mut(&path).unwrap());
    }

    /// The other host acts directly on its first nexus (its own unit attentions
    /// consumed: they are not what is tested).
    fn other_does(&self, lu: &mut Device, what: OtherCmd) -> bool {
        let b = nexus_of(B[0]);
        let b_key = *self.b_key.lock().unwrap();
        let mut commands = Vec::new();
        let list = |rk: u64, sak: u64| build::basic_list(rk, sak, build::Flags::default(), &[]);
        match what {
            OtherCmd::PreemptA => {
                let mut keys: Vec<u64> = A.iter().filter_map(|p| lu.key_of(*p)).collect();
                keys.sort_unstable();
                keys.dedup();
                for key in keys {
                    if key != b_key {
                        commands.push((PrOutAction::Preempt, WE_RO, list(b_key, key)));
                    }
                }
            }
            OtherCmd::Clear => commands.push((PrOutAction::Clear, 0, list(b_key, 0))),
            OtherCmd::Reserve => commands.push((PrOutAction::Reserve, WE, list(b_key, 0))),
            OtherCmd::Release => commands.push((PrOutAction::Release, WE, list(b_key, 0))),
            OtherCmd::Register => {
                commands.push((PrOutAction::RegisterAndIgnoreExistingKey, 0, list(0, b_key)))
            }
        }
        let mut all_good = !commands.is_empty();
        for (action, rtype, list) in commands {
            let cdb = build::pr_out(action, rtype, list.len() as u32);
            lu.attention.remove(&b);
            all_good &= matches!(lu.execute(&b, &cdb, &list), Outcome::Good(_));
        }
        lu.attention.remove(&b);
        all_good
    }
}

/// The fake system: both maps, their paths' states, the device behind them.
#[derive(Debug, Clone)]
struct Fake(Arc<World>);

/// One map's paths in the fake.
#[derive(Debug)]
struct FakePaths(Arc<World>);

impl System for Fake {
    type Paths = FakePaths;

    fn is_available(&self) -> bool {
        true
    }

    fn is_map(&self, dev: DevNum) -> bool {
        dev == MAP_A || dev == MAP_B
    }

    fn paths(&self, dev: DevNum) -> Result<MapPaths, LookError> {
        let members: &[DevNum] = if dev == MAP_A { &A } else { &B };
        let states = self.0.paths.lock().unwrap();
        Ok(MapPaths {
            paths: members
                .iter()
                .filter(|p| states[*p].in_table)
                .map(|&p| MapPath {
                    dev: p,
                    usable: states[&p].usable,
                    group: 0,
                    fail_count: states[&p].fail_count,
                })
                .collect(),
        })
    }

    fn name(&self, dev: DevNum) -> String {
        if dev == MAP_A { "mpatha" } else { "mpathb" }.to_owned()
    }

    fn open(&self, _dev: DevNum) -> FakePaths {
        FakePaths(Arc::clone(&self.0))
    }
}

fn to_answer(outcome: Outcome) -> Answer {
    match outcome {
        Outcome::Good(data) => Answer::good(data),
        Outcome::ReservationConflict => Answer::plain(Status::RESERVATION_CONFLICT),
        Outcome::CheckCondition(sense) => Answer::check_condition(sense),
    }
}

impl PathIo for FakePaths {
    fn send(&self, path: DevNum, cdb: &[u8], data_out: &[u8]) -> PathReply {
        let world = &self.0;
        let lost = |status| PathReply {
            answer: Answer::check_condition(Sense::I_T_NEXUS_LOSS),
            fault: Some(Fault::HostStatus(status)),
        };
        let state = world.state(path);
        if !state.in_table {
            return PathReply {
                answer: Answer::check_condition(Sense::LUN_COMM_FAILURE),
                fault: Some(Fault::Errno(libc::ENODEV)),
            };
        }
        if !state.up {
            return lost(host::DID_NO_CONNECT);
        }
        let armed = state.armed.map(|(armed, _)| armed);
        if armed.is_some() {
            world.update(path, |s| {
                if let Some((armed, left)) = s.armed {
                    s.armed = (left > 1).then_some((armed, left - 1));
                }
            });
        }
        match armed {
            Some(Armed::BeforeDelivery) => return lost(host::DID_NO_CONNECT),
            Some(Armed::LostOnTheWay) => return lost(host::DID_TIME_OUT),
            _ => {}
        }
        let mut lu = world.lu.lock().unwrap();
        let fire = {
            let mut interleave = world.interleave.lock().unwrap();
            match interleave.as_mut() {
                Some((0, what)) => {
                    let what = *what;
                    *interleave = None;
                    Some(what)
                }
                Some((n, _)) => {
                    *n -= 1;
                    None
                }
                None => None,
            }
        };
        if let Some(what) = fire {
            let good = world.other_does(&mut lu, what);
            lu.interleaved = Some((what, good));
        }
        let outcome = lu.execute(&nexus_of(path), cdb, data_out);
        if armed == Some(Armed::AfterExecution) {
            return lost(host::DID_TIME_OUT);
        }
        if A.contains(&path) {
            lu.from_a += 1;
        }
        PathReply {
            answer: to_answer(outcome),
            fault: None,
        }
    }

    fn identity(&self, path: DevNum) -> Option<NexusId> {
        let nexus = nexus_of(path);
        Some(NexusId {
            initiator: nexus.initiator,
            target_port: Some(nexus.target_port),
        })
    }
}

/// A guest command on host A.
#[derive(Debug, Clone, Copy)]
enum GuestCmd {
    /// REGISTER with the guest's key (or a wrong one) to a new key.
    Register {
        wrong_rk: bool,
        sak: u64,
    },
    /// REGISTER AND IGNORE EXISTING KEY.
    Ignore {
        sak: u64,
    },
    /// REGISTER to 0.
    Unregister,
    Reserve {
        rtype: u8,
    },
    Release {
        rtype: u8,
    },
    Clear,
    /// PREEMPT of the other host's key.
    PreemptOther,
    ReadKeys,
    ReadFullStatus,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Guest(GuestCmd),
    /// The other host, through its own map and service.
    Other(OtherCmd),
    Arm {
        path: usize,
        armed: Armed,
        times: u32,
    },
    /// dm-multipath fails the path (its transport is down).
    Fail {
        path: usize,
    },
    /// The transport is back and dm-multipath reinstates the path.
    Reinstate {
        path: usize,
    },
    /// Failed and reinstated between two looks.
    Flap {
        path: usize,
    },
    /// The path leaves the table (and its device goes away), or comes back.
    Vanish {
        path: usize,
    },
    Return {
        path: usize,
    },
    /// A uevent about A's map: the service looks.
    Look,
    /// A's helper restarts (a new service, no memory), then looks.
    Restart,
    /// Before the `after`-th device command of `step`, the other host does `what`
    /// directly on the device.
    Interleaved {
        after: u32,
        what: OtherCmd,
        step: Inner,
    },
    /// QEMU's migrate-pr from A to B: B's guest REGISTER (0, K) then PREEMPT (K, K).
    MigrateToOther,
    /// The same on host A itself (cpr-transfer live update): optionally through a
    /// restarted helper.
    MigrateOnSameHost {
        restart: bool,
    },
}

/// The steps an interleaved action may interrupt (not the guest's registrations,
/// whose order against a concurrent preemption is the guest's business).
#[derive(Debug, Clone, Copy)]
enum Inner {
    Look,
    Restart,
    Reinstate { path: usize },
    Flap { path: usize },
    Release { rtype: u8 },
    Reserve { rtype: u8 },
    ReadKeys,
}

/// The harness: both services, the guest's own idea of its key, and the model.
struct Harness {
    world: Arc<World>,
    a: Multipath<Fake>,
    b: Multipath<Fake>,
    /// The key A's guest believes it registered.
    guest_key: Option<u64>,
    /// A was preempted or cleared and its guest has not registered since.
    fenced: bool,
    /// The reservation type A's guest holds, if any (for migrate-pr).
    guest_type: Option<u8>,
    log: Vec<String>,
    /// The key the guest's registration in this step asked for (0: unregister).
    registered_to: Option<u64>,
}

fn rk_sak(rk: u64, sak: u64) -> Vec<u8> {
    build::basic_list(rk, sak, build::Flags::default(), &[])
}

fn command(action: PrOutAction, rtype: u8, list: Vec<u8>) -> ([u8; 10], Vec<u8>) {
    (build::pr_out(action, rtype, list.len() as u32), list)
}

impl Harness {
    fn new() -> Self {
        let world = World::new();
        let a = Multipath::over(Fake(Arc::clone(&world)));
        let b = Multipath::over(Fake(Arc::clone(&world)));
        let harness = Self {
            world,
            a,
            b,
            guest_key: None,
            fenced: false,
            guest_type: None,
            log: Vec::new(),
            registered_to: None,
        };
        let (cdb, list) = command(
            PrOutAction::RegisterAndIgnoreExistingKey,
            0,
            rk_sak(0, 0xb1),
        );
        assert_eq!(harness.on_b(&cdb, &list).status, Status::GOOD);
        harness
    }

    fn on_a(&self, cdb: &[u8], data: &[u8]) -> Answer {
        self.a.execute(MAP_A.rdev(), cdb, data)
    }

    fn on_b(&self, cdb: &[u8], data: &[u8]) -> Answer {
        self.b.execute(MAP_B.rdev(), cdb, data)
    }

    fn lu(&self) -> std::sync::MutexGuard<'_, Device> {
        self.world.lu.lock().unwrap()
    }

    fn a_keys(&self) -> Vec<Option<u64>> {
        let lu = self.lu();
        A.iter().map(|p| lu.key_of(*p)).collect()
    }

    fn usable_a(&self) -> Vec<DevNum> {
        A.iter()
            .copied()
            .filter(|p| {
                let s = self.world.state(*p);
                s.in_table && s.usable
            })
            .collect()
    }

    fn executions(&self) -> usize {
        self.lu().executed.len()
    }

    /// Runs one step and checks the invariants after it.
    fn step(&mut self, step: Step) -> Result<(), String> {
        self.log.push(format!("{step:?}"));
        let mark = self.executions();
        self.registered_to = None;
        self.lu().interleaved = None;
        // The helper learns of another host's actions from the device, at its next
        // command: the remembered key is checked after steps where it sent one.
        let reached = self.lu().from_a;
        let a_commands = match step {
            Step::Guest(_) => true,
            Step::Interleaved { step, .. } => matches!(
                step,
                Inner::Release { .. } | Inner::Reserve { .. } | Inner::ReadKeys
            ),
            Step::MigrateOnSameHost { .. } => {
                self.guest_key.is_some() && self.a_reservation().is_some() && !self.fenced
            }
            _ => false,
        };
        match step {
            Step::Guest(cmd) => self.guest(cmd, mark)?,
            Step::Other(what) => self.other(what),
            Step::Arm { path, armed, times } => {
                self.world
                    .update(A[path], |s| s.armed = Some((armed, times)));
            }
            Step::Fail { path } => self.world.update(A[path], |s| {
                if s.usable {
                    s.usable = false;
                    s.fail_count += 1;
                }
                s.up = false;
            }),
            Step::Reinstate { path } => self.world.update(A[path], |s| {
                s.up = true;
                s.usable = true;
            }),
            Step::Flap { path } => self.world.update(A[path], |s| {
                s.up = true;
                s.usable = true;
                s.fail_count += 1;
            }),
            Step::Vanish { path } => self.world.update(A[path], |s| s.in_table = false),
            Step::Return { path } => self.world.update(A[path], |s| {
                s.in_table = true;
                s.usable = true;
                s.up = true;
            }),
            Step::Look => self.look(),
            Step::Restart => {
                self.a = Multipath::over(Fake(Arc::clone(&self.world)));
                self.look();
            }
            Step::Interleaved { after, what, step } => {
                *self.world.interleave.lock().unwrap() = Some((after, what));
                let inner = match step {
                    Inner::Look => Step::Look,
                    Inner::Restart => Step::Restart,
                    Inner::Reinstate { path } => Step::Reinstate { path },
                    Inner::Flap { path } => Step::Flap { path },
                    Inner::Release { rtype } => Step::Guest(GuestCmd::Release { rtype }),
                    Inner::Reserve { rtype } => Step::Guest(GuestCmd::Reserve { rtype }),
                    Inner::ReadKeys => Step::Guest(GuestCmd::ReadKeys),
                };
                match inner {
                    Step::Guest(cmd) => self.guest(cmd, mark)?,
                    other => {
                        self.log.pop();
                        self.step(other)?;
                        self.log.push(format!("{step:?}"));
                    }
                }
                // Path events are looked at right away here (a uevent).
                if matches!(step, Inner::Reinstate { .. } | Inner::Flap { .. }) {
                    self.look();
                }
                if self.world.interleave.lock().unwrap().take().is_none() {
                    let fired = self.lu().interleaved;
                    if let Some((what, good)) = fired {
                        self.after_other(what, good);
                    }
                }
            }
            Step::MigrateToOther => self.migrate_to_other(),
            Step::MigrateOnSameHost { restart } => self.migrate_on_same_host(restart, mark)?,
        }
        // (A command that reached no path told the helper nothing.)
        let a_commands = a_commands && self.lu().from_a > reached;
        self.check(mark, a_commands)
    }

    fn look(&mut self) {
        // A uevent reaches a service that has seen the map; a fresh one looks at its
        // first command.
        if self.a.remembered(MAP_A.rdev()).is_none() {
            let _ = self.on_a(&build::pr_in(scsi::pr::PrInAction::ReadKeys, 1024), &[]);
        } else {
            self.a.look_now(MAP_A.rdev());
        }
    }

    /// What the other host's action means for A.
    fn after_other(&mut self, what: OtherCmd, good: bool) {
        if good && matches!(what, OtherCmd::PreemptA | OtherCmd::Clear) {
            self.fenced = true;
            if self.a_keys().iter().all(Option::is_none) {
                self.guest_type = None;
            }
        }
        if good && what == OtherCmd::Clear {
            *self.world.b_key.lock().unwrap() = 0xb1;
            // B registers again (its guest's decision), so that it can act later.
            let (cdb, list) = command(
                PrOutAction::RegisterAndIgnoreExistingKey,
                0,
                rk_sak(0, 0xb1),
            );
            let _ = self.on_b(&cdb, &list);
        }
    }

    fn other(&mut self, what: OtherCmd) {
        let b_key = *self.world.b_key.lock().unwrap();
        let good = match what {
            OtherCmd::PreemptA => {
                let mut keys: Vec<u64> = self.a_keys().into_iter().flatten().collect();
                keys.sort_unstable();
                keys.dedup();
                let mut good = !keys.is_empty();
                // A key B holds too (A's guest came back with the key migrate-pr moved
                // to B) is preempted as (K, K): every other nexus with K loses it.
                for key in keys {
                    let (cdb, list) = command(PrOutAction::Preempt, WE_RO, rk_sak(b_key, key));
                    good &= self.on_b(&cdb, &list).status == Status::GOOD;
                }
                good
            }
            OtherCmd::Clear => {
                let (cdb, list) = command(PrOutAction::Clear, 0, rk_sak(b_key, 0));
                self.on_b(&cdb, &list).status == Status::GOOD
            }
            OtherCmd::Reserve => {
                let (cdb, list) = command(PrOutAction::Reserve, WE, rk_sak(b_key, 0));
                self.on_b(&cdb, &list).status == Status::GOOD
            }
            OtherCmd::Release => {
                let (cdb, list) = command(PrOutAction::Release, WE, rk_sak(b_key, 0));
                self.on_b(&cdb, &list).status == Status::GOOD
            }
            OtherCmd::Register => {
                let (cdb, list) = command(
                    PrOutAction::RegisterAndIgnoreExistingKey,
                    0,
                    rk_sak(0, b_key),
                );
                self.on_b(&cdb, &list).status == Status::GOOD
            }
        };
        self.after_other(what, good);
    }

    /// The type of the reservation A's nexuses hold, if any.
    fn a_reservation(&self) -> Option<u8> {
        let lu = self.lu();
        let r = lu.lu.reservation()?;
        A.iter()
            .any(|p| lu.lu.is_holder(&nexus_of(*p)))
            .then(|| r.rtype.code())
    }

    fn migrate_to_other(&mut self) {
        // QEMU's migrate-pr moves a reservation: without one there is nothing to do.
        let (Some(key), Some(rtype)) = (self.guest_key, self.a_reservation()) else {
            return;
        };
        let (cdb, list) = command(PrOutAction::Register, 0, rk_sak(0, key));
        if self.on_b(&cdb, &list).status != Status::GOOD {
            return;
        }
        let (cdb, list) = command(PrOutAction::Preempt, rtype, rk_sak(key, key));
        if self.on_b(&cdb, &list).status == Status::GOOD {
            // The guest now runs on B with K; A's nexuses lost K.
            *self.world.b_key.lock().unwrap() = key;
            self.fenced = true;
            self.guest_key = None;
            self.guest_type = None;
        }
    }

    fn migrate_on_same_host(&mut self, restart: bool, mark: usize) -> Result<(), String> {
        let Some(key) = self.guest_key else {
            return Ok(());
        };
        if self.fenced {
            return Ok(());
        }
        // QEMU reads the reservation on the source and moves it only if there is one.
        let Some(rtype) = self.a_reservation() else {
            return Ok(());
        };
        if restart {
            self.a = Multipath::over(Fake(Arc::clone(&self.world)));
        }
        let (cdb, list) = command(PrOutAction::Register, 0, rk_sak(0, key));
        let answer = self.on_a(&cdb, &list);
        self.check_register(Some(key), &answer)?;
        if answer.status != Status::GOOD {
            // The destination's migration fails: the source QEMU keeps running.
            return Ok(());
        }
        let (cdb, list) = command(PrOutAction::Preempt, rtype, rk_sak(key, key));
        let answer = self.on_a(&cdb, &list);
        // Under an all-registrants reservation PREEMPT (K, K) removes every
        // registration with K, the issuer's too (SPC-4): only the others are checked.
        if answer.status == Status::GOOD && rtype != EA_AR {
            self.guest_type = Some(rtype);
            let lu = self.lu();
            let holder = lu.lu.reservation().map(|r| r.holder.clone());
            let ok = holder.is_some_and(|h| A.iter().any(|p| nexus_of(*p) == h))
                && lu
                    .lu
                    .registrations()
                    .iter()
                    .all(|r| r.key != key || A.iter().any(|p| nexus_of(*p) == r.nexus));
            if !ok {
                return Err(format!("same-host PREEMPT (K, K) GOOD but {:?}", lu.lu));
            }
        }
        let _ = mark;
        Ok(())
    }

    fn guest(&mut self, cmd: GuestCmd, mark: usize) -> Result<(), String> {
        let key = self.guest_key.unwrap_or(0);
        match cmd {
            GuestCmd::Register { wrong_rk, sak } => {
                let rk = if wrong_rk { key ^ 0x0f00 } else { key };
                let (cdb, list) = command(PrOutAction::Register, 0, rk_sak(rk, sak));
                let answer = self.on_a(&cdb, &list);
                self.after_register(sak, &answer)?;
            }
            GuestCmd::Ignore { sak } => {
                let (cdb, list) =
                    command(PrOutAction::RegisterAndIgnoreExistingKey, 0, rk_sak(0, sak));
                let answer = self.on_a(&cdb, &list);
                self.after_register(sak, &answer)?;
            }
            GuestCmd::Unregister => {
                let (cdb, list) = command(PrOutAction::Register, 0, rk_sak(key, 0));
                let answer = self.on_a(&cdb, &list);
                self.after_register(0, &answer)?;
            }
            GuestCmd::Reserve { rtype } => {
                let (cdb, list) = command(PrOutAction::Reserve, rtype, rk_sak(key, 0));
                let answer = self.on_a(&cdb, &list);
                self.once(&cdb, &list, mark)?;
                if answer.status == Status::GOOD {
                    self.guest_type = Some(rtype);
                    if !self.interleaved() {
                        let lu = self.lu();
                        let r = lu.lu.reservation();
                        let ok = r.is_some_and(|r| {
                            r.rtype.code() == rtype
                                && A.iter().any(|p| lu.lu.is_holder(&nexus_of(*p)))
                        });
                        if !ok {
                            return Err(format!("RESERVE GOOD but reservation {r:?}"));
                        }
                    }
                }
            }
            GuestCmd::Release { rtype } => {
                let (cdb, list) = command(PrOutAction::Release, rtype, rk_sak(key, 0));
                let answer = self.on_a(&cdb, &list);
                self.once(&cdb, &list, mark)?;
                if answer.status == Status::GOOD {
                    self.guest_type = None;
                    let lu = self.lu();
                    if A.iter().any(|p| lu.lu.is_holder(&nexus_of(*p))) {
                        return Err(format!(
                            "RELEASE GOOD but A still holds {:?}",
                            lu.lu.reservation()
                        ));
                    }
                }
            }
            GuestCmd::Clear => {
                let (cdb, list) = command(PrOutAction::Clear, 0, rk_sak(key, 0));
                let answer = self.on_a(&cdb, &list);
                self.once(&cdb, &list, mark)?;
                if answer.status == Status::GOOD {
                    self.guest_key = None;
                    self.guest_type = None;
                    let lu = self.lu();
                    if !lu.lu.registrations().is_empty() {
                        return Err("CLEAR GOOD but registrations remain".into());
                    }
                    drop(lu);
                    self.after_other(OtherCmd::Clear, false);
                    *self.world.b_key.lock().unwrap() = 0xb1;
                    let (cdb, list) = command(
                        PrOutAction::RegisterAndIgnoreExistingKey,
                        0,
                        rk_sak(0, 0xb1),
                    );
                    let _ = self.on_b(&cdb, &list);
                }
            }
            GuestCmd::PreemptOther => {
                let b_key = *self.world.b_key.lock().unwrap();
                if b_key == key {
                    return Ok(());
                }
                let (cdb, list) = command(PrOutAction::Preempt, WE_RO, rk_sak(key, b_key));
                let answer = self.on_a(&cdb, &list);
                self.once(&cdb, &list, mark)?;
                if answer.status == Status::GOOD {
                    let lu = self.lu();
                    // It takes the reservation only if the preempted key held one.
                    let held = A.iter().any(|p| lu.lu.is_holder(&nexus_of(*p)));
                    drop(lu);
                    if held {
                        self.guest_type = Some(WE_RO);
                    }
                    let lu = self.lu();
                    if lu.lu.registrations().iter().any(|r| r.key == b_key) {
                        return Err("PREEMPT GOOD but the preempted key remains".into());
                    }
                    drop(lu);
                    // B's guest registers again (so that the other host can act later).
                    let (cdb, list) = command(
                        PrOutAction::RegisterAndIgnoreExistingKey,
                        0,
                        rk_sak(0, 0xb1),
                    );
                    *self.world.b_key.lock().unwrap() = 0xb1;
                    let _ = self.on_b(&cdb, &list);
                }
            }
            GuestCmd::ReadKeys => {
                let _ = self.on_a(&build::pr_in(scsi::pr::PrInAction::ReadKeys, 1024), &[]);
            }
            GuestCmd::ReadFullStatus => {
                let _ = self.on_a(
                    &build::pr_in(scsi::pr::PrInAction::ReadFullStatus, 4096),
                    &[],
                );
            }
        }
        Ok(())
    }

    fn interleaved(&self) -> bool {
        self.lu().interleaved.is_some()
    }

    fn after_register(&mut self, sak: u64, answer: &Answer) -> Result<(), String> {
        self.registered_to = Some(sak);
        self.check_register((sak != 0).then_some(sak), answer)?;
        // A registration the device did not refuse is the guest's decision to come
        // back even when a path it could not reach made the answer a failure.
        if answer.status != Status::GOOD
            && answer.status != Status::RESERVATION_CONFLICT
            && sak != 0
            && self.a_keys().contains(&Some(sak))
        {
            self.fenced = false;
        }
        if answer.status == Status::GOOD {
            self.guest_key = (sak != 0).then_some(sak);
            if sak != 0 {
                self.fenced = false;
            } else {
                self.guest_type = None;
            }
        }
        Ok(())
    }

    /// A GOOD registration holds on every usable path.
    fn check_register(&self, wanted: Option<u64>, answer: &Answer) -> Result<(), String> {
        if answer.status != Status::GOOD {
            return Ok(());
        }
        let lu = self.lu();
        for path in self.usable_a() {
            if lu.key_of(path) != wanted {
                return Err(format!(
                    "REGISTER to {wanted:x?} GOOD but {path} holds {:x?}",
                    lu.key_of(path)
                ));
            }
        }
        Ok(())
    }

    /// The guest's one-path command executed at most once on the device.
    fn once(&self, cdb: &[u8], list: &[u8], mark: usize) -> Result<(), String> {
        let lu = self.lu();
        let times = lu.executed[mark..]
            .iter()
            .filter(|(_, c, l)| c == cdb && l == list)
            .count();
        if times > 1 {
            return Err(format!(
                "{} executed {times} times",
                crate::engine::command_name(cdb)
            ));
        }
        Ok(())
    }

    fn check(&self, mark: usize, memory: bool) -> Result<(), String> {
        let keys = self.a_keys();
        if self.fenced && keys.iter().any(Option::is_some) {
            return Err(format!("fenced host A holds registrations {keys:x?}"));
        }
        // No REGISTER executed twice on one nexus. A second GOOD REGISTER of the
        // same key change needs the nexus back on the old key in between. When the
        // guest's own registration put it back, the second one is the rollback of
        // that registration (the first was a bring-up), not a re-sent command; any
        // other way back (the helper flapping a key) is a double execution.
        let lu = self.lu();
        let executed = &lu.executed[mark..];
        for (at, (nexus, cdb, list)) in executed.iter().enumerate() {
            let changes_key = cdb.get(1).map(|b| b & 0x1f) == Some(PrOutAction::Register.code())
                && A.iter().any(|p| nexus_of(*p) == *nexus)
                && list.get(0..8) != Some(&[0; 8][..])
                && list.get(0..8) != list.get(8..16);
            if !changes_key {
                continue;
            }
            let earlier = executed[..at]
                .iter()
                .rposition(|e| e.0 == *nexus && e.1 == *cdb && e.2 == *list);
            let Some(earlier) = earlier else { continue };
            let guests_key = self.registered_to.map(u64::to_be_bytes);
            let put_back = executed[earlier + 1..at].iter().any(|(n, _, l)| {
                n == nexus
                    && l.get(8..16) == list.get(0..8)
                    && guests_key.as_ref().map(|k| &k[..]) == l.get(8..16)
            });
            if !put_back {
                return Err(format!("REGISTER executed twice on {nexus:?}"));
            }
        }
        drop(lu);
        if !memory {
            return Ok(());
        }
        if let Some((key, owed)) = self.a.remembered(MAP_A.rdev()) {
            let usable = self.usable_a();
            let settled: Vec<usize> = (0..A.len())
                .filter(|&i| usable.contains(&A[i]) && !owed.contains(&A[i]))
                .collect();
            match key {
                HostKey::Registered(k) => {
                    if !keys.contains(&Some(k.key)) {
                        return Err(format!(
                            "remembers 0x{:x} that no nexus of A holds ({keys:x?})",
                            k.key
                        ));
                    }
                    for i in settled {
                        if keys[i] != Some(k.key) {
                            return Err(format!(
                                "remembers 0x{:x}, {} holds {:x?} and is not owed",
                                k.key, A[i], keys[i]
                            ));
                        }
                    }
                }
                HostKey::Unregistered => {
                    for i in settled {
                        if keys[i].is_some() {
                            return Err(format!(
                                "remembers no key, {} holds {:x?} and is not owed",
                                A[i], keys[i]
                            ));
                        }
                    }
                }
                HostKey::Unknown => {}
            }
        }
        Ok(())
    }

    /// Faults stop and every path is back: after two looks nothing is owed and every
    /// nexus of A holds the remembered key (or none).
    fn settle(&mut self) -> Result<(), String> {
        self.log.push("settle".into());
        *self.world.interleave.lock().unwrap() = None;
        for path in A {
            self.world.update(path, |s| {
                s.armed = None;
                if !s.in_table || !s.usable {
                    s.fail_count += 1;
                }
                s.in_table = true;
                s.usable = true;
                s.up = true;
            });
        }
        self.look();
        self.look();
        let _ = self.on_a(&build::pr_in(scsi::pr::PrInAction::ReadKeys, 1024), &[]);
        self.check(self.executions(), true)?;
        let keys = self.a_keys();
        if let Some((key, owed)) = self.a.remembered(MAP_A.rdev()) {
            if key != HostKey::Unknown && !owed.is_empty() {
                return Err(format!("still owed after faults stopped: {owed:?}"));
            }
            let wanted = match key {
                HostKey::Registered(k) => Some(k.key),
                HostKey::Unregistered => None,
                HostKey::Unknown => return Ok(()),
            };
            if keys.iter().any(|k| *k != wanted) {
                return Err(format!(
                    "settled with {key:?} but A's nexuses hold {keys:x?}"
                ));
            }
        }
        Ok(())
    }
}

fn run_steps(steps: &[Step]) -> Result<(), String> {
    let mut harness = Harness::new();
    for &step in steps {
        if let Err(error) = harness.step(step) {
            return Err(format!("{error}\nsteps: {:#?}", harness.log));
        }
    }
    harness
        .settle()
        .map_err(|error| format!("{error}\nsteps: {:#?}", harness.log))
}

fn sak() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0xa1u64), Just(0xa2), Just(0xa3)]
}

fn rtype() -> impl Strategy<Value = u8> {
    prop_oneof![Just(WE_RO), Just(WE), Just(EA_AR)]
}

fn guest_cmd() -> impl Strategy<Value = GuestCmd> {
    prop_oneof![
        (any::<bool>(), sak()).prop_map(|(wrong_rk, sak)| GuestCmd::Register { wrong_rk, sak }),
        sak().prop_map(|sak| GuestCmd::Ignore { sak }),
        Just(GuestCmd::Unregister),
        rtype().prop_map(|rtype| GuestCmd::Reserve { rtype }),
        rtype().prop_map(|rtype| GuestCmd::Release { rtype }),
        Just(GuestCmd::Clear),
        Just(GuestCmd::PreemptOther),
        Just(GuestCmd::ReadKeys),
        Just(GuestCmd::ReadFullStatus),
    ]
}

fn other_cmd() -> impl Strategy<Value = OtherCmd> {
    prop_oneof![
        3 => Just(OtherCmd::PreemptA),
        1 => Just(OtherCmd::Clear),
        1 => Just(OtherCmd::Reserve),
        1 => Just(OtherCmd::Release),
        1 => Just(OtherCmd::Register),
    ]
}

fn inner() -> impl Strategy<Value = Inner> {
    let path = 0..A.len();
    prop_oneof![
        Just(Inner::Look),
        Just(Inner::Restart),
        path.clone().prop_map(|path| Inner::Reinstate { path }),
        path.prop_map(|path| Inner::Flap { path }),
        rtype().prop_map(|rtype| Inner::Release { rtype }),
        rtype().prop_map(|rtype| Inner::Reserve { rtype }),
        Just(Inner::ReadKeys),
    ]
}

fn armed() -> impl Strategy<Value = Armed> {
    prop_oneof![
        Just(Armed::BeforeDelivery),
        Just(Armed::AfterExecution),
        Just(Armed::LostOnTheWay),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let path = 0..A.len();
    prop_oneof![
        8 => guest_cmd().prop_map(Step::Guest),
        3 => other_cmd().prop_map(Step::Other),
        3 => (path.clone(), armed(), 1..3u32).prop_map(|(path, armed, times)| Step::Arm { path, armed, times }),
        2 => path.clone().prop_map(|path| Step::Fail { path }),
        2 => path.clone().prop_map(|path| Step::Reinstate { path }),
        2 => path.clone().prop_map(|path| Step::Flap { path }),
        1 => path.clone().prop_map(|path| Step::Vanish { path }),
        1 => path.prop_map(|path| Step::Return { path }),
        2 => Just(Step::Look),
        1 => Just(Step::Restart),
        3 => (0..6u32, other_cmd(), inner()).prop_map(|(after, what, step)| Step::Interleaved { after, what, step }),
        1 => Just(Step::MigrateToOther),
        1 => any::<bool>().prop_map(|restart| Step::MigrateOnSameHost { restart }),
    ]
}

fn cases() -> u32 {
    std::env::var("PR_FAULT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500)
}

/// The seed CI runs (the same cases every run, so a red run is a change's doing).
const DEFAULT_SEED: u64 = 18;

/// `PR_FAULT_SEED`: unset, [`DEFAULT_SEED`]; a number, that seed; `random`, a fresh
/// one. The seed in use is printed, and named in a failure, to run it again.
fn seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| {
        let seed = match std::env::var("PR_FAULT_SEED") {
            Err(_) => DEFAULT_SEED,
            Ok(v) if v == "random" => {
                use std::hash::{BuildHasher, Hasher};
                let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
                hasher.write_u128(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos()),
                );
                hasher.finish()
            }
            Ok(v) => v.parse().unwrap_or_else(|_| {
                panic!("PR_FAULT_SEED={v:?}: expected a number (u64) or \"random\"")
            }),
        };
        eprintln!("fault test: PR_FAULT_SEED={seed}, {} cases", cases());
        seed
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed()),
        ..ProptestConfig::default()
    })]

    #[test]
    fn fencing_holds_under_random_faults(steps in proptest::collection::vec(step(), 1..40)) {
        if let Err(error) = run_steps(&steps) {
            return Err(TestCaseError::fail(format!(
                "{error}\nseed: PR_FAULT_SEED={} PR_FAULT_CASES={}",
                seed(),
                cases()
            )));
        }
    }
}

// Regression cases: the bugs and shrunk failures of the random test.

fn register_reserve() -> Vec<Step> {
    vec![
        Step::Guest(GuestCmd::Register {
            wrong_rk: false,
            sak: 0xa1,
        }),
        Step::Guest(GuestCmd::Reserve { rtype: WE_RO }),
    ]
}

#[test]
fn a_path_flap_after_migration_away_does_not_unfence() {
    let mut steps = register_reserve();
    steps.extend([
        Step::MigrateToOther,
        Step::Fail { path: 2 },
        Step::Look,
        Step::Reinstate { path: 2 },
        Step::Look,
    ]);
    run_steps(&steps).unwrap();
}

#[test]
fn release_after_the_holders_path_failed_releases() {
    let mut steps = register_reserve();
    steps.extend([
        Step::Fail { path: 0 },
        Step::Guest(GuestCmd::Release { rtype: WE_RO }),
    ]);
    run_steps(&steps).unwrap();
    let mut harness = Harness::new();
    for step in register_reserve() {
        harness.step(step).unwrap();
    }
    harness.step(Step::Fail { path: 0 }).unwrap();
    let (cdb, list) = command(PrOutAction::Release, WE_RO, rk_sak(0xa1, 0));
    assert_eq!(harness.on_a(&cdb, &list).status, Status::GOOD);
    assert!(harness.lu().lu.reservation().is_none());
}

#[test]
fn a_partial_register_is_rolled_back() {
    let steps = vec![
        Step::Guest(GuestCmd::Register {
            wrong_rk: false,
            sak: 0xa1,
        }),
        Step::Arm {
            path: 2,
            armed: Armed::LostOnTheWay,
            times: 2,
        },
        Step::Guest(GuestCmd::Register {
            wrong_rk: false,
            sak: 0xa2,
        }),
        Step::Other(OtherCmd::PreemptA),
        Step::Flap { path: 0 },
        Step::Look,
    ];
    run_steps(&steps).unwrap();
}

#[test]
fn a_preemption_between_return_and_reregistration_stays() {
    for after in 0..4 {
        let steps = vec![
            Step::Guest(GuestCmd::Register {
                wrong_rk: false,
                sak: 0xa1,
            }),
            Step::Fail { path: 1 },
            Step::Look,
            Step::Interleaved {
                after,
                what: OtherCmd::PreemptA,
                step: Inner::Reinstate { path: 1 },
            },
        ];
        run_steps(&steps).unwrap();
    }
}

#[test]
fn restart_then_flap_brings_the_path_back_or_not() {
    let steps = vec![
        Step::Guest(GuestCmd::Register {
            wrong_rk: false,
            sak: 0xa1,
        }),
        Step::Fail { path: 1 },
        Step::Look,
        Step::Restart,
        Step::Reinstate { path: 1 },
        Step::Look,
    ];
    run_steps(&steps).unwrap();
    let mut harness = Harness::new();
    for step in &steps {
        harness.step(*step).unwrap();
    }
    assert_eq!(harness.a_keys(), [Some(0xa1); 3]);
    // Preempted while the path was away and the helper restarted: it stays out.
    let steps = vec![
        Step::Guest(GuestCmd::Register {
            wrong_rk: false,
            sak: 0xa1,
        }),
        Step::Fail { path: 1 },
        Step::Look,
        Step::Restart,
        Step::Other(OtherCmd::PreemptA),
        Step::Reinstate { path: 1 },
        Step::Look,
    ];
    let mut harness = Harness::new();
    for step in &steps {
        harness.step(*step).unwrap();
    }
    assert_eq!(harness.a_keys(), [None; 3]);
}

#[test]
fn same_host_migrate_pr_is_good() {
    for restart in [false, true] {
        let mut harness = Harness::new();
        for step in register_reserve() {
            harness.step(step).unwrap();
        }
        let (cdb, list) = command(PrOutAction::Register, 0, rk_sak(0, 0xa1));
        if restart {
            harness.a = Multipath::over(Fake(Arc::clone(&harness.world)));
        }
        assert_eq!(harness.on_a(&cdb, &list).status, Status::GOOD);
        let (cdb, list) = command(PrOutAction::Preempt, WE_RO, rk_sak(0xa1, 0xa1));
        assert_eq!(harness.on_a(&cdb, &list).status, Status::GOOD);
        assert_eq!(harness.a_keys(), [Some(0xa1); 3]);
        harness.check(0, true).unwrap();
    }
}

#[test]
fn a_command_that_may_have_executed_is_not_sent_again() {
    let mut steps = vec![Step::Guest(GuestCmd::Register {
        wrong_rk: false,
        sak: 0xa1,
    })];
    steps.extend([
        Step::Arm {
            path: 0,
            armed: Armed::AfterExecution,
            times: 1,
        },
        Step::Guest(GuestCmd::Reserve { rtype: WE_RO }),
        Step::Arm {
            path: 0,
            armed: Armed::AfterExecution,
            times: 1,
        },
        Step::Guest(GuestCmd::PreemptOther),
        Step::Arm {
            path: 0,
            armed: Armed::LostOnTheWay,
            times: 1,
        },
        Step::Guest(GuestCmd::Release { rtype: WE_RO }),
    ]);
    run_steps(&steps).unwrap();
}

#[test]
fn the_key_is_checked_when_the_last_connection_closes() {
    let mut harness = Harness::new();
    let first = harness.a.attach(MAP_A.rdev());
    let second = harness.a.attach(MAP_A.rdev());
    harness
        .step(Step::Guest(GuestCmd::Register {
            wrong_rk: false,
            sak: 0xa1,
        }))
        .unwrap();
    harness.step(Step::Other(OtherCmd::PreemptA)).unwrap();
    drop(first);
    assert!(matches!(
        harness.a.remembered(MAP_A.rdev()),
        Some((HostKey::Registered(_), _))
    ));
    // The guest migrated away and was preempted: once its last connection closes,
    // the map's worker finds the key gone and forgets it, with no command sent.
    drop(second);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while harness.a.remembered(MAP_A.rdev()).map(|r| r.0) != Some(HostKey::Unregistered) {
        assert!(std::time::Instant::now() < deadline, "key not forgotten");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn register_and_move_with_unreg_leaves_the_whole_host_unregistered() {
    let mut harness = Harness::new();
    for step in register_reserve() {
        harness.step(step).unwrap();
    }
    let b = nexus_of(B[1]);
    let list = build::move_list(0xa1, 0xb9, true, false, b.target_port, &b.initiator);
    let cdb = build::pr_out(PrOutAction::RegisterAndMove, WE_RO, list.len() as u32);
    assert_eq!(harness.on_a(&cdb, &list).status, Status::GOOD);
    assert_eq!(harness.a_keys(), [None; 3]);
    assert!(harness.lu().lu.is_holder(&b));
    assert_eq!(
        harness.a.remembered(MAP_A.rdev()).map(|r| r.0),
        Some(HostKey::Unregistered)
    );
}

#[test]
fn spec_i_pt_and_all_tg_pt_registrations_reach_every_path() {
    let harness = Harness::new();
    let other = TransportId::Sas {
        address: 0x500140500000ff01,
    };
    let flags = build::Flags {
        spec_i_pt: true,
        ..build::Flags::default()
    };
    let list = build::basic_list(0, 0xa5, flags, std::slice::from_ref(&other));
    let cdb = build::pr_out(PrOutAction::Register, 0, list.len() as u32);
    assert_eq!(harness.on_a(&cdb, &list).status, Status::GOOD);
    assert_eq!(harness.a_keys(), [Some(0xa5); 3]);
    assert!(
        harness
            .lu()
            .lu
            .registrations()
            .iter()
            .any(|r| r.nexus.initiator == other && r.key == 0xa5)
    );
    // ALL_TG_PT: a01 through port 1 registers a01 on port 2 as well; that path's
    // REGISTER then conflicts and counts as done (its nexus holds the key).
    let harness = Harness::new();
    let flags = build::Flags {
        all_tg_pt: true,
        ..build::Flags::default()
    };
    let list = build::basic_list(0, 0xa6, flags, &[]);
    let cdb = build::pr_out(PrOutAction::Register, 0, list.len() as u32);
    assert_eq!(harness.on_a(&cdb, &list).status, Status::GOOD);
    assert_eq!(harness.a_keys(), [Some(0xa6); 3]);
    harness.check(0, true).unwrap();
}

/// Shrunk failures of the random test, each a bug it found: what it was, and the
/// steps.
const SHRUNK: &[(&str, &[Step])] = &[
    (
        "same host migration after a returned path",
        &[
            Step::Fail { path: 1 },
            Step::Guest(GuestCmd::Ignore { sak: 0xa2 }),
            Step::Arm {
                path: 1,
                armed: Armed::LostOnTheWay,
                times: 1,
            },
            Step::Guest(GuestCmd::Reserve { rtype: WE_RO }),
            Step::Reinstate { path: 1 },
            Step::Guest(GuestCmd::Register {
                wrong_rk: true,
                sak: 0xa2,
            }),
            Step::MigrateOnSameHost { restart: false },
        ],
    ),
    (
        "a lost answer then a preemption",
        &[
            Step::Fail { path: 1 },
            Step::Guest(GuestCmd::Ignore { sak: 0xa1 }),
            Step::Vanish { path: 2 },
            Step::Fail { path: 0 },
            Step::Return { path: 0 },
            Step::Arm {
                path: 0,
                armed: Armed::AfterExecution,
                times: 2,
            },
            Step::Other(OtherCmd::PreemptA),
            Step::Guest(GuestCmd::Reserve { rtype: WE_RO }),
        ],
    ),
    (
        "registration retried while paths fail",
        &[
            Step::Arm {
                path: 1,
                armed: Armed::BeforeDelivery,
                times: 2,
            },
            Step::Guest(GuestCmd::Register {
                wrong_rk: false,
                sak: 0xa1,
            }),
            Step::Fail { path: 1 },
            Step::Fail { path: 0 },
            Step::Guest(GuestCmd::Register {
                wrong_rk: false,
                sak: 0xa1,
            }),
            Step::Flap { path: 1 },
            Step::Fail { path: 2 },
            Step::Interleaved {
                after: 0,
                what: OtherCmd::PreemptA,
                step: Inner::Reserve { rtype: WE_RO },
            },
        ],
    ),
    (
        "a returning path whose answer was lost",
        &[
            Step::Fail { path: 1 },
            Step::Guest(GuestCmd::Ignore { sak: 0xa1 }),
            Step::Arm {
                path: 1,
                armed: Armed::AfterExecution,
                times: 1,
            },
            Step::Arm {
                path: 0,
                armed: Armed::LostOnTheWay,
                times: 1,
            },
            Step::Reinstate { path: 1 },
            Step::Fail { path: 2 },
            Step::Interleaved {
                after: 4,
                what: OtherCmd::PreemptA,
                step: Inner::Reserve { rtype: WE_RO },
            },
        ],
    ),
    (
        "a preemption while a restarted helper learns",
        &[
            Step::Guest(GuestCmd::Register {
                wrong_rk: false,
                sak: 0xa1,
            }),
            Step::Arm {
                path: 2,
                armed: Armed::LostOnTheWay,
                times: 1,
            },
            Step::Arm {
                path: 0,
                armed: Armed::AfterExecution,
                times: 1,
            },
            Step::Fail { path: 1 },
            Step::Interleaved {
                after: 3,
                what: OtherCmd::PreemptA,
                step: Inner::Restart,
            },
            Step::Guest(GuestCmd::ReadKeys),
        ],
    ),
    (
        "release while a gone paths nexus holds the reservation",
        &[
            Step::Guest(GuestCmd::Ignore { sak: 0xa2 }),
            Step::Guest(GuestCmd::Reserve { rtype: WE_RO }),
            Step::Vanish { path: 0 },
            Step::Guest(GuestCmd::Ignore { sak: 0xa1 }),
            Step::Interleaved {
                after: 2,
                what: OtherCmd::PreemptA,
                step: Inner::Release { rtype: WE_RO },
            },
            Step::Guest(GuestCmd::Release { rtype: WE_RO }),
        ],
    ),
    (
        "release when the registrations cannot be read first",
        &[
            Step::Guest(GuestCmd::Register {
                wrong_rk: false,
                sak: 0xa1,
            }),
            Step::Interleaved {
                after: 0,
                what: OtherCmd::Release,
                step: Inner::Reserve { rtype: WE_RO },
            },
            Step::Vanish { path: 0 },
            Step::Arm {
                path: 2,
                armed: Armed::BeforeDelivery,
                times: 1,
            },
            Step::Arm {
                path: 1,
                armed: Armed::BeforeDelivery,
                times: 1,
            },
            Step::Interleaved {
                after: 0,
                what: OtherCmd::Reserve,
                step: Inner::Release { rtype: WE_RO },
            },
        ],
    ),
    (
        "a failed preemption by the other host fences nothing",
        &[
            Step::Fail { path: 0 },
            Step::Guest(GuestCmd::Register {
                wrong_rk: false,
                sak: 0xa1,
            }),
            Step::Arm {
                path: 2,
                armed: Armed::AfterExecution,
                times: 2,
            },
            Step::Fail { path: 1 },
            Step::Guest(GuestCmd::PreemptOther),
            Step::Interleaved {
                after: 0,
                what: OtherCmd::PreemptA,
                step: Inner::Restart,
            },
        ],
    ),
    (
        "migration away after a gone path's nexus was re-registered",
        &[
            Step::Fail { path: 0 },
            Step::Guest(GuestCmd::Register {
                wrong_rk: false,
                sak: 0xa1,
            }),
            Step::Vanish { path: 1 },
            Step::Arm {
                path: 2,
                armed: Armed::AfterExecution,
                times: 2,
            },
            Step::Guest(GuestCmd::PreemptOther),
            Step::Guest(GuestCmd::Register {
                wrong_rk: false,
                sak: 0xa2,
            }),
            Step::Guest(GuestCmd::Reserve { rtype: WE_RO }),
            Step::MigrateToOther,
        ],
    ),
    (
        "release after a restart while a gone path's nexus holds the reservation",
        &[
            Step::Fail { path: 0 },
            Step::Guest(GuestCmd::Register {
                wrong_rk: false,
                sak: 0xa1,
            }),
            Step::Guest(GuestCmd::Reserve { rtype: WE_RO }),
            Step::Vanish { path: 1 },
            Step::Restart,
            Step::Guest(GuestCmd::Ignore { sak: 0xa2 }),
            Step::Interleaved {
                after: 0,
                what: OtherCmd::Reserve,
                step: Inner::Release { rtype: WE_RO },
            },
        ],
    ),
    (
        "release of an all-registrants reservation after unregistering with a gone path",
        &[
            Step::Guest(GuestCmd::Ignore { sak: 0xa1 }),
            Step::Guest(GuestCmd::Reserve { rtype: EA_AR }),
            Step::Vanish { path: 2 },
            Step::Restart,
            Step::Guest(GuestCmd::Unregister),
            Step::Arm {
                path: 0,
                armed: Armed::AfterExecution,
                times: 2,
            },
            Step::Guest(GuestCmd::Release { rtype: WE_RO }),
        ],
    ),
    (
        "fencing a host whose guest came back with the key migrated away",
        &[
            Step::Fail { path: 1 },
            Step::Guest(GuestCmd::Ignore { sak: 0xa1 }),
            Step::Other(OtherCmd::Reserve),
            Step::Arm {
                path: 2,
                armed: Armed::AfterExecution,
                times: 2,
            },
            Step::Vanish { path: 0 },
            Step::Guest(GuestCmd::PreemptOther),
            Step::MigrateToOther,
            Step::Guest(GuestCmd::Ignore { sak: 0xa1 }),
            Step::Other(OtherCmd::PreemptA),
        ],
    ),
    (
        "a reservation while the other host preempts and paths fail",
        &[
            Step::Guest(GuestCmd::Ignore { sak: 0xa1 }),
            Step::Vanish { path: 0 },
            Step::Guest(GuestCmd::Register {
                wrong_rk: false,
                sak: 0xa2,
            }),
            Step::Fail { path: 2 },
            Step::Arm {
                path: 1,
                armed: Armed::BeforeDelivery,
                times: 2,
            },
            Step::Interleaved {
                after: 5,
                what: OtherCmd::PreemptA,
                step: Inner::Reserve { rtype: WE_RO },
            },
        ],
    ),
    (
        "register-and-ignore after a timed-out registration and a returned path",
        &[
            Step::Guest(GuestCmd::Register {
                wrong_rk: false,
                sak: 0xa1,
            }),
            Step::Vanish { path: 1 },
            Step::Guest(GuestCmd::Register {
                wrong_rk: false,
                sak: 0xa2,
            }),
            Step::Arm {
                path: 2,
                armed: Armed::LostOnTheWay,
                times: 2,
            },
            Step::Return { path: 1 },
            Step::Guest(GuestCmd::Ignore { sak: 0xa1 }),
        ],
    ),
];

#[test]
fn shrunk_failures_stay_fixed() {
    for (what, steps) in SHRUNK {
        if let Err(error) = run_steps(steps) {
            panic!("{what}: {error}");
        }
    }
}

/// The class of the shrunk case "migration away after a gone path's nexus was
/// re-registered": a key change that a failed path (not only a gone one) missed
/// leaves the old key on its nexus, which the other host's migrate-pr PREEMPT of
/// the new key does not remove.
#[test]
fn a_failed_paths_old_key_does_not_outlive_a_key_change() {
    let mut harness = Harness::new();
    // B unregistered, so that its migrate-pr REGISTER (0, K) is accepted.
    let (cdb, list) = command(PrOutAction::Register, 0, rk_sak(0xb1, 0));
    assert_eq!(harness.on_b(&cdb, &list).status, Status::GOOD);
    let steps = [
        Step::Guest(GuestCmd::Register {
            wrong_rk: false,
            sak: 0xa1,
        }),
        Step::Fail { path: 0 },
        Step::Guest(GuestCmd::Register {
            wrong_rk: false,
            sak: 0xa2,
        }),
        Step::Guest(GuestCmd::Reserve { rtype: WE_RO }),
        Step::MigrateToOther,
    ];
    for step in steps {
        harness.step(step).unwrap();
    }
    assert!(harness.fenced);
    assert_eq!(harness.a_keys(), [None; 3]);
    harness.settle().unwrap();
}

/// The class of the shrunk case "release of an all-registrants reservation after
/// unregistering with a gone path": an unregistration answered GOOD while a nexus of
/// the map that no usable path reaches (its path failed or left the table) still
/// holds a key, and with it (under an all-registrants type, or as the holder) the
/// reservation. Once the usable paths are unregistered the map holds no key to
/// preempt that registration with: it is taken away first, through a usable path
/// that still holds the key.
#[test]
fn an_unregistration_leaves_no_key_on_an_unreachable_nexus() {
    for (rtype, reserver, away) in [
        (EA_AR, 0, Step::Vanish { path: 2 }),
        (EA_AR, 0, Step::Fail { path: 2 }),
        (WE_RO, 2, Step::Vanish { path: 2 }),
        (WE_RO, 2, Step::Fail { path: 2 }),
        (WE_RO, 0, Step::Vanish { path: 2 }),
        (WE, 0, Step::Fail { path: 1 }),
    ] {
        let mut harness = Harness::new();
        harness
            .step(Step::Guest(GuestCmd::Ignore { sak: 0xa1 }))
            .unwrap();
        // The reservation is made through the chosen path.
        for (i, path) in A.iter().enumerate() {
            if i != reserver {
                harness.world.update(*path, |s| s.usable = false);
            }
        }
        harness
            .step(Step::Guest(GuestCmd::Reserve { rtype }))
            .unwrap();
        for path in A {
            harness.world.update(path, |s| s.usable = true);
        }
        harness.step(away).unwrap();
        let (cdb, list) = command(PrOutAction::Register, 0, rk_sak(0xa1, 0));
        let answer = harness.on_a(&cdb, &list);
        let case = format!("type {rtype:x}, reserved through {reserver}, {away:?}");
        // A usable path holds the key and nobody else does: the helper can make it
        // true, so it must.
        assert_eq!(answer.status, Status::GOOD, "{case}");
        assert_eq!(harness.a_keys(), [None; 3], "{case}");
        assert!(
            !A.iter().any(|p| harness.lu().lu.is_holder(&nexus_of(*p))),
            "{case}"
        );
        harness.guest_key = None;
        harness.settle().unwrap();
    }
}
