//! One test per SPC-4 rule, named after the rule.

use crate::build::{self, Flags};
use crate::{
    Access, LogicalUnit, Nexus, Outcome, PrInAction, PrOutAction, ReservationType, Sense,
    TransportId,
};
use scsi::pr::Scope;
use scsi::status::Status;

const WE: u8 = 0x1;
const EA: u8 = 0x3;
const WE_RO: u8 = 0x5;
const EA_RO: u8 = 0x6;
const WE_AR: u8 = 0x7;
const EA_AR: u8 = 0x8;

fn nexus(name: &str) -> Nexus {
    Nexus::new(TransportId::iscsi(name), 1)
}

fn unit() -> LogicalUnit {
    LogicalUnit::new(vec![1, 2])
}

fn out(lu: &mut LogicalUnit, n: &Nexus, sa: PrOutAction, t: u8, key: u64, sa_key: u64) -> Outcome {
    let (cdb, list) = build::out_command(sa, t, key, sa_key, Flags::default());
    lu.execute(n, &cdb, &list)
}

fn register(lu: &mut LogicalUnit, n: &Nexus, key: u64) {
    assert_eq!(
        out(lu, n, PrOutAction::Register, 0, 0, key),
        Outcome::good()
    );
}

fn reserve(lu: &mut LogicalUnit, n: &Nexus, key: u64, t: u8) -> Outcome {
    out(lu, n, PrOutAction::Reserve, t, key, 0)
}

fn keys(lu: &LogicalUnit) -> Vec<u64> {
    lu.registrations().iter().map(|r| r.key).collect()
}

fn refused(sense: Sense) -> Outcome {
    Outcome::CheckCondition(sense)
}

// --- REGISTER ---

#[test]
fn register_unregistered_nexus_with_nonzero_reservation_key_is_a_conflict() {
    let mut lu = unit();
    let a = nexus("a");
    assert_eq!(
        out(&mut lu, &a, PrOutAction::Register, 0, 5, 6),
        Outcome::ReservationConflict
    );
    assert_eq!(lu.generation(), 0);
}

#[test]
fn register_unregistered_nexus_with_zero_service_action_key_does_nothing() {
    let mut lu = unit();
    assert_eq!(
        out(&mut lu, &nexus("a"), PrOutAction::Register, 0, 0, 0),
        Outcome::good()
    );
    assert!(lu.registrations().is_empty());
    assert_eq!(lu.generation(), 0);
}

#[test]
fn register_adds_key_and_increments_generation() {
    let mut lu = unit();
    register(&mut lu, &nexus("a"), 0xAA);
    assert_eq!(keys(&lu), vec![0xAA]);
    assert_eq!(lu.generation(), 1);
}

#[test]
fn register_registered_nexus_with_wrong_key_is_a_conflict() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 0xAA);
    assert_eq!(
        out(&mut lu, &a, PrOutAction::Register, 0, 0xAB, 1),
        Outcome::ReservationConflict
    );
    assert_eq!(lu.generation(), 1);
}

#[test]
fn register_registered_nexus_with_right_key_replaces_key() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 0xAA);
    assert_eq!(
        out(&mut lu, &a, PrOutAction::Register, 0, 0xAA, 0xBB),
        Outcome::good()
    );
    assert_eq!(keys(&lu), vec![0xBB]);
    assert_eq!(lu.generation(), 2);
}

#[test]
fn register_with_zero_service_action_key_unregisters_and_releases_holders_reservation() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 0xAA);
    assert_eq!(reserve(&mut lu, &a, 0xAA, WE), Outcome::good());
    assert_eq!(
        out(&mut lu, &a, PrOutAction::Register, 0, 0xAA, 0),
        Outcome::good()
    );
    assert!(lu.registrations().is_empty());
    assert!(lu.reservation().is_none());
}

#[test]
fn unregistering_one_all_registrants_holder_keeps_the_reservation_until_the_last() {
    let mut lu = unit();
    let (a, b) = (nexus("a"), nexus("b"));
    register(&mut lu, &a, 1);
    register(&mut lu, &b, 2);
    assert_eq!(reserve(&mut lu, &a, 1, WE_AR), Outcome::good());
    assert_eq!(
        out(&mut lu, &a, PrOutAction::Register, 0, 1, 0),
        Outcome::good()
    );
    assert!(lu.reservation().is_some());
    assert!(lu.is_holder(&b));
    lu.check_invariants().unwrap();
    assert_eq!(
        out(&mut lu, &b, PrOutAction::Register, 0, 2, 0),
        Outcome::good()
    );
    assert!(lu.reservation().is_none());
}

#[test]
fn register_and_ignore_existing_key_ignores_the_reservation_key_field() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 0xAA);
    let r = out(
        &mut lu,
        &a,
        PrOutAction::RegisterAndIgnoreExistingKey,
        0,
        0x1234,
        0xCC,
    );
    assert_eq!(r, Outcome::good());
    assert_eq!(keys(&lu), vec![0xCC]);
    let b = nexus("b");
    let r = out(
        &mut lu,
        &b,
        PrOutAction::RegisterAndIgnoreExistingKey,
        0,
        0x99,
        0xDD,
    );
    assert_eq!(r, Outcome::good());
    assert_eq!(keys(&lu), vec![0xCC, 0xDD]);
}

#[test]
fn spec_i_pt_registers_the_named_initiators_on_the_receiving_port() {
    let mut lu = unit();
    let a = nexus("a");
    let tids = [TransportId::iscsi("b"), TransportId::iscsi("c")];
    let list = build::basic_list(
        0,
        7,
        Flags {
            spec_i_pt: true,
            ..Flags::default()
        },
        &tids,
    );
    let cdb = build::pr_out(PrOutAction::Register, 0, list.len() as u32);
    assert_eq!(lu.execute(&a, &cdb, &list), Outcome::good());
    assert_eq!(keys(&lu), vec![7, 7, 7]);
    assert_eq!(lu.key_of(&nexus("c")), Some(7));
    assert_eq!(lu.generation(), 1);
}

