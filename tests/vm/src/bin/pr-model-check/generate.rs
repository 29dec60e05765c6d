//! Random PR commands from two initiators, biased towards ones that succeed (the
//! right key most of the time) so that the sequence reaches interesting states.

use pr_target::build::{self, Flags};
use pr_target::{LogicalUnit, Nexus, PrInAction, PrOutAction};

use crate::device::Path;
use crate::rng::Rng;

/// One command of the sequence.
#[derive(Clone, Debug)]
pub struct Command {
    pub path: Path,
    pub label: String,
    pub cdb: Vec<u8>,
    pub data_out: Vec<u8>,
}

/// Keys the sequence uses; small so that collisions (shared keys) happen.
const KEYS: [u64; 4] = [0xA1, 0xB2, 0xC3, 0x1234_5678_9ABC_DEF0];
const VALID_TYPES: [u8; 6] = [0x1, 0x3, 0x5, 0x6, 0x7, 0x8];
const INVALID_TYPES: [u8; 3] = [0x0, 0x2, 0x9];

/// `everything`: also generate what the real device cannot take (REGISTER with
/// SPEC_I_PT naming the other initiator, PREEMPT AND ABORT, allocation lengths
/// below 8; see check.rs).
pub fn generate(
    rng: &mut Rng,
    model: &LogicalUnit,
    nexus: &[Nexus; 2],
    everything: bool,
) -> Command {
    let path = if rng.one_in(2) { Path::A } else { Path::B };
    let me = &nexus[path.index()];
    let other = &nexus[path.other().index()];
    let own_key = model.key_of(me).unwrap_or(0);
    let other_key = model.key_of(other).unwrap_or(0);
    // The reservation key field: right most of the time.
    let key = if rng.one_in(6) {
        rng.pick(&KEYS)
    } else {
        own_key
    };
    let fresh_key = rng.pick(&KEYS);
    let type_code = if rng.one_in(12) {
        rng.pick(&INVALID_TYPES)
    } else {
        rng.pick(&VALID_TYPES)
    };
    let aptpl = rng.one_in(4);
    let flags = Flags {
        aptpl,
        ..Flags::default()
    };
    let out = |action: PrOutAction, type_code: u8, key: u64, sa_key: u64, flags: Flags| {
        let (cdb, list) = build::out_command(action, type_code, key, sa_key, flags);
        (cdb.to_vec(), list)
    };
    let (label, (cdb, data_out)) = match rng.below(26) {
        0..=3 => {
            let sa_key = if rng.one_in(5) { 0 } else { fresh_key };
            let label = format!("REGISTER key={key:#x} sa_key={sa_key:#x} aptpl={aptpl}");
            (label, out(PrOutAction::Register, 0, key, sa_key, flags))
        }
        4..=5 => {
            let sa_key = if rng.one_in(5) { 0 } else { fresh_key };
            let label =
                format!("REGISTER_AND_IGNORE key={key:#x} sa_key={sa_key:#x} aptpl={aptpl}");
            let action = PrOutAction::RegisterAndIgnoreExistingKey;
            (label, out(action, 0, key, sa_key, flags))
        }
        6..=9 => {
            let label = format!("RESERVE key={key:#x} type={type_code:#x}");
            (
                label,
                out(PrOutAction::Reserve, type_code, key, 0, Flags::default()),
            )
        }
        10..=11 => {
            let held = model.reservation().map(|r| r.rtype.code());
            let type_code = match held {
                Some(code) if !rng.one_in(4) => code,
                _ => type_code,
            };
            let label = format!("RELEASE key={key:#x} type={type_code:#x}");
            (
                label,
                out(PrOutAction::Release, type_code, key, 0, Flags::default()),
            )
        }
        12 => {
            let label = format!("CLEAR key={key:#x}");
            (label, out(PrOutAction::Clear, 0, key, 0, Flags::default()))
        }
        13..=16 => {
            let sa_key = match rng.below(6) {
                0 => 0,
                1 => own_key,
                2 => fresh_key,
                _ => other_key,
            };
            let action = if everything && rng.one_in(3) {
                PrOutAction::PreemptAndAbort
            } else {
                PrOutAction::Preempt
            };
            let label = format!("{action:?} key={key:#x} sa_key={sa_key:#x} type={type_code:#x}");
            (label, out(action, type_code, key, sa_key, Flags::default()))
        }
        17..=18 => {
            let unreg = rng.one_in(2);
            let sa_key = if rng.one_in(8) { 0 } else { fresh_key };
            let list = build::move_list(
                key,
                sa_key,
                unreg,
                aptpl,
                other.target_port,
                &other.initiator,
            );
            let cdb = build::pr_out(PrOutAction::RegisterAndMove, 0, list.len() as u32);
            let label =
                format!("REGISTER_AND_MOVE key={key:#x} sa_key={sa_key:#x} unreg={unreg} to=other");
            (label, (cdb.to_vec(), list))
        }
        19 if everything => {
            let flags = Flags {
                spec_i_pt: true,
                ..flags
            };
            let list = build::basic_list(
                key,
                fresh_key,
                flags,
                std::slice::from_ref(&other.initiator),
            );
            let cdb = build::pr_out(PrOutAction::Register, 0, list.len() as u32);
            let label =
                format!("REGISTER_SPEC_I_PT key={key:#x} sa_key={fresh_key:#x} names=other");
            (label, (cdb.to_vec(), list))
        }
        _ => {
            let action = rng.pick(&[
                PrInAction::ReadKeys,
                PrInAction::ReadReservation,
                PrInAction::ReportCapabilities,
                PrInAction::ReadFullStatus,
            ]);
            let allocation = if rng.one_in(6) {
                rng.pick(if everything {
                    &[0u16, 8, 12, 30][..]
                } else {
                    &[8u16, 12, 30][..]
                })
            } else {
                8192
            };
            let label = format!("{action:?} alloc={allocation}");
            (
                label,
                (build::pr_in(action, allocation).to_vec(), Vec::new()),
            )
        }
    };
    Command {
        path,
        label,
        cdb,
        data_out,
    }
}
