//! The engine against a scripted fake path set: one logical unit (pr-target's SPC-4
//! state machine), each path an I_T nexus of its own, with scripted transport faults
//! and pending unit attentions.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use pr_target::{LogicalUnit, Nexus, Outcome, build};
use scsi::pr::{PrOutAction, ReadKeys, TransportId};
use scsi::sense::Sense;
use scsi::status::Status;

use super::*;
use crate::plan::KeyChange;

const A1: DevNum = DevNum::new(8, 0);
const A2: DevNum = DevNum::new(8, 32);
const A3: DevNum = DevNum::new(8, 64);
const A4: DevNum = DevNum::new(8, 80);
const B1: DevNum = DevNum::new(8, 16);
const B2: DevNum = DevNum::new(8, 48);

struct FakeLun {
    lu: Mutex<LogicalUnit>,
    nexus: HashMap<DevNum, Nexus>,
    faults: Mutex<HashMap<DevNum, Fault>>,
    unit_attentions: Mutex<HashMap<DevNum, u32>>,
    sent: Mutex<Vec<(DevNum, String)>>,
    /// With Some(n): every command waits until n are in flight (or 10 s pass).
    rendezvous: Option<usize>,
    in_flight: Mutex<(usize, usize)>,
    changed: Condvar,
}

impl FakeLun {
    fn new(paths: &[DevNum]) -> Self {
        let nexus = paths
            .iter()
            .enumerate()
            .map(|(i, &path)| {
                let initiator = TransportId::Sas {
                    address: 0x5001405000000a00 + i as u64,
                };
                (path, Nexus::new(initiator, 1 + i as u16))
            })
            .collect();
        let ports = (1..=paths.len() as u16).collect();
        Self {
            lu: Mutex::new(LogicalUnit::new(ports)),
            nexus,
            faults: Mutex::default(),
            unit_attentions: Mutex::default(),
            sent: Mutex::default(),
            rendezvous: None,
            in_flight: Mutex::new((0, 0)),
            changed: Condvar::new(),
        }
    }

    fn key_of(&self, path: DevNum) -> Option<u64> {
        self.lu.lock().unwrap().key_of(&self.nexus[&path])
    }

    fn fail(&self, path: DevNum, fault: Fault) {
        self.faults.lock().unwrap().insert(path, fault);
    }

    fn unit_attention(&self, path: DevNum, count: u32) {
        self.unit_attentions.lock().unwrap().insert(path, count);
    }

    fn direct(&self, path: DevNum, cdb: &[u8], data: &[u8]) -> Outcome {
        self.lu
            .lock()
            .unwrap()
            .execute(&self.nexus[&path], cdb, data)
    }

    fn sent_to(&self) -> Vec<DevNum> {
        self.sent.lock().unwrap().iter().map(|(p, _)| *p).collect()
    }

    /// The paths PR OUT commands went to (the PR IN reads the fencing makes aside).
    fn sent_pr_out_to(&self) -> Vec<DevNum> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, name)| name.starts_with("PR OUT"))
            .map(|(p, _)| *p)
            .collect()
    }

    fn clear_log(&self) {
        self.sent.lock().unwrap().clear();
    }

    fn wait_for_company(&self, wanted: usize) {
        let mut state = self.in_flight.lock().unwrap();
        state.0 += 1;
        state.1 = state.1.max(state.0);
        self.changed.notify_all();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while state.1 < wanted && std::time::Instant::now() < deadline {
            state = self
                .changed
                .wait_timeout(state, Duration::from_millis(50))
                .unwrap()
                .0;
        }
        state.0 -= 1;
    }
}

impl PathIo for FakeLun {
    fn send(&self, path: DevNum, cdb: &[u8], data_out: &[u8]) -> PathReply {
        self.sent.lock().unwrap().push((path, command_name(cdb)));
        if let Some(wanted) = self.rendezvous {
            self.wait_for_company(wanted);
        }
        if let Some(fault) = self.faults.lock().unwrap().get(&path) {
            return PathReply {
                answer: Answer::check_condition(Sense::I_T_NEXUS_LOSS),
                fault: Some(fault.clone()),
            };
        }
        if let Some(pending) = self.unit_attentions.lock().unwrap().get_mut(&path)
            && *pending > 0
        {
            *pending -= 1;
            return PathReply {
                answer: Answer::check_condition(Sense::REGISTRATIONS_PREEMPTED),
                fault: None,
            };
        }
        let answer = match self.direct(path, cdb, data_out) {
            Outcome::Good(data) => Answer::good(data),
            Outcome::ReservationConflict => Answer::plain(Status::RESERVATION_CONFLICT),
            Outcome::CheckCondition(sense) => Answer::check_condition(sense),
        };
        PathReply {
            answer,
            fault: None,
        }
    }