#[test]
fn spec_i_pt_naming_an_already_registered_nexus_is_invalid_field_in_parameter_list() {
    let mut lu = unit();
    register(&mut lu, &nexus("b"), 3);
    let tids = [TransportId::iscsi("b")];
    let list = build::basic_list(
        0,
        7,
        Flags {
            spec_i_pt: true,
            ..Flags::default()
        },
        &tids,
    );
    let cdb = build::pr_out(PrOutAction::Register, 0, list.len() as u32);
    let r = lu.execute(&nexus("a"), &cdb, &list);
    assert_eq!(r, refused(Sense::INVALID_FIELD_IN_PARAMETER_LIST));
    assert_eq!(keys(&lu), vec![3]);
}

#[test]
fn spec_i_pt_from_a_registered_nexus_is_invalid_field_in_parameter_list() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 1);
    let list = build::basic_list(
        1,
        2,
        Flags {
            spec_i_pt: true,
            ..Flags::default()
        },
        &[],
    );
    let cdb = build::pr_out(PrOutAction::Register, 0, list.len() as u32);
    assert_eq!(
        lu.execute(&a, &cdb, &list),
        refused(Sense::INVALID_FIELD_IN_PARAMETER_LIST)
    );
}

#[test]
fn spec_i_pt_with_any_service_action_but_register_is_invalid_field_in_parameter_list() {
    let mut lu = unit();
    let list = build::basic_list(
        0,
        2,
        Flags {
            spec_i_pt: true,
            ..Flags::default()
        },
        &[],
    );
    for sa in [
        PrOutAction::RegisterAndIgnoreExistingKey,
        PrOutAction::Reserve,
        PrOutAction::Clear,
    ] {
        let cdb = build::pr_out(sa, WE, list.len() as u32);
        let r = lu.execute(&nexus("a"), &cdb, &list);
        assert_eq!(r, refused(Sense::INVALID_FIELD_IN_PARAMETER_LIST), "{sa:?}");
    }
}

#[test]
fn spec_i_pt_transport_id_length_beyond_the_list_is_parameter_list_length_error() {
    let mut lu = unit();
    let mut list = build::basic_list(
        0,
        7,
        Flags {
            spec_i_pt: true,
            ..Flags::default()
        },
        &[TransportId::Sas {
            address: 0x0101_0101_0101_0101,
        }],
    );
    list[27] = 48; // claims two TransportIDs, carries one
    let cdb = build::pr_out(PrOutAction::Register, 0, list.len() as u32);
    assert_eq!(
        lu.execute(&nexus("a"), &cdb, &list),
        refused(Sense::PARAMETER_LIST_LENGTH_ERROR)
    );
}

#[test]
fn all_tg_pt_registers_the_initiator_through_every_target_port() {
    let mut lu = unit();
    let a = nexus("a");
    let (cdb, list) = build::out_command(
        PrOutAction::Register,
        0,
        0,
        9,
        Flags {
            all_tg_pt: true,
            ..Flags::default()
        },
    );
    assert_eq!(lu.execute(&a, &cdb, &list), Outcome::good());
    assert_eq!(lu.key_of(&Nexus::new(TransportId::iscsi("a"), 2)), Some(9));
    assert!(lu.registrations().iter().all(|r| r.all_tg_pt));
}

#[test]
fn aptpl_is_set_and_cleared_by_register_and_persistent_part_follows_it() {
    let mut lu = unit();
    let a = nexus("a");
    let (cdb, list) = build::register(0, 1, true);
    assert_eq!(lu.execute(&a, &cdb, &list), Outcome::good());
    assert!(lu.aptpl());
    assert_eq!(lu.persistent_part(), lu);
    let (cdb, list) = build::register(1, 2, false);
    assert_eq!(lu.execute(&a, &cdb, &list), Outcome::good());
    assert!(!lu.aptpl());
    assert!(lu.persistent_part().registrations().is_empty());
}

// --- parameter list and CDB checks ---

#[test]
fn parameter_list_shorter_than_24_bytes_is_parameter_list_length_error() {
    let mut lu = unit();
    let cdb = build::pr_out(PrOutAction::Register, 0, 20);
    assert_eq!(
        lu.execute(&nexus("a"), &cdb, &[0; 20]),
        refused(Sense::PARAMETER_LIST_LENGTH_ERROR)
    );
}

#[test]
fn parameter_list_longer_than_24_bytes_without_spec_i_pt_is_parameter_list_length_error() {
    let mut lu = unit();
    let cdb = build::pr_out(PrOutAction::Register, 0, 28);
    assert_eq!(
        lu.execute(&nexus("a"), &cdb, &[0; 28]),
        refused(Sense::PARAMETER_LIST_LENGTH_ERROR)
    );
}

#[test]
fn parameter_list_length_beyond_the_data_sent_is_parameter_list_length_error() {
    let mut lu = unit();
    let cdb = build::pr_out(PrOutAction::Register, 0, 24);
    assert_eq!(
        lu.execute(&nexus("a"), &cdb, &[0; 10]),
        refused(Sense::PARAMETER_LIST_LENGTH_ERROR)
    );
}

#[test]
fn unknown_pr_out_service_action_is_invalid_field_in_cdb() {
    let mut lu = unit();
    let mut cdb = build::pr_out(PrOutAction::Register, 0, 24);
    cdb[1] = 0x08;
    assert_eq!(
        lu.execute(&nexus("a"), &cdb, &[0; 24]),
        refused(Sense::INVALID_FIELD_IN_CDB)
    );
}

