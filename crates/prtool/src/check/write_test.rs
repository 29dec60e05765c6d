//! `--write-test`: a throwaway key registered on this host's nexuses, a
//! Write Exclusive - Registrants Only reservation, both read back on every
//! path, then released and unregistered, and READ FULL STATUS after compared
//! with the one before (equal but for the generation). It runs only where it
//! cannot disturb anyone: no reservation on the device, no registration of
//! this host ([`refusal`], pure).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use pr_manager::{
    Client, DataTransfer, FullStatus, PrInAction, PrInData, PrOutCommand, RegisterOptions,
    TransportId,
};
use scsi::status::Status;

use super::facts::{DeviceKind, DirectRoute, Facts, PrAnswer, WriteTest};
use super::findings::{CLUSTER_TYPE, same_initiator};
use super::probe::{self, ALLOCATION, answer_of, full_status_of};

/// Why the test must not run on the device as the facts describe it, if so.
pub fn refusal(facts: &Facts) -> Option<String> {
    let d = &facts.device;
    let supported = matches!(
        d.kind,
        DeviceKind::ScsiDisk
            | DeviceKind::ScsiGeneric { .. }
            | DeviceKind::Multipath { .. }
            | DeviceKind::Nvme(_)
            | DeviceKind::ImageFile
    );
    if !supported {
        return Some("the device is not one the check can read reservations of".to_owned());
    }
    let Some(full) = d.pr.as_ref().and_then(|pr| pr.full_status.good()) else {
        return Some("the device's reservation state could not be read".to_owned());
    };
    let image = d.kind == DeviceKind::ImageFile;
    let host = d.host_initiators();
    if !image && host.is_empty() {
        return Some(
            "this host's initiator ports are not known (name them with --initiator)".to_owned(),
        );
    }
    let is_host = |id: &TransportId| image || host.iter().any(|h| same_initiator(h, id));
    if let Some(holder) = full.descriptors.iter().find(|r| r.r_holder) {
        if !is_host(&holder.transport_id) {
            return Some(format!(
                "a reservation exists that this host does not hold (key 0x{:x})",
                holder.reservation_key
            ));
        }
    }
    if let Some(mine) = full.descriptors.iter().find(|r| is_host(&r.transport_id)) {
        return Some(format!(
            "this host has a registration on the device already (key 0x{:x})",
            mine.reservation_key
        ));
    }
    if full.descriptors.iter().any(|r| r.r_holder) {
        return Some("a reservation exists".to_owned());
    }
    None
}

/// A throwaway key: "prtc" and bits of the pid and the clock, never zero.
pub fn throwaway_key() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let low = std::process::id().rotate_left(16) ^ nanos;
    0x7072_7463_0000_0000 | u64::from(low.max(1))
}

/// Where the commands go.
pub struct Target<'a> {
    /// Through the helper with the device's descriptor, when it answered.
    pub helper: Option<(&'a Client, BorrowedFd<'a>)>,
    /// The usable paths (node, descriptor, this host's initiator through it): the
    /// device itself for a disk, every usable path for a map, none for an image.
    pub paths: Vec<(String, OwnedFd, Option<TransportId>)>,
    pub timeout: Duration,
    /// How the paths are reached without the helper (SG_IO, NVMe commands).
    pub direct: DirectRoute,
}

/// What the write test needs of its way to the device: PR OUT, and READ FULL
/// STATUS on the main route and on each path. [`Target`] is the real one; the
/// tests drive [`run`] with pr-target's SPC-4 state machine.
pub trait Route {
    /// In words (`the helper`, `SG_IO on /dev/sda`).
    fn name(&self) -> String;
    /// One PR OUT: on every path when `every_path` (REGISTER), else on one.
    fn pr_out(&self, command: &PrOutCommand, every_path: bool) -> Result<(), String>;
    /// READ FULL STATUS through the main route.
    fn full_status(&self) -> PrAnswer<FullStatus>;
    /// READ FULL STATUS on each path, with this host's initiator through it;
    /// empty when there are no paths (an image file).
    fn path_views(&self) -> Vec<(String, Option<TransportId>, PrAnswer<FullStatus>)>;
}

