//! Property tests: random command sequences from several nexuses keep SPC-4's invariants.

use proptest::prelude::*;

use crate::build::{self, Flags};
use crate::{Access, LogicalUnit, Nexus, Outcome, PrInAction, PrOutAction, TransportId};

#[derive(Clone, Debug)]
enum Command {
    Out {
        action: PrOutAction,
        type_code: u8,
        key: u64,
        sa_key: u64,
        aptpl: bool,
    },
    Move {
        key: u64,
        sa_key: u64,
        unreg: bool,
        to: usize,
    },
    In(PrInAction),
}

const KEYS: [u64; 4] = [0, 1, 2, 3];

fn nexuses() -> Vec<Nexus> {
    vec![
        Nexus::new(TransportId::iscsi("iqn.test:a"), 1),
        Nexus::new(TransportId::iscsi("iqn.test:b"), 1),
        Nexus::new(
            TransportId::Sas {
                address: 0x0505_0505_0505_0505,
            },
            2,
        ),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    let out_action = prop::sample::select(vec![
        PrOutAction::Register,
        PrOutAction::RegisterAndIgnoreExistingKey,
        PrOutAction::Reserve,
        PrOutAction::Release,
        PrOutAction::Clear,
        PrOutAction::Preempt,
        PrOutAction::PreemptAndAbort,
    ]);
    let type_code = prop::sample::select(vec![1u8, 3, 5, 6, 7, 8, 1, 3, 5, 6, 7, 8, 0, 2]);
    let key = prop::sample::select(KEYS.to_vec());
    prop_oneof![
        6 => (out_action, type_code, key.clone(), key.clone(), any::<bool>()).prop_map(
            |(action, type_code, key, sa_key, aptpl)| Command::Out { action, type_code, key, sa_key, aptpl }
        ),
        1 => (key.clone(), key, any::<bool>(), 0..3usize)
            .prop_map(|(key, sa_key, unreg, to)| Command::Move { key, sa_key, unreg, to }),
        1 => prop::sample::select(vec![PrInAction::ReadKeys, PrInAction::ReadReservation,
                                        PrInAction::ReportCapabilities, PrInAction::ReadFullStatus])
            .prop_map(Command::In),
    ]
}

/// Does SPC-4 say this command, completed with GOOD, bumps PRgeneration?
fn bumps_generation(before: &LogicalUnit, from: &Nexus, command: &Command) -> bool {
    match command {
        Command::In(_) => false,
        Command::Move { .. } => true,
        Command::Out { action, sa_key, .. } => match action {
            PrOutAction::Register | PrOutAction::RegisterAndIgnoreExistingKey => {
                // An unregistered nexus "registering" key 0 does nothing at all.
                before.key_of(from).is_some() || *sa_key != 0
            }
            PrOutAction::Reserve | PrOutAction::Release => false,
            _ => true,
        },
    }
}

fn run(lu: &mut LogicalUnit, all: &[Nexus], from: &Nexus, command: &Command) -> Outcome {
    match command {
        Command::Out {
            action,
            type_code,
            key,
            sa_key,
            aptpl,
        } => {
            let flags = Flags {
                aptpl: *aptpl,
                ..Flags::default()
            };
            let (cdb, list) = build::out_command(*action, *type_code, *key, *sa_key, flags);
            lu.execute(from, &cdb, &list)
        }
        Command::Move {
            key,
            sa_key,
            unreg,
            to,
        } => {
            let dest = &all[*to];
            let list = build::move_list(
                *key,
                *sa_key,
                *unreg,
                false,
                dest.target_port,
                &dest.initiator,
            );
            let cdb = build::pr_out(PrOutAction::RegisterAndMove, 0, list.len() as u32);
            lu.execute(from, &cdb, &list)
        }
        Command::In(action) => lu.execute(from, &build::pr_in(*action, 8192), &[]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_sequences_keep_invariants(steps in prop::collection::vec((0..3usize, command()), 1..60)) {
        let all = nexuses();
        let mut lu = LogicalUnit::new(vec![1, 2]);
        for (who, command) in &steps {
            let from = &all[*who];
            let before = lu.clone();
            let outcome = run(&mut lu, &all, from, command);

            // A holder is always registered; keys are non-zero; one registration per nexus.
            prop_assert_eq!(lu.check_invariants(), Ok(()), "after {:?} from {}", command, who);

            // Refused commands and PR IN change nothing at all.
            if !matches!(outcome, Outcome::Good(_)) || matches!(command, Command::In(_)) {
                prop_assert_eq!(&lu, &before);
            }

            // The generation moves by one exactly on the commands SPC-4 names.
            let expected = if matches!(outcome, Outcome::Good(_)) && bumps_generation(&before, from, command) {
                before.generation().wrapping_add(1)
            } else {
                before.generation()
            };
            prop_assert_eq!(lu.generation(), expected, "after {:?} from {}", command, who);

            // All-registrants: every registrant is a holder, no registrant conflicts,
            // and READ RESERVATION shows no single holder's key.
            if let Some(r) = lu.reservation().filter(|r| r.rtype.all_registrants()).cloned() {
                prop_assert!(!lu.registrations().is_empty());
                for n in &all {
                    let registered = lu.key_of(n).is_some();
                    prop_assert_eq!(lu.is_holder(n), registered);
                    prop_assert_eq!(lu.access_conflicts(n, Access::Write), !registered);
                }
                let rr = lu.persistent_reserve_in(&build::pr_in(PrInAction::ReadReservation, 100));
                prop_assert_eq!(&rr.data()[8..16], &[0u8; 8][..]);
                prop_assert_eq!(rr.data()[21], r.rtype.code());
            }

            // READ KEYS agrees with the registrations.
            let keys = lu.persistent_reserve_in(&build::read_keys(8192));
            prop_assert_eq!(keys.data().len(), 8 + 8 * lu.registrations().len());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(cdb in prop::collection::vec(any::<u8>(), 0..16),
                                   data in prop::collection::vec(any::<u8>(), 0..80)) {
        let mut lu = LogicalUnit::new(vec![1]);
        let from = Nexus::new(TransportId::iscsi("x"), 1);
        let _ = lu.execute(&from, &cdb, &data);
        let mut pr_out = cdb.clone();
        if let Some(first) = pr_out.first_mut() {
            *first = 0x5F;
        }
        let _ = lu.execute(&from, &pr_out, &data);
        prop_assert_eq!(lu.check_invariants(), Ok(()));
    }

    #[test]
    fn arbitrary_spec_i_pt_transport_ids_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut lu = LogicalUnit::new(vec![1, 2]);
        let from = Nexus::new(TransportId::iscsi("x"), 1);
        let mut list = build::basic_list(0, 7, build::Flags { spec_i_pt: true, ..Default::default() }, &[]);
        list.truncate(24);
        list.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_be_bytes());
        list.extend_from_slice(&bytes);
        let cdb = build::pr_out(PrOutAction::Register, 0, u32::try_from(list.len()).unwrap());
        let _ = lu.execute(&from, &cdb, &list);
        prop_assert_eq!(lu.check_invariants(), Ok(()));
    }
}