#[test]
fn unknown_pr_in_service_action_is_invalid_field_in_cdb() {
    let mut lu = unit();
    let mut cdb = build::read_keys(100);
    cdb[1] = 0x04;
    assert_eq!(
        lu.execute(&nexus("a"), &cdb, &[]),
        refused(Sense::INVALID_FIELD_IN_CDB)
    );
}

#[test]
fn other_opcodes_are_invalid_command_operation_code() {
    let mut lu = unit();
    assert_eq!(
        lu.execute(&nexus("a"), &[0x28; 10], &[]),
        refused(Sense::INVALID_COMMAND_OPERATION_CODE)
    );
}

#[test]
fn short_cdb_is_invalid_field_in_cdb() {
    let mut lu = unit();
    assert_eq!(
        lu.execute(&nexus("a"), &[0x5F, 0, 0], &[]),
        refused(Sense::INVALID_FIELD_IN_CDB)
    );
    assert_eq!(
        lu.execute(&nexus("a"), &[0x5E], &[]),
        refused(Sense::INVALID_FIELD_IN_CDB)
    );
}

// --- RESERVE ---

#[test]
fn reserve_with_invalid_type_is_invalid_field_in_cdb() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 1);
    for t in [0x0, 0x2, 0x4, 0x9, 0xF] {
        assert_eq!(
            reserve(&mut lu, &a, 1, t),
            refused(Sense::INVALID_FIELD_IN_CDB)
        );
    }
}

#[test]
fn reserve_with_invalid_type_is_refused_before_the_key_is_checked() {
    let mut lu = unit();
    assert_eq!(
        reserve(&mut lu, &nexus("a"), 7, 0x2),
        refused(Sense::INVALID_FIELD_IN_CDB)
    );
}

#[test]
fn reservation_held_by_another_refuses_reserve_and_move_before_their_fields_are_checked() {
    let mut lu = unit();
    let (a, b) = (nexus("a"), nexus("b"));
    register(&mut lu, &a, 1);
    register(&mut lu, &b, 2);
    assert_eq!(reserve(&mut lu, &a, 1, WE), Outcome::good());
    assert_eq!(reserve(&mut lu, &b, 2, 0x2), Outcome::ReservationConflict);
    assert_eq!(
        move_cmd(&mut lu, &b, 2, 0, false, 1, "c"),
        Outcome::ReservationConflict
    );
}

#[test]
fn reservation_held_by_another_refuses_unregistered_release_clear_and_preempt_first() {
    let mut lu = unit();
    let (a, c) = (nexus("a"), nexus("c"));
    register(&mut lu, &a, 1);
    assert_eq!(reserve(&mut lu, &a, 1, EA), Outcome::good());
    for sa in [
        PrOutAction::Release,
        PrOutAction::Clear,
        PrOutAction::Preempt,
    ] {
        assert_eq!(
            out(&mut lu, &c, sa, 0x2, 0, 0),
            Outcome::ReservationConflict,
            "{sa:?}"
        );
    }
    // REGISTER always gets through.
    assert_eq!(
        out(&mut lu, &c, PrOutAction::Register, 0, 0, 3),
        Outcome::good()
    );
}

#[test]
fn registrants_share_a_registrants_only_reservation_for_the_conflict_check() {
    let mut lu = unit();
    let (a, b) = (nexus("a"), nexus("b"));
    register(&mut lu, &a, 1);
    register(&mut lu, &b, 2);
    assert_eq!(reserve(&mut lu, &a, 1, WE_RO), Outcome::good());
    assert_eq!(
        reserve(&mut lu, &b, 2, 0x2),
        refused(Sense::INVALID_FIELD_IN_CDB)
    );
}

#[test]
fn reserve_with_scope_other_than_logical_unit_is_invalid_field_in_cdb() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 1);
    let (mut cdb, list) = build::reserve(1, WE);
    cdb[2] |= 0x20;
    assert_eq!(
        lu.execute(&a, &cdb, &list),
        refused(Sense::INVALID_FIELD_IN_CDB)
    );
}

#[test]
fn reserve_from_unregistered_nexus_is_a_conflict() {
    let mut lu = unit();
    assert_eq!(
        reserve(&mut lu, &nexus("a"), 0, WE),
        Outcome::ReservationConflict
    );
}

#[test]
fn reserve_with_wrong_key_is_a_conflict() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 1);
    assert_eq!(reserve(&mut lu, &a, 2, WE), Outcome::ReservationConflict);
}

#[test]
fn reserve_creates_reservation_without_changing_generation() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 1);
    assert_eq!(reserve(&mut lu, &a, 1, EA), Outcome::good());
    assert_eq!(
        lu.reservation().map(|r| r.rtype),
        Some(ReservationType::ExclusiveAccess)
    );
    assert_eq!(lu.generation(), 1);
}

#[test]
fn reserve_again_by_holder_with_same_type_succeeds_and_other_type_conflicts() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 1);
    assert_eq!(reserve(&mut lu, &a, 1, WE), Outcome::good());
    assert_eq!(reserve(&mut lu, &a, 1, WE), Outcome::good());
    assert_eq!(reserve(&mut lu, &a, 1, EA), Outcome::ReservationConflict);
}

#[test]
fn reserve_by_registered_non_holder_is_a_conflict() {
    let mut lu = unit();
    let (a, b) = (nexus("a"), nexus("b"));
    register(&mut lu, &a, 1);
    register(&mut lu, &b, 2);
    assert_eq!(reserve(&mut lu, &a, 1, WE_RO), Outcome::good());
    assert_eq!(reserve(&mut lu, &b, 2, WE_RO), Outcome::ReservationConflict);
}