impl Route for Target<'_> {
    fn name(&self) -> String {
        match (&self.helper, self.paths.len()) {
            (Some(_), _) => "the helper".to_owned(),
            (None, 1) => format!("{} on {}", self.direct.words(), self.paths[0].0),
            (None, n) => format!("{} on each of {n} paths", self.direct.words()),
        }
    }

    /// One PR OUT through the helper, or on every path (REGISTER) / the first
    /// path (the others) with SG_IO.
    fn pr_out(&self, command: &PrOutCommand, every_path: bool) -> Result<(), String> {
        let (cdb, params) = command.encode().map_err(|e| e.to_string())?;
        if let Some((client, fd)) = &self.helper {
            let reply = probe::past_unit_attentions(|| {
                client.execute(&cdb, *fd, DataTransfer::ToDevice(&params))
            })
            .map_err(|e| e.to_string())?;
            return reply_result(&reply);
        }
        let targets = if every_path {
            &self.paths[..]
        } else {
            self.paths.get(..1).unwrap_or(&[])
        };
        if targets.is_empty() {
            return Err("no path to send it on".to_owned());
        }
        for (node, fd, _) in targets {
            let file = std::fs::File::from(fd.try_clone().map_err(|e| e.to_string())?);
            // A command answered with a UNIT ATTENTION was not executed: send it again.
            let reply = probe::past_unit_attentions(|| {
                crate::direct::send(
                    &file,
                    &cdb,
                    DataTransfer::ToDevice(&params),
                    self.timeout,
                    crate::args::DirectPath::Auto,
                )
            })?;
            reply_result(&reply).map_err(|e| format!("{node}: {e}"))?;
        }
        Ok(())
    }

    /// READ FULL STATUS through the first path, or the helper for an image.
    fn full_status(&self) -> PrAnswer<FullStatus> {
        match self.paths.first() {
            Some((_, fd, _)) => full_status_of(probe::direct_pr_in(
                fd.as_fd(),
                PrInAction::ReadFullStatus,
                self.timeout,
            )),
            None => full_status_of(self.helper_pr_in(PrInAction::ReadFullStatus)),
        }
    }

    fn path_views(&self) -> Vec<(String, Option<TransportId>, PrAnswer<FullStatus>)> {
        self.paths
            .iter()
            .map(|(node, fd, initiator)| {
                let answer = full_status_of(probe::direct_pr_in(
                    fd.as_fd(),
                    PrInAction::ReadFullStatus,
                    self.timeout,
                ));
                (node.clone(), initiator.clone(), answer)
            })
            .collect()
    }
}

impl Target<'_> {
    fn helper_pr_in(&self, action: PrInAction) -> PrAnswer<PrInData> {
        let Some((client, fd)) = &self.helper else {
            return PrAnswer::Failed("no route to the device".to_owned());
        };
        helper_pr_in(client, *fd, action)
    }
}

/// Checks on every path (or through the main route, without paths) that
/// `check` holds of its READ FULL STATUS, given that path's initiator.
fn on_every_path(
    route: &impl Route,
    check: impl Fn(&FullStatus, Option<&TransportId>) -> Result<(), String>,
) -> Result<(), String> {
    let views = route.path_views();
    if views.is_empty() {
        let full = route.full_status();
        let full = full
            .good()
            .ok_or_else(|| full.problem().unwrap_or_default())?;
        return check(full, None);
    }
    for (node, initiator, answer) in &views {
        let full = answer
            .good()
            .ok_or_else(|| format!("{node}: {}", answer.problem().unwrap_or_default()))?;
        check(full, initiator.as_ref()).map_err(|e| format!("{node}: {e}"))?;
    }
    Ok(())
}