    fn identity(&self, path: DevNum) -> Option<crate::fence::NexusId> {
        let nexus = self.nexus.get(&path)?;
        Some(crate::fence::NexusId {
            initiator: nexus.initiator.clone(),
            target_port: Some(nexus.target_port),
        })
    }
}

fn run(lun: &FakeLun, usable: &[DevNum], command: ([u8; 10], Vec<u8>)) -> Executed {
    execute(lun, "mpatha", usable, &command.0, &command.1, None)
}

fn register(rk: u64, sak: u64) -> ([u8; 10], Vec<u8>) {
    build::register(rk, sak, false)
}

fn register_ignore_cmd(sak: u64) -> ([u8; 10], Vec<u8>) {
    register_ignore(sak, false)
}

fn preempt(rk: u64, sak: u64, type_code: u8) -> ([u8; 10], Vec<u8>) {
    let list = build::basic_list(rk, sak, build::Flags::default(), &[]);
    let cdb = build::pr_out(PrOutAction::Preempt, type_code, list.len() as u32);
    (cdb, list)
}

const WE_RO: u8 = 0x5;

#[test]
fn register_goes_to_every_path_in_parallel() {
    let mut lun = FakeLun::new(&[A1, A2, A3, A4]);
    lun.rendezvous = Some(4);
    let done = run(&lun, &[A1, A2, A3, A4], register(0, 0xa1));
    assert_eq!(done.answer, Answer::good(vec![]));
    assert_eq!(
        done.key,
        KeyChange::Remember(RememberedKey {
            key: 0xa1,
            aptpl: false
        })
    );
    for path in [A1, A2, A3, A4] {
        assert_eq!(lun.key_of(path), Some(0xa1), "{path}");
    }
    // Every path's command was in flight at the same time.
    assert_eq!(lun.in_flight.lock().unwrap().1, 4);
}

#[test]
fn reserve_and_pr_in_go_to_one_path() {
    let lun = FakeLun::new(&[A1, A2]);
    run(&lun, &[A1, A2], register(0, 0xa1));
    lun.clear_log();
    let done = run(&lun, &[A1, A2], build::reserve(0xa1, WE_RO));
    assert_eq!(done.answer.status, Status::GOOD);
    assert_eq!(done.key, KeyChange::Keep);
    let done = run(&lun, &[A1, A2], (build::read_keys(100), vec![]));
    let keys = ReadKeys::decode(&done.answer.data).unwrap().value.keys;
    assert_eq!(keys, [0xa1, 0xa1]);
    assert_eq!(lun.sent_to(), [A1, A1]);
}

#[test]
fn a_path_with_an_old_key_is_brought_in_line() {
    let lun = FakeLun::new(&[A1, A2, A3]);
    run(&lun, &[A1, A2, A3], register(0, 0xa1));
    // A3 is away while the key changes, then comes back with the old key.
    run(&lun, &[A1, A2], register(0xa1, 0xa2));
    assert_eq!(lun.key_of(A3), Some(0xa1));
    let done = run(&lun, &[A1, A2, A3], register(0xa2, 0xa3));
    assert_eq!(done.answer.status, Status::GOOD);
    for path in [A1, A2, A3] {
        assert_eq!(lun.key_of(path), Some(0xa3), "{path}");
    }
}

#[test]
fn a_repeated_register_is_brought_in_line() {
    let lun = FakeLun::new(&[A1, A2]);
    run(&lun, &[A1, A2], register(0, 0xa1));
    // The guest did not see the answer and sends the same REGISTER again: every path
    // now carries the new key and answers RESERVATION CONFLICT.
    let done = run(&lun, &[A1, A2], register(0, 0xa1));
    assert_eq!(done.answer.status, Status::GOOD);
    assert_eq!((lun.key_of(A1), lun.key_of(A2)), (Some(0xa1), Some(0xa1)));
}