#[test]
fn all_registrants_reservation_is_held_by_every_registrant() {
    let mut lu = unit();
    let (a, b) = (nexus("a"), nexus("b"));
    register(&mut lu, &a, 1);
    register(&mut lu, &b, 2);
    assert_eq!(reserve(&mut lu, &a, 1, EA_AR), Outcome::good());
    assert!(lu.is_holder(&b));
    assert_eq!(reserve(&mut lu, &b, 2, EA_AR), Outcome::good());
    assert!(!lu.access_conflicts(&b, Access::Write));
    assert!(lu.access_conflicts(&nexus("c"), Access::Read));
}

// --- RELEASE ---

#[test]
fn release_without_reservation_is_good_and_changes_nothing() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 1);
    assert_eq!(
        out(&mut lu, &a, PrOutAction::Release, WE, 1, 0),
        Outcome::good()
    );
    assert_eq!(lu.generation(), 1);
}

#[test]
fn release_from_unregistered_nexus_or_with_wrong_key_is_a_conflict() {
    let mut lu = unit();
    let a = nexus("a");
    assert_eq!(
        out(&mut lu, &a, PrOutAction::Release, WE, 0, 0),
        Outcome::ReservationConflict
    );
    register(&mut lu, &a, 1);
    assert_eq!(
        out(&mut lu, &a, PrOutAction::Release, WE, 2, 0),
        Outcome::ReservationConflict
    );
}

#[test]
fn release_by_non_holder_is_good_and_keeps_the_reservation() {
    let mut lu = unit();
    let (a, b) = (nexus("a"), nexus("b"));
    register(&mut lu, &a, 1);
    register(&mut lu, &b, 2);
    assert_eq!(reserve(&mut lu, &a, 1, WE), Outcome::good());
    assert_eq!(
        out(&mut lu, &b, PrOutAction::Release, WE, 2, 0),
        Outcome::good()
    );
    assert!(lu.reservation().is_some());
}

#[test]
fn release_with_a_different_type_is_invalid_release_of_persistent_reservation() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 1);
    assert_eq!(reserve(&mut lu, &a, 1, WE), Outcome::good());
    let r = out(&mut lu, &a, PrOutAction::Release, EA, 1, 0);
    assert_eq!(r, refused(Sense::INVALID_RELEASE_OF_PERSISTENT_RESERVATION));
    assert!(lu.reservation().is_some());
}

#[test]
fn release_by_holder_removes_reservation_keeps_registrations_and_generation() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 1);
    assert_eq!(reserve(&mut lu, &a, 1, EA_RO), Outcome::good());
    assert_eq!(
        out(&mut lu, &a, PrOutAction::Release, EA_RO, 1, 0),
        Outcome::good()
    );
    assert!(lu.reservation().is_none());
    assert_eq!(keys(&lu), vec![1]);
    assert_eq!(lu.generation(), 1);
}

#[test]
fn release_of_all_registrants_reservation_by_any_registrant_releases_it() {
    let mut lu = unit();
    let (a, b) = (nexus("a"), nexus("b"));
    register(&mut lu, &a, 1);
    register(&mut lu, &b, 2);
    assert_eq!(reserve(&mut lu, &a, 1, WE_AR), Outcome::good());
    assert_eq!(
        out(&mut lu, &b, PrOutAction::Release, WE_AR, 2, 0),
        Outcome::good()
    );
    assert!(lu.reservation().is_none());
}

// --- CLEAR ---

#[test]
fn clear_removes_every_registration_and_the_reservation_and_increments_generation() {
    let mut lu = unit();
    let (a, b) = (nexus("a"), nexus("b"));
    register(&mut lu, &a, 1);
    register(&mut lu, &b, 2);
    assert_eq!(reserve(&mut lu, &a, 1, WE), Outcome::good());
    assert_eq!(
        out(&mut lu, &b, PrOutAction::Clear, 0, 2, 0),
        Outcome::good()
    );
    assert!(lu.registrations().is_empty());
    assert!(lu.reservation().is_none());
    assert_eq!(lu.generation(), 3);
}

#[test]
fn clear_from_unregistered_nexus_or_with_wrong_key_is_a_conflict() {
    let mut lu = unit();
    let a = nexus("a");
    assert_eq!(
        out(&mut lu, &a, PrOutAction::Clear, 0, 0, 0),
        Outcome::ReservationConflict
    );
    register(&mut lu, &a, 1);
    assert_eq!(
        out(&mut lu, &a, PrOutAction::Clear, 0, 9, 0),
        Outcome::ReservationConflict
    );
    assert_eq!(keys(&lu), vec![1]);
}

// --- PREEMPT / PREEMPT AND ABORT ---

#[test]
fn preempt_of_the_holder_removes_its_registrations_and_takes_the_reservation() {
    for sa in [PrOutAction::Preempt, PrOutAction::PreemptAndAbort] {
        let mut lu = unit();
        let (a, b) = (nexus("a"), nexus("b"));
        register(&mut lu, &a, 1);
        register(&mut lu, &b, 2);
        assert_eq!(reserve(&mut lu, &a, 1, WE), Outcome::good());
        assert_eq!(out(&mut lu, &b, sa, EA, 2, 1), Outcome::good());
        assert_eq!(keys(&lu), vec![2]);
        let r = lu.reservation().unwrap();
        assert_eq!(
            (r.holder.clone(), r.rtype),
            (b.clone(), ReservationType::ExclusiveAccess)
        );
        assert_eq!(lu.generation(), 3);
    }
}

#[test]
fn preempt_of_own_key_by_holder_changes_type_and_keeps_registration() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 1);
    assert_eq!(reserve(&mut lu, &a, 1, WE), Outcome::good());
    assert_eq!(
        out(&mut lu, &a, PrOutAction::Preempt, EA, 1, 1),
        Outcome::good()
    );
    assert_eq!(keys(&lu), vec![1]);
    assert_eq!(lu.reservation().map(|r| r.rtype.code()), Some(EA));
}