/// One PR IN through the helper.
pub fn helper_pr_in(client: &Client, fd: BorrowedFd<'_>, action: PrInAction) -> PrAnswer<PrInData> {
    let cdb = pr_manager::pr_in_command(action, ALLOCATION);
    let mut buffer = vec![0u8; usize::from(ALLOCATION)];
    let sent = probe::past_unit_attentions(|| {
        client.execute(&cdb, fd, DataTransfer::FromDevice(&mut buffer))
    });
    match sent {
        Ok(reply) => answer_of(action, &reply, &buffer),
        Err(e) => PrAnswer::Failed(e.to_string()),
    }
}

fn reply_result(reply: &pr_manager::Reply) -> Result<(), String> {
    if let Some(failure) = &reply.failure {
        return Err(pr_manager::error_chain(failure));
    }
    if reply.status == Status::GOOD {
        return Ok(());
    }
    Err(match reply.decoded_sense() {
        Some(sense) => format!("{}, {sense}", reply.status),
        None => reply.status.to_string(),
    })
}

/// Runs the test on `target` (the caller checked [`refusal`] first).
pub fn run(target: &impl Route, key: u64) -> WriteTest {
    let route = target.name();
    let mut steps: Vec<(String, Result<(), String>)> = Vec::new();
    let before = target.full_status();
    let Some(before) = before.good().cloned() else {
        return WriteTest::Ran {
            route,
            key,
            steps: vec![(
                "READ FULL STATUS before".to_owned(),
                Err(before.problem().unwrap_or_default()),
            )],
            left_as_found: Err("not run".to_owned()),
        };
    };
    let register = PrOutCommand::register(0, key, RegisterOptions::default());
    let registered = target.pr_out(&register, true);
    let was_registered = registered.is_ok();
    steps.push((format!("register 0x{key:x}"), registered));
    let mut reserved = false;
    if was_registered {
        let on_paths = on_every_path(target, |full, initiator| {
            let found = full.descriptors.iter().any(|d| {
                d.reservation_key == key
                    && initiator.is_none_or(|id| same_initiator(id, &d.transport_id))
            });
            if found {
                Ok(())
            } else {
                Err(format!("this host's nexus does not carry 0x{key:x}"))
            }
        });
        let ok = on_paths.is_ok();
        steps.push(("key read back on every path".to_owned(), on_paths));
        if ok {
            let reserve = target.pr_out(&PrOutCommand::reserve(key, CLUSTER_TYPE), false);
            reserved = reserve.is_ok();
            steps.push((format!("reserve {}", CLUSTER_TYPE.short_name()), reserve));
        }
        if reserved {
            let on_paths = on_every_path(target, |full, _| {
                let holder = full.descriptors.iter().find(|d| d.r_holder);
                match holder {
                    Some(d)
                        if d.reservation_key == key
                            && d.scope_type.rtype() == Some(CLUSTER_TYPE) =>
                    {
                        Ok(())
                    }
                    Some(d) => Err(format!(
                        "the holder is key 0x{:x}, type code {}",
                        d.reservation_key,
                        d.scope_type.type_code()
                    )),
                    None => Err("no reservation".to_owned()),
                }
            });
            steps.push(("reservation read back on every path".to_owned(), on_paths));
            let release = target.pr_out(&PrOutCommand::release(key, CLUSTER_TYPE), false);
            steps.push((format!("release {}", CLUSTER_TYPE.short_name()), release));
        }
        let unregister = target.pr_out(
            &PrOutCommand::register(key, 0, RegisterOptions::default()),
            true,
        );
        steps.push(("unregister".to_owned(), unregister));
    } else {
        // The REGISTER may have reached some paths before one refused: take the
        // key off every path whatever it holds (this host held none before).
        let cleanup = target.pr_out(
            &PrOutCommand::register_and_ignore(0, RegisterOptions::default()),
            true,
        );
        steps.push((
            "cleanup: unregister with REGISTER AND IGNORE EXISTING KEY".to_owned(),
            cleanup,
        ));
    }
    let after = target.full_status();
    let left_as_found = match after.good() {
        Some(after) => compare(&before, after),
        None => Err(format!(
            "READ FULL STATUS after: {}",
            after.problem().unwrap_or_default()
        )),
    };
    WriteTest::Ran {
        route,
        key,
        steps,
        left_as_found,
    }
}