#[test]
fn a_preempted_host_stays_fenced() {
    let lun = FakeLun::new(&[A1, A2, B1]);
    run(&lun, &[A1, A2], register(0, 0xa1));
    assert_eq!(
        lun.direct(B1, &register(0, 0xb1).0, &register(0, 0xb1).1),
        Outcome::Good(vec![])
    );
    let (cdb, list) = preempt(0xb1, 0xa1, WE_RO);
    assert_eq!(lun.direct(B1, &cdb, &list), Outcome::Good(vec![]));
    // A's registration is gone from both its paths; its REGISTER must not bring it back.
    let done = run(&lun, &[A1, A2], register(0xa1, 0xa2));
    assert_eq!(done.answer.status, Status::RESERVATION_CONFLICT);
    assert_eq!(done.key, KeyChange::Keep);
    assert_eq!((lun.key_of(A1), lun.key_of(A2)), (None, None));
    // REGISTER AND IGNORE EXISTING KEY is the host's own decision to come back.
    let done = run(&lun, &[A1, A2], register_ignore_cmd(0xa3));
    assert_eq!(done.answer.status, Status::GOOD);
    assert_eq!((lun.key_of(A1), lun.key_of(A2)), (Some(0xa3), Some(0xa3)));
}

#[test]
fn unregistering_repairs_without_a_check() {
    let lun = FakeLun::new(&[A1, A2]);
    run(&lun, &[A1, A2], register(0, 0xa1));
    run(&lun, &[A1], register(0xa1, 0xa2));
    let done = run(&lun, &[A1, A2], register(0xa2, 0));
    assert_eq!(done.answer.status, Status::GOOD);
    assert_eq!(done.key, KeyChange::Forget);
    assert_eq!((lun.key_of(A1), lun.key_of(A2)), (None, None));
}

#[test]
fn unit_attention_is_consumed_and_retried_a_bounded_number_of_times() {
    let lun = FakeLun::new(&[A1, A2]);
    lun.unit_attention(A1, 2);
    let done = run(&lun, &[A1, A2], (build::read_keys(100), vec![]));
    assert_eq!(done.answer.status, Status::GOOD);
    assert_eq!(lun.sent_to(), [A1, A1, A1]);
    lun.clear_log();
    lun.unit_attention(A1, 100);
    let done = run(&lun, &[A1, A2], (build::read_keys(100), vec![]));
    assert_eq!(
        done.answer.sense_code(),
        Some(Sense::REGISTRATIONS_PREEMPTED)
    );
    assert_eq!(lun.sent_to().len(), 1 + UNIT_ATTENTION_RETRIES as usize);
    // A unit attention is the device's answer, never a reason to fail over.
    assert!(lun.sent_to().iter().all(|&p| p == A1));
}

#[test]
fn failover_only_on_transport_failures() {
    let lun = FakeLun::new(&[A1, A2, B1]);
    lun.fail(A1, Fault::HostStatus(scsi::sgio::host::DID_NO_CONNECT));
    let done = run(&lun, &[A1, A2], (build::read_keys(100), vec![]));
    assert_eq!(done.answer.status, Status::GOOD);
    assert_eq!(lun.sent_to(), [A1, A2]);
    // A device's answer (here RESERVATION CONFLICT: A is not registered and B holds
    // the reservation) is final.
    lun.faults.lock().unwrap().clear();
    let (cdb, list) = register(0, 0xb1);
    lun.direct(B1, &cdb, &list);
    let (cdb, list) = build::reserve(0xb1, 0x1);
    lun.direct(B1, &cdb, &list);
    lun.clear_log();
    let done = run(&lun, &[A1, A2], build::reserve(0xa1, 0x1));
    assert_eq!(done.answer.status, Status::RESERVATION_CONFLICT);
    assert_eq!(lun.sent_to(), [A1]);
    // Every path broken: the last transport failure's answer.
    lun.fail(A1, Fault::Timeout);
    lun.fail(A2, Fault::Errno(libc::ENODEV));
    let done = run(&lun, &[A1, A2], (build::read_keys(100), vec![]));
    assert_eq!(done.answer.sense_code(), Some(Sense::I_T_NEXUS_LOSS));
}