#[test]
fn preempt_without_reservation_removes_registrations_with_the_key() {
    let mut lu = unit();
    let (a, b, c) = (nexus("a"), nexus("b"), nexus("c"));
    register(&mut lu, &a, 1);
    register(&mut lu, &b, 2);
    register(&mut lu, &c, 2);
    assert_eq!(
        out(&mut lu, &a, PrOutAction::Preempt, WE, 1, 2),
        Outcome::good()
    );
    assert_eq!(keys(&lu), vec![1]);
    assert!(lu.reservation().is_none());
    assert_eq!(lu.generation(), 4);
}

#[test]
fn preempt_of_a_non_holder_key_removes_registrations_and_keeps_the_reservation() {
    let mut lu = unit();
    let (a, b, c) = (nexus("a"), nexus("b"), nexus("c"));
    register(&mut lu, &a, 1);
    register(&mut lu, &b, 2);
    register(&mut lu, &c, 3);
    assert_eq!(reserve(&mut lu, &a, 1, WE_RO), Outcome::good());
    assert_eq!(
        out(&mut lu, &b, PrOutAction::Preempt, WE, 2, 3),
        Outcome::good()
    );
    assert_eq!(keys(&lu), vec![1, 2]);
    assert_eq!(lu.reservation().map(|r| r.holder.clone()), Some(a));
}

#[test]
fn preempt_with_a_key_nobody_holds_is_a_conflict() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 1);
    assert_eq!(
        out(&mut lu, &a, PrOutAction::Preempt, WE, 1, 7),
        Outcome::ReservationConflict
    );
    assert_eq!(lu.generation(), 1);
}

#[test]
fn preempt_with_key_zero_without_all_registrants_reservation_is_invalid_field_in_parameter_list() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 1);
    let r = out(&mut lu, &a, PrOutAction::Preempt, WE, 1, 0);
    assert_eq!(r, refused(Sense::INVALID_FIELD_IN_PARAMETER_LIST));
    assert_eq!(reserve(&mut lu, &a, 1, WE), Outcome::good());
    let r = out(&mut lu, &a, PrOutAction::Preempt, WE, 1, 0);
    assert_eq!(r, refused(Sense::INVALID_FIELD_IN_PARAMETER_LIST));
}

#[test]
fn preempt_with_key_zero_under_all_registrants_removes_all_others_and_reserves_for_caller() {
    let mut lu = unit();
    let (a, b, c) = (nexus("a"), nexus("b"), nexus("c"));
    register(&mut lu, &a, 1);
    register(&mut lu, &b, 2);
    register(&mut lu, &c, 3);
    assert_eq!(reserve(&mut lu, &a, 1, WE_AR), Outcome::good());
    assert_eq!(
        out(&mut lu, &b, PrOutAction::Preempt, EA, 2, 0),
        Outcome::good()
    );
    assert_eq!(keys(&lu), vec![2]);
    let r = lu.reservation().unwrap();
    assert_eq!((r.holder.clone(), r.rtype.code()), (b, EA));
}

#[test]
fn preempt_with_nonzero_key_under_all_registrants_only_removes_those_registrations() {
    let mut lu = unit();
    let (a, b, c) = (nexus("a"), nexus("b"), nexus("c"));
    register(&mut lu, &a, 1);
    register(&mut lu, &b, 2);
    register(&mut lu, &c, 3);
    assert_eq!(reserve(&mut lu, &a, 1, EA_AR), Outcome::good());
    assert_eq!(
        out(&mut lu, &b, PrOutAction::Preempt, WE, 2, 3),
        Outcome::good()
    );
    assert_eq!(keys(&lu), vec![1, 2]);
    assert_eq!(lu.reservation().map(|r| r.rtype.code()), Some(EA_AR));
}

#[test]
fn preempt_under_all_registrants_with_the_creators_key_only_removes_registrations() {
    // SPC-4: under an all-registrants reservation a non-zero SERVICE ACTION
    // RESERVATION KEY removes registrations; the nexus that created the
    // reservation is not "the holder" whose reservation could be taken over.
    let mut lu = unit();
    let (a, b, c) = (nexus("a"), nexus("b"), nexus("c"));
    register(&mut lu, &a, 1);
    register(&mut lu, &b, 1);
    register(&mut lu, &c, 3);
    assert_eq!(reserve(&mut lu, &a, 1, WE_AR), Outcome::good());
    assert_eq!(
        out(&mut lu, &c, PrOutAction::Preempt, EA, 3, 1),
        Outcome::good()
    );
    assert_eq!(keys(&lu), vec![3]);
    let r = lu.reservation().unwrap();
    assert_eq!((r.holder.clone(), r.rtype.code()), (c, WE_AR));
}

#[test]
fn preempt_under_all_registrants_with_the_callers_own_key_removes_the_caller_too() {
    // SPC-4: "remove the registrations for all I_T nexuses specified by the
    // SERVICE ACTION RESERVATION KEY field" has no exception for the caller here.
    let mut lu = unit();
    let (a, b) = (nexus("a"), nexus("b"));
    register(&mut lu, &a, 1);
    register(&mut lu, &b, 2);
    assert_eq!(reserve(&mut lu, &a, 1, EA_AR), Outcome::good());
    assert_eq!(
        out(&mut lu, &b, PrOutAction::Preempt, WE, 2, 2),
        Outcome::good()
    );
    assert_eq!(keys(&lu), vec![1]);
    assert_eq!(lu.key_of(&b), None);
    let r = lu.reservation().unwrap();
    assert_eq!((r.holder.clone(), r.rtype.code()), (a, EA_AR));
}