/// Equal but for the generation, or what differs.
pub fn compare(before: &FullStatus, after: &FullStatus) -> Result<(), String> {
    if before.descriptors == after.descriptors {
        return Ok(());
    }
    Err(format!(
        "{} registration(s) before, {} after{}",
        before.descriptors.len(),
        after.descriptors.len(),
        if before.descriptors.len() == after.descriptors.len() {
            " (with other contents)"
        } else {
            ""
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::facts::{DeviceFacts, PathFacts, PrState, Source};
    use pr_manager::{FullStatusDescriptor, ReportCapabilities};
    use scsi::pr::{Scope, ScopeType};

    fn sas(a: u64) -> TransportId {
        TransportId::Sas { address: a }
    }

    fn reg(k: u64, a: u64, holder: bool) -> FullStatusDescriptor {
        FullStatusDescriptor {
            reservation_key: k,
            all_tg_pt: false,
            r_holder: holder,
            scope_type: if holder {
                ScopeType::new(Scope::LogicalUnit, Some(CLUSTER_TYPE))
            } else {
                ScopeType(0)
            },
            relative_target_port: 1,
            transport_id: sas(a),
        }
    }

    fn facts(kind: DeviceKind, regs: Vec<FullStatusDescriptor>, initiator: Option<u64>) -> Facts {
        Facts {
            device: DeviceFacts {
                path: "/dev/sda".into(),
                kind,
                paths: vec![PathFacts {
                    node: "/dev/sda".into(),
                    devnum: "8:0".into(),
                    usable: None,
                    fail_count: 0,
                    initiator: initiator.map(sas),
                    full_status: None,
                }],
                pr: Some(PrState {
                    source: Source::Direct("/dev/sda".into()),
                    capabilities: PrAnswer::Good(ReportCapabilities::default()),
                    full_status: PrAnswer::Good(FullStatus {
                        generation: 1,
                        descriptors: regs,
                    }),
                }),
                ..DeviceFacts::default()
            },
            ..Facts::default()
        }
    }

    #[test]
    fn refuses_what_it_must_not_touch() {
        let disk = DeviceKind::ScsiDisk;
        assert_eq!(refusal(&facts(disk.clone(), vec![], Some(1))), None);
        // Other hosts' registrations alone are fine.
        assert_eq!(
            refusal(&facts(disk.clone(), vec![reg(5, 2, false)], Some(1))),
            None
        );
        let foreign = refusal(&facts(disk.clone(), vec![reg(5, 2, true)], Some(1))).unwrap();
        assert!(foreign.contains("does not hold (key 0x5)"), "{foreign}");
        let mine = refusal(&facts(disk.clone(), vec![reg(7, 1, false)], Some(1))).unwrap();
        assert!(
            mine.contains("registration on the device already (key 0x7)"),
            "{mine}"
        );
        let held = refusal(&facts(disk.clone(), vec![reg(7, 1, true)], Some(1))).unwrap();
        assert!(held.contains("already"), "{held}");
        assert!(
            refusal(&facts(disk.clone(), vec![], None))
                .unwrap()
                .contains("--initiator")
        );
        // An image: every registration is this host's.
        assert!(refusal(&facts(DeviceKind::ImageFile, vec![reg(7, 9, false)], None)).is_some());
        assert_eq!(refusal(&facts(DeviceKind::ImageFile, vec![], None)), None);
        assert!(refusal(&facts(DeviceKind::Loop { backing: None }, vec![], Some(1))).is_some());
        let mut unread = facts(disk, vec![], Some(1));
        unread.device.pr = None;
        assert!(refusal(&unread).unwrap().contains("could not be read"));
    }

    /// One logical unit of pr-target's SPC-4 state machine seen through this
    /// host's paths (one nexus each), with the faults a real route can have.
    struct Fake {
        lu: std::cell::RefCell<pr_target::LogicalUnit>,
        paths: Vec<pr_target::Nexus>,
        /// PR OUT for every path reaches the first only (a helper without
        /// multipath support).
        first_path_only: bool,
        /// REGISTER (not REGISTER AND IGNORE) on this path fails as a lost
        /// path would.
        broken_register: Option<usize>,
    }

    impl Fake {
        fn new(paths: usize) -> Self {
            let ports: Vec<u16> = (1..=4).collect();
            let mut lu = pr_target::LogicalUnit::new(ports);
            // Another host's registration, which must survive the test.
            let other = pr_target::Nexus::new(sas(9), 4);
            let (cdb, list) = pr_target::build::register(0, 0xb7, false);
            assert!(matches!(
                lu.execute(&other, &cdb, &list),
                pr_target::Outcome::Good(_)
            ));
            Self {
                lu: std::cell::RefCell::new(lu),
                paths: (0..paths)
                    .map(|i| pr_target::Nexus::new(sas(i as u64 + 1), i as u16 + 1))
                    .collect(),
                first_path_only: false,
                broken_register: None,
            }
        }

        fn view(&self, i: usize) -> PrAnswer<FullStatus> {
            let cdb = pr_manager::pr_in_command(PrInAction::ReadFullStatus, ALLOCATION);
            match self.lu.borrow_mut().execute(&self.paths[i], &cdb, &[]) {
                pr_target::Outcome::Good(data) => {
                    match pr_manager::decode_pr_in(PrInAction::ReadFullStatus, &data) {
                        Ok(PrInData::FullStatus(d)) => PrAnswer::Good(d.value),
                        other => PrAnswer::Failed(format!("{other:?}")),
                    }
                }
                other => PrAnswer::Failed(format!("status {}", other.status())),
            }
        }

        fn registrations(&self) -> usize {
            self.lu.borrow().registrations().len()
        }
    }

    impl Route for Fake {
        fn name(&self) -> String {
            "the fake".to_owned()
        }

        fn pr_out(&self, command: &PrOutCommand, every_path: bool) -> Result<(), String> {
            let (cdb, params) = command.encode().map_err(|e| e.to_string())?;
            let count = if every_path && !self.first_path_only {
                self.paths.len()
            } else {
                1
            };
            for (i, nexus) in self.paths.iter().take(count).enumerate() {
                if self.broken_register == Some(i) && cdb[1] & 0x1f == 0 {
                    return Err(format!("path{i}: SG_IO failed: ENXIO"));
                }
                match self.lu.borrow_mut().execute(nexus, &cdb, &params) {
                    pr_target::Outcome::Good(_) => {}
                    other => return Err(format!("path{i}: status {}", other.status())),
                }
            }
            Ok(())
        }

        fn full_status(&self) -> PrAnswer<FullStatus> {
            self.view(0)
        }

        fn path_views(&self) -> Vec<(String, Option<TransportId>, PrAnswer<FullStatus>)> {
            (0..self.paths.len())
                .map(|i| {
                    (
                        format!("path{i}"),
                        Some(self.paths[i].initiator.clone()),
                        self.view(i),
                    )
                })
                .collect()
        }
    }

    fn steps_of(test: &WriteTest) -> Vec<(String, bool)> {
        match test {
            WriteTest::Ran { steps, .. } => steps
                .iter()
                .map(|(step, result)| (step.clone(), result.is_ok()))
                .collect(),
            WriteTest::Refused(why) => panic!("refused: {why}"),
        }
    }

    fn left_as_found(test: &WriteTest) -> Result<(), String> {
        match test {
            WriteTest::Ran { left_as_found, .. } => left_as_found.clone(),
            WriteTest::Refused(why) => panic!("refused: {why}"),
        }
    }

    #[test]
    fn the_round_trip_on_two_paths_leaves_the_unit_as_it_was() {
        let fake = Fake::new(2);
        let before = fake.view(1);
        let test = run(&fake, 0x7072_7463_0000_0001);
        let steps = steps_of(&test);
        assert!(steps.iter().all(|(_, ok)| *ok), "{steps:?}");
        let names: Vec<&str> = steps.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "register 0x7072746300000001",
                "key read back on every path",
                "reserve we-ro",
                "reservation read back on every path",
                "release we-ro",
                "unregister"
            ]
        );
        assert_eq!(left_as_found(&test), Ok(()));
        assert_eq!(fake.registrations(), 1);
        assert!(fake.lu.borrow().reservation().is_none());
        let (PrAnswer::Good(a), PrAnswer::Good(b)) = (before, fake.view(1)) else {
            panic!("READ FULL STATUS failed");
        };
        assert_eq!(a.descriptors, b.descriptors);
        assert!(b.generation > a.generation);
    }

    #[test]
    fn a_register_that_reaches_one_path_only_is_found_and_undone() {
        let mut fake = Fake::new(2);
        fake.first_path_only = true;
        let test = run(&fake, 0x7072_7463_0000_0002);
        let steps = steps_of(&test);
        assert_eq!(steps[0], ("register 0x7072746300000002".to_owned(), true));
        assert_eq!(steps[1], ("key read back on every path".to_owned(), false));
        // No reservation is taken on a half-registered map; the key is removed.
        assert!(!steps.iter().any(|(s, _)| s.starts_with("reserve")));
        assert_eq!(steps.last().unwrap(), &("unregister".to_owned(), true));
        match &test {
            WriteTest::Ran { steps, .. } => {
                let why = steps[1].1.as_ref().unwrap_err();
                assert!(
                    why.starts_with("path1: this host's nexus does not carry"),
                    "{why}"
                );
            }
            WriteTest::Refused(_) => unreachable!(),
        }
        assert_eq!(left_as_found(&test), Ok(()));
        assert_eq!(fake.registrations(), 1);
    }

    #[test]
    fn a_register_that_fails_midway_is_cleaned_up_on_every_path() {
        let mut fake = Fake::new(3);
        fake.broken_register = Some(1);
        let test = run(&fake, 0x7072_7463_0000_0003);
        let steps = steps_of(&test);
        assert!(!steps[0].1, "{steps:?}");
        assert_eq!(
            steps.last().unwrap(),
            &(
                "cleanup: unregister with REGISTER AND IGNORE EXISTING KEY".to_owned(),
                true
            )
        );
        // Path 0 had registered before path 1 failed: the cleanup removed it.
        assert_eq!(left_as_found(&test), Ok(()));
        assert_eq!(fake.registrations(), 1);
    }

    #[test]
    fn keys_are_throwaway_and_non_zero() {
        let key = throwaway_key();
        assert_eq!(key >> 32, 0x7072_7463);
        assert_ne!(key & 0xffff_ffff, 0);
    }

    #[test]
    fn comparison_ignores_the_generation_only() {
        let a = FullStatus {
            generation: 1,
            descriptors: vec![reg(5, 2, false)],
        };
        let b = FullStatus {
            generation: 9,
            ..a.clone()
        };
        assert_eq!(compare(&a, &b), Ok(()));
        let c = FullStatus {
            generation: 9,
            descriptors: vec![reg(5, 2, false), reg(6, 1, false)],
        };
        assert_eq!(
            compare(&a, &c),
            Err("1 registration(s) before, 2 after".into())
        );
        let d = FullStatus {
            generation: 9,
            descriptors: vec![reg(5, 3, false)],
        };
        assert!(compare(&a, &d).unwrap_err().contains("other contents"));
    }
}
