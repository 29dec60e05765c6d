//! What the property tests share: three initiators, a few keys, and random PR
//! commands (valid and not) encoded as CDB and data-out.

use pr_target::{PrInAction, PrOutAction, build};
use proptest::prelude::*;
use scsi::sense::Sense;

use blk_pr::ScsiOutcome;
use blk_pr::nvme::HostId;

pub const HOSTS: [HostId; 3] = [HostId([0x11; 16]), HostId([0x22; 16]), HostId([0x33; 16])];
pub const KEYS: [u64; 4] = [0, 0xA1, 0xB2, 0xC3];

/// How the parameter list's length relates to what the CDB and the content say.
#[derive(Clone, Copy, Debug)]
pub enum ListLength {
    Exact,
    /// PARAMETER LIST LENGTH one byte short (and the list cut to it).
    OneShort,
    /// PARAMETER LIST LENGTH one byte long (a zero byte appended).
    OneLong,
    /// PARAMETER LIST LENGTH right, but fewer bytes sent.
    Missing,
}

/// A PERSISTENT RESERVE OUT command's fields, valid or not.
#[derive(Clone, Copy, Debug)]
pub struct OutCommand {
    /// 0-8 are SPC-4's service actions, 9 is none.
    pub action: u8,
    /// The SCOPE/TYPE byte: any TYPE nibble, reserved ones and a reserved scope too.
    pub type_code: u8,
    pub key: u64,
    pub sa_key: u64,
    pub aptpl: bool,
    pub all_tg_pt: bool,
    pub spec_i_pt: bool,
    pub length: ListLength,
    /// REGISTER AND MOVE's destination.
    pub destination: usize,
}

#[derive(Clone, Debug)]
pub enum Command {
    Out(OutCommand),
    In {
        action: PrInAction,
        allocation_length: u16,
    },
}

pub fn command() -> impl Strategy<Value = Command> {
    let key = prop::sample::select(KEYS.to_vec());
    let type_code = prop_oneof![
        6 => prop::sample::select(vec![1u8, 3, 5, 6, 7, 8]),
        1 => prop::sample::select(vec![0u8, 2, 4, 9, 0x15]),
    ];
    let length = prop_oneof![
        20 => Just(ListLength::Exact),
        1 => Just(ListLength::OneShort),
        1 => Just(ListLength::OneLong),
        1 => Just(ListLength::Missing),
    ];
    let action = prop_oneof![
        6 => Just(0u8),
        2 => Just(6u8),
        4 => Just(1u8),
        3 => Just(2u8),
        1 => Just(3u8),
        3 => Just(4u8),
        2 => Just(5u8),
        1 => Just(7u8),
        1 => Just(8u8),
        1 => Just(9u8),
    ];
    let out = (
        action,
        type_code,
        key.clone(),
        key,
        any::<bool>(),
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.05),
        length,
        0..HOSTS.len(),
    )
        .prop_map(
            |(action, type_code, key, sa_key, aptpl, all_tg_pt, spec_i_pt, length, destination)| {
                Command::Out(OutCommand {
                    action,
                    type_code,
                    key,
                    sa_key,
                    aptpl,
                    all_tg_pt,
                    spec_i_pt,
                    length,
                    destination,
                })
            },
        );
    let allocation_length = prop_oneof![
        4 => Just(0xFFFFu16),
        1 => 0u16..300,
    ];
    let pr_in = (
        prop::sample::select(PrInAction::ALL.to_vec()),
        allocation_length,
    )
        .prop_map(|(action, allocation_length)| Command::In {
            action,
            allocation_length,
        });
    prop_oneof![3 => out, 1 => pr_in]
}

/// Both sides of a differential test.
pub trait Sides {
    /// The translation's answer.
    fn ours(&mut self, initiator: usize, cdb: &[u8], data_out: &[u8]) -> ScsiOutcome;
    /// The SCSI reference's answer, in the translation's words where they differ.
    fn reference(&mut self, initiator: usize, cdb: &[u8], data_out: &[u8]) -> ScsiOutcome;
    /// One command to both, and the check of their answers.
    fn step(&mut self, initiator: usize, command: &Command) -> Result<(), TestCaseError>;
    /// The PR IN service actions that show the whole state on this path.
    const STATE: &[PrInAction];

    /// Both sides read the same state.
    fn same_state(&mut self) -> Result<(), TestCaseError> {
        for &action in Self::STATE {
            let cdb = build::pr_in(action, 0xFFFF);
            let ours = self.ours(0, &cdb, &[]);
            let reference = self.reference(0, &cdb, &[]);
            prop_assert_eq!(ours, reference, "{:?} after the step", action);
        }
        Ok(())
    }
}

/// Runs a sequence, comparing the state after every command.
pub fn run(sides: &mut impl Sides, commands: &[(usize, Command)]) -> Result<(), TestCaseError> {
    for (initiator, command) in commands {
        sides.step(*initiator, command)?;
        sides.same_state()?;
    }
    Ok(())
}

/// The refusals both translations share, of the commands that would register or
/// reserve for another initiator (the README's difference tables): REGISTER AND
/// MOVE (INVALID FIELD IN CDB) and REGISTER with SPEC_I_PT (INVALID FIELD IN
/// PARAMETER LIST); `None` for every other command.
pub fn registers_another_initiator(command: &Command) -> Option<ScsiOutcome> {
    match *command {
        Command::Out(OutCommand { action, .. })
            if action == PrOutAction::RegisterAndMove.code() =>
        {
            Some(ScsiOutcome::check(Sense::INVALID_FIELD_IN_CDB))
        }
        Command::Out(OutCommand {
            action: 0,
            spec_i_pt: true,
            ..
        }) => Some(ScsiOutcome::check(Sense::INVALID_FIELD_IN_PARAMETER_LIST)),
        _ => None,
    }
}

/// The CDB and the data-out buffer of a command.
pub fn encode(command: &Command) -> (Vec<u8>, Vec<u8>) {
    match *command {
        Command::In {
            action,
            allocation_length,
        } => (build::pr_in(action, allocation_length).to_vec(), Vec::new()),
        Command::Out(out) => {
            let action = out.action;
            let mut list = if action == PrOutAction::RegisterAndMove.code() {
                let id = HOSTS[out.destination].transport_id();
                build::move_list(out.key, out.sa_key, false, out.aptpl, 1, &id)
            } else {
                let flags = build::Flags {
                    spec_i_pt: out.spec_i_pt,
                    all_tg_pt: out.all_tg_pt,
                    aptpl: out.aptpl,
                };
                build::basic_list(out.key, out.sa_key, flags, &[])
            };
            let mut declared = list.len();
            match out.length {
                ListLength::Exact => {}
                ListLength::OneShort => {
                    declared -= 1;
                    list.truncate(declared);
                }
                ListLength::OneLong => {
                    declared += 1;
                    list.push(0);
                }
                ListLength::Missing => list.truncate(declared - 4),
            }
            let mut cdb = build::pr_out(
                PrOutAction::Register,
                out.type_code,
                u32::try_from(declared).unwrap(),
            );
            cdb[1] = action;
            // The whole SCOPE/TYPE byte: a reserved scope too.
            cdb[2] = out.type_code;
            (cdb.to_vec(), list)
        }
    }
}