#[test]
fn preempt_with_invalid_type_is_invalid_field_in_cdb() {
    let mut lu = unit();
    let (a, b) = (nexus("a"), nexus("b"));
    register(&mut lu, &a, 1);
    register(&mut lu, &b, 2);
    let r = out(&mut lu, &a, PrOutAction::PreemptAndAbort, 0x2, 1, 2);
    assert_eq!(r, refused(Sense::INVALID_FIELD_IN_CDB));
    assert_eq!(keys(&lu), vec![1, 2]);
}

#[test]
fn preempt_from_unregistered_nexus_is_a_conflict() {
    let mut lu = unit();
    register(&mut lu, &nexus("a"), 1);
    assert_eq!(
        out(&mut lu, &nexus("b"), PrOutAction::Preempt, WE, 0, 1),
        Outcome::ReservationConflict
    );
}

// --- REGISTER AND MOVE ---

fn move_cmd(
    lu: &mut LogicalUnit,
    from: &Nexus,
    key: u64,
    sa_key: u64,
    unreg: bool,
    port: u16,
    to: &str,
) -> Outcome {
    let list = build::move_list(key, sa_key, unreg, false, port, &TransportId::iscsi(to));
    let cdb = build::pr_out(PrOutAction::RegisterAndMove, 0, list.len() as u32);
    lu.execute(from, &cdb, &list)
}

#[test]
fn register_and_move_registers_destination_and_moves_the_reservation() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 1);
    assert_eq!(reserve(&mut lu, &a, 1, EA), Outcome::good());
    assert_eq!(move_cmd(&mut lu, &a, 1, 5, false, 2, "b"), Outcome::good());
    let b2 = Nexus::new(TransportId::iscsi("b"), 2);
    assert_eq!(lu.key_of(&b2), Some(5));
    assert_eq!(lu.key_of(&a), Some(1));
    assert_eq!(lu.reservation().map(|r| r.holder.clone()), Some(b2));
    assert_eq!(lu.generation(), 2);
}

#[test]
fn register_and_move_with_unreg_unregisters_the_source() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 1);
    assert_eq!(reserve(&mut lu, &a, 1, WE), Outcome::good());
    assert_eq!(move_cmd(&mut lu, &a, 1, 5, true, 1, "b"), Outcome::good());
    assert_eq!(lu.key_of(&a), None);
    lu.check_invariants().unwrap();
}

#[test]
fn register_and_move_keeps_the_scope_so_a_holder_moved_back_to_releases_with_lu_scope() {
    // SPC-4: the moved reservation keeps its scope and type; the new holder
    // releases it with those values, also after it had moved it away before.
    let mut lu = unit();
    let (a, b) = (nexus("a"), Nexus::new(TransportId::iscsi("b"), 2));
    register(&mut lu, &a, 1);
    assert_eq!(reserve(&mut lu, &a, 1, WE_RO), Outcome::good());
    assert_eq!(move_cmd(&mut lu, &a, 1, 5, false, 2, "b"), Outcome::good());
    assert_eq!(move_cmd(&mut lu, &b, 5, 1, true, 1, "a"), Outcome::good());
    assert_eq!(lu.reservation().map(|r| r.scope), Some(Scope::LogicalUnit));
    assert_eq!(reserve(&mut lu, &a, 1, WE_RO), Outcome::good());
    assert_eq!(
        out(&mut lu, &a, PrOutAction::Release, WE_RO, 1, 0),
        Outcome::good()
    );
    assert_eq!(lu.reservation(), None);
}

#[test]
fn register_and_move_without_reservation_is_invalid_field_in_cdb() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 1);
    assert_eq!(
        move_cmd(&mut lu, &a, 1, 5, false, 1, "b"),
        refused(Sense::INVALID_FIELD_IN_CDB)
    );
}

#[test]
fn register_and_move_by_non_holder_or_under_all_registrants_is_a_conflict() {
    let mut lu = unit();
    let (a, b) = (nexus("a"), nexus("b"));
    register(&mut lu, &a, 1);
    register(&mut lu, &b, 2);
    assert_eq!(reserve(&mut lu, &a, 1, WE), Outcome::good());
    assert_eq!(
        move_cmd(&mut lu, &b, 2, 5, false, 1, "c"),
        Outcome::ReservationConflict
    );
    assert_eq!(
        out(&mut lu, &a, PrOutAction::Release, WE, 1, 0),
        Outcome::good()
    );
    assert_eq!(reserve(&mut lu, &a, 1, WE_AR), Outcome::good());
    assert_eq!(
        move_cmd(&mut lu, &a, 1, 5, false, 1, "c"),
        Outcome::ReservationConflict
    );
}

#[test]
fn register_and_move_to_own_nexus_or_unknown_port_or_zero_key_is_invalid_field_in_parameter_list() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 1);
    assert_eq!(reserve(&mut lu, &a, 1, WE), Outcome::good());
    let bad = refused(Sense::INVALID_FIELD_IN_PARAMETER_LIST);
    assert_eq!(move_cmd(&mut lu, &a, 1, 5, false, 1, "a"), bad);
    assert_eq!(move_cmd(&mut lu, &a, 1, 5, false, 9, "b"), bad);
    assert_eq!(move_cmd(&mut lu, &a, 1, 0, false, 1, "b"), bad);
}

#[test]
fn register_and_move_with_transport_id_beyond_list_is_parameter_list_length_error() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 1);
    let mut list = build::move_list(
        1,
        5,
        false,
        false,
        1,
        &TransportId::Sas {
            address: 0x0202_0202_0202_0202,
        },
    );
    list[23] = 200;
    let cdb = build::pr_out(PrOutAction::RegisterAndMove, 0, list.len() as u32);
    assert_eq!(
        lu.execute(&a, &cdb, &list),
        refused(Sense::PARAMETER_LIST_LENGTH_ERROR)
    );
}

// --- conflicts of other commands ---