#[test]
fn a_fan_out_with_a_broken_path_is_not_good() {
    let lun = FakeLun::new(&[A1, A2]);
    lun.fail(A2, Fault::Errno(libc::EIO));
    let done = run(&lun, &[A1, A2], register(0, 0xa1));
    assert_ne!(done.answer.status, Status::GOOD);
    assert_eq!(done.key, KeyChange::Keep);
    // Rolled back: the guest was told it failed, so no path keeps the new key.
    assert_eq!(lun.key_of(A1), None);
    // Once the kernel has failed the path, the guest's retry succeeds (A1 is brought
    // in line: it already carries the key).
    let done = run(&lun, &[A1], register(0, 0xa1));
    assert_eq!(done.answer.status, Status::GOOD);
}

#[test]
fn preempting_the_own_key_reregisters_the_other_paths() {
    // QEMU's migrate-pr on the destination B: REGISTER (0, K) on B's map, then PREEMPT
    // (K, K) with the saved type. A's map held the reservation with K.
    let lun = FakeLun::new(&[A1, A2, B1, B2]);
    const K: u64 = 0x4b;
    run(&lun, &[A1, A2], register(0, K));
    run(&lun, &[A1, A2], build::reserve(K, WE_RO));
    let done = run(&lun, &[B1, B2], register(0, K));
    assert_eq!(done.answer.status, Status::GOOD);
    lun.clear_log();
    let done = run(&lun, &[B1, B2], preempt(K, K, WE_RO));
    assert_eq!(done.answer.status, Status::GOOD);
    assert_eq!(
        done.key,
        KeyChange::Remember(RememberedKey {
            key: K,
            aptpl: false
        })
    );
    assert_eq!(lun.sent_pr_out_to(), [B1, B2]);
    assert_eq!((lun.key_of(B1), lun.key_of(B2)), (Some(K), Some(K)));
    assert_eq!((lun.key_of(A1), lun.key_of(A2)), (None, None));
    let lu = lun.lu.lock().unwrap();
    assert!(lu.is_holder(&lun.nexus[&B1]));
}

#[test]
fn no_usable_path_is_a_prompt_check_condition() {
    let lun = FakeLun::new(&[A1]);
    let done = run(&lun, &[], register(0, 0xa1));
    assert_eq!(done.answer.sense_code(), Some(NO_PATH_SENSE));
    assert!(lun.sent_to().is_empty());
}

#[test]
fn register_paths_reports_failures() {
    let lun = FakeLun::new(&[A1, A2]);
    lun.fail(A2, Fault::Timeout);
    lun.unit_attention(A1, 1);
    let failed = register_paths(
        &lun,
        "mpatha",
        &[A1, A2],
        RememberedKey {
            key: 0xa1,
            aptpl: false,
        },
        "test",
    );
    assert_eq!(failed, [A2]);
    assert_eq!(lun.key_of(A1), Some(0xa1));
    assert_eq!(read_keys(&lun, "mpatha", &[A2, A1]), Some(vec![0xa1]));
}

#[test]
fn faults_from_sg_io_outcomes() {
    let outcome = |errno, host, driver| SgIoOutcome {
        errno,
        host_status: host,
        driver_status: driver,
        scsi_status: 0,
    };
    assert_eq!(fault_of(None), None);
    assert_eq!(fault_of(Some(&outcome(None, 0, 0))), None);
    // A device's CHECK CONDITION (DRIVER_SENSE) is an answer.
    assert_eq!(fault_of(Some(&outcome(None, 0, 0x08))), None);
    assert_eq!(
        fault_of(Some(&outcome(Some(libc::ENODEV), 0, 0))),
        Some(Fault::Errno(libc::ENODEV))
    );
    assert_eq!(
        fault_of(Some(&outcome(None, 0x01, 0))),
        Some(Fault::HostStatus(1))
    );
    assert_eq!(
        fault_of(Some(&outcome(None, 0, 0x06))),
        Some(Fault::Timeout)
    );
}