#[test]
fn write_exclusive_lets_everyone_read_and_only_the_holder_write() {
    let mut lu = unit();
    let (a, b) = (nexus("a"), nexus("b"));
    register(&mut lu, &a, 1);
    register(&mut lu, &b, 2);
    assert_eq!(reserve(&mut lu, &a, 1, WE), Outcome::good());
    assert!(!lu.access_conflicts(&a, Access::Write));
    assert!(!lu.access_conflicts(&b, Access::Read));
    assert!(lu.access_conflicts(&b, Access::Write));
}

#[test]
fn exclusive_access_refuses_reads_and_writes_from_non_holders() {
    let mut lu = unit();
    let (a, b) = (nexus("a"), nexus("b"));
    register(&mut lu, &a, 1);
    register(&mut lu, &b, 2);
    assert_eq!(reserve(&mut lu, &a, 1, EA), Outcome::good());
    assert!(lu.access_conflicts(&b, Access::Read));
    assert!(lu.access_conflicts(&b, Access::Write));
    assert!(!lu.access_conflicts(&a, Access::Read));
}

#[test]
fn registrants_only_types_admit_registrants_and_refuse_others() {
    let mut lu = unit();
    let (a, b, c) = (nexus("a"), nexus("b"), nexus("c"));
    register(&mut lu, &a, 1);
    register(&mut lu, &b, 2);
    assert_eq!(reserve(&mut lu, &a, 1, EA_RO), Outcome::good());
    assert!(!lu.access_conflicts(&b, Access::Write));
    assert!(lu.access_conflicts(&c, Access::Read));
    assert_eq!(
        out(&mut lu, &a, PrOutAction::Release, EA_RO, 1, 0),
        Outcome::good()
    );
    assert_eq!(reserve(&mut lu, &a, 1, WE_RO), Outcome::good());
    assert!(!lu.access_conflicts(&c, Access::Read));
    assert!(lu.access_conflicts(&c, Access::Write));
}

#[test]
fn no_reservation_means_no_conflict() {
    let lu = unit();
    assert!(!lu.access_conflicts(&nexus("x"), Access::Write));
}

// --- PR IN payloads ---

#[test]
fn read_keys_reports_generation_length_and_keys_in_registration_order() {
    let mut lu = unit();
    register(&mut lu, &nexus("a"), 0x11);
    register(&mut lu, &nexus("b"), 0x22);
    let data = lu.execute(&nexus("a"), &build::read_keys(100), &[]);
    let mut expected = vec![0, 0, 0, 2, 0, 0, 0, 16];
    expected.extend(0x11u64.to_be_bytes());
    expected.extend(0x22u64.to_be_bytes());
    assert_eq!(data, Outcome::Good(expected));
}

#[test]
fn read_keys_is_truncated_to_the_allocation_length_but_reports_the_full_length() {
    let mut lu = unit();
    register(&mut lu, &nexus("a"), 0x11);
    let data = lu.execute(&nexus("a"), &build::read_keys(8), &[]);
    assert_eq!(data, Outcome::Good(vec![0, 0, 0, 1, 0, 0, 0, 8]));
    let data = lu.execute(&nexus("a"), &build::read_keys(0), &[]);
    assert_eq!(data, Outcome::Good(vec![]));
}

#[test]
fn read_reservation_reports_holder_key_scope_and_type() {
    let mut lu = unit();
    let a = nexus("a");
    let cdb = build::pr_in(PrInAction::ReadReservation, 100);
    assert_eq!(
        lu.execute(&a, &cdb, &[]),
        Outcome::Good(vec![0, 0, 0, 0, 0, 0, 0, 0])
    );
    register(&mut lu, &a, 0x42);
    assert_eq!(reserve(&mut lu, &a, 0x42, WE_RO), Outcome::good());
    let mut expected = vec![0, 0, 0, 1, 0, 0, 0, 16];
    expected.extend(0x42u64.to_be_bytes());
    expected.extend([0, 0, 0, 0, 0, WE_RO, 0, 0]);
    assert_eq!(lu.execute(&a, &cdb, &[]), Outcome::Good(expected));
}

#[test]
fn read_reservation_of_all_registrants_type_reports_key_zero() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 0x42);
    assert_eq!(reserve(&mut lu, &a, 0x42, EA_AR), Outcome::good());
    let data = lu.execute(&a, &build::pr_in(PrInAction::ReadReservation, 100), &[]);
    assert_eq!(data.data()[8..16], [0; 8]);
    assert_eq!(data.data()[21], EA_AR);
}

#[test]
fn report_capabilities_reports_supported_types_and_aptpl_state() {
    let mut lu = unit();
    let cdb = build::pr_in(PrInAction::ReportCapabilities, 100);
    let data = lu.execute(&nexus("a"), &cdb, &[]);
    assert_eq!(
        data,
        Outcome::Good(vec![0, 8, 0x0D, 0x80, 0xEA, 0x01, 0, 0])
    );
    let (c, l) = build::register(0, 1, true);
    assert_eq!(lu.execute(&nexus("a"), &c, &l), Outcome::good());
    assert_eq!(lu.execute(&nexus("a"), &cdb, &[]).data()[3], 0x81);
}

#[test]
fn read_full_status_describes_every_registration_with_holder_flag_and_transport_id() {
    let mut lu = unit();
    let (a, b) = (
        nexus("a"),
        Nexus::new(
            TransportId::Sas {
                address: 0x0707_0707_0707_0707,
            },
            2,
        ),
    );
    register(&mut lu, &a, 0x11);
    register(&mut lu, &b, 0x22);
    assert_eq!(reserve(&mut lu, &b, 0x22, EA), Outcome::good());
    let out = lu.execute(&a, &build::pr_in(PrInAction::ReadFullStatus, 1000), &[]);
    assert_eq!(out.status(), Status::GOOD.as_u8());
    let data = out.data();
    let tid_a = TransportId::iscsi("a").to_bytes().unwrap();
    let first_len = 24 + tid_a.len();
    assert_eq!(data[4..8], ((first_len + 48) as u32).to_be_bytes());
    let first = &data[8..8 + first_len];
    assert_eq!(first[0..8], 0x11u64.to_be_bytes());
    assert_eq!(first[12..14], [0, 0]);
    assert_eq!(first[18..20], [0, 1]);
    assert_eq!(first[24..], tid_a[..]);
    let second = &data[8 + first_len..];
    assert_eq!(second[0..8], 0x22u64.to_be_bytes());
    assert_eq!(second[12..14], [0x01, EA]);
    assert_eq!(second[18..20], [0, 2]);
    assert_eq!(second[20..24], [0, 0, 0, 24]);
    assert_eq!(
        second[24..],
        TransportId::Sas {
            address: 0x0707_0707_0707_0707
        }
        .to_bytes()
        .unwrap()[..]
    );
}

#[test]
fn pr_in_does_not_change_the_generation() {
    let mut lu = unit();
    register(&mut lu, &nexus("a"), 1);
    for action in [
        PrInAction::ReadKeys,
        PrInAction::ReadReservation,
        PrInAction::ReportCapabilities,
        PrInAction::ReadFullStatus,
    ] {
        let _ = lu.execute(&nexus("b"), &build::pr_in(action, 100), &[]);
    }
    assert_eq!(lu.generation(), 1);
}

#[test]
fn state_round_trips_through_json() {
    let mut lu = unit();
    let a = nexus("a");
    register(&mut lu, &a, 1);
    assert_eq!(reserve(&mut lu, &a, 1, WE_AR), Outcome::good());
    let json = serde_json::to_string(&lu).unwrap();
    let back: LogicalUnit = serde_json::from_str(&json).unwrap();
    assert_eq!(back, lu);
}

#[test]
fn a_full_registration_table_answers_insufficient_registration_resources_and_changes_nothing() {
    let mut lu = unit();
    for i in 0..crate::MAX_REGISTRATIONS {
        register(&mut lu, &nexus(&format!("i{i}")), 0x100 + i as u64);
    }
    let generation = lu.generation();
    let full = Outcome::CheckCondition(Sense::INSUFFICIENT_REGISTRATION_RESOURCES);
    // A new nexus, by REGISTER and by REGISTER AND IGNORE EXISTING KEY.
    let late = nexus("late");
    assert_eq!(out(&mut lu, &late, PrOutAction::Register, 0, 0, 9), full);
    assert_eq!(
        out(
            &mut lu,
            &late,
            PrOutAction::RegisterAndIgnoreExistingKey,
            0,
            0,
            9
        ),
        full
    );
    assert_eq!(full.sense().unwrap().fixed_bytes()[12..14], [0x55, 0x04]);
    assert_eq!(full.sense().unwrap().key, 0x05);
    assert_eq!(lu.registrations().len(), crate::MAX_REGISTRATIONS);
    assert_eq!(lu.generation(), generation);
    assert_eq!(lu.key_of(&late), None);
    // A registered nexus still changes its key and unregisters, which makes room.
    let first = nexus("i0");
    assert_eq!(
        out(&mut lu, &first, PrOutAction::Register, 0, 0x100, 0x42),
        Outcome::good()
    );
    assert_eq!(
        out(&mut lu, &first, PrOutAction::Register, 0, 0x42, 0),
        Outcome::good()
    );
    register(&mut lu, &late, 9);
    assert_eq!(lu.registrations().len(), crate::MAX_REGISTRATIONS);
    lu.check_invariants().unwrap();
}

#[test]
fn spec_i_pt_beyond_the_table_registers_nobody() {
    let mut lu = unit();
    for i in 0..crate::MAX_REGISTRATIONS - 2 {
        register(&mut lu, &nexus(&format!("i{i}")), 0x100 + i as u64);
    }
    // The caller and two named initiators: one too many.
    let tids = [TransportId::iscsi("b"), TransportId::iscsi("c")];
    let list = build::basic_list(
        0,
        7,
        Flags {
            spec_i_pt: true,
            ..Flags::default()
        },
        &tids,
    );
    let cdb = build::pr_out(PrOutAction::Register, 0, list.len() as u32);
    assert_eq!(
        lu.execute(&nexus("a"), &cdb, &list),
        Outcome::CheckCondition(Sense::INSUFFICIENT_REGISTRATION_RESOURCES)
    );
    assert_eq!(lu.registrations().len(), crate::MAX_REGISTRATIONS - 2);
    assert_eq!(lu.key_of(&nexus("b")), None);
}

#[test]
fn register_and_move_to_a_new_nexus_needs_room_in_a_full_table() {
    let mut lu = unit();
    let a = nexus("i0");
    for i in 0..crate::MAX_REGISTRATIONS {
        register(&mut lu, &nexus(&format!("i{i}")), 0x100 + i as u64);
    }
    assert_eq!(reserve(&mut lu, &a, 0x100, WE), Outcome::good());
    let list = build::move_list(0x100, 0x77, true, false, 1, &TransportId::iscsi("new"));
    let cdb = build::pr_out(PrOutAction::RegisterAndMove, 0, list.len() as u32);
    assert_eq!(
        lu.execute(&a, &cdb, &list),
        Outcome::CheckCondition(Sense::INSUFFICIENT_REGISTRATION_RESOURCES)
    );
    assert_eq!(lu.reservation().unwrap().holder, a);
    // To a nexus already registered there is no new entry: it moves.
    let list = build::move_list(0x100, 0x77, false, false, 1, &TransportId::iscsi("i1"));
    assert_eq!(lu.execute(&a, &cdb, &list), Outcome::good());
    assert_eq!(lu.reservation().unwrap().holder, nexus("i1"));
}
