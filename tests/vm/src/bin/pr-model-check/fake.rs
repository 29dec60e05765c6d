//! A fake device for host tests: a second `pr-target`, optionally with unit
//! attentions (as LIO raises them) or with a deliberate bug.

use pr_target::build::{self, Flags};
use pr_target::{LogicalUnit, Nexus, Outcome, PrOutAction, ReservationType, TransportId};

use crate::device::{Device, DeviceError, Path, Reply, UNIT_ATTENTION};

pub enum Bug {
    /// RELEASE ignores its TYPE field (never INVALID RELEASE OF PERSISTENT RESERVATION).
    ReleaseIgnoresType,
    /// RELEASE by the holder of a WE/EA/registrants-only reservation is always a
    /// RESERVATION CONFLICT (LIO's difference 14 without its cause).
    HolderReleaseConflicts,
}

pub struct FakeDevice {
    pub lu: LogicalUnit,
    pub nexus: [Nexus; 2],
    /// Raise REGISTRATIONS PREEMPTED on the other path after a GOOD PR OUT that
    /// removes registrations (PREEMPT, CLEAR).
    pub unit_attentions: bool,
    pub bug: Option<Bug>,
    /// Behave like LIO where check.rs lists a deliberate difference that changes
    /// state: unregistering does not advance PRgeneration (8), PREEMPT under an
    /// all-registrants reservation (13), the stale scope after REGISTER AND MOVE (14).
    pub lio_quirks: bool,
    /// Behave like LIO of the 7.x kernel for deliberate difference 15: a PREEMPT's
    /// TYPE is checked only where it would take the reservation over.
    pub lio7_preempt_type: bool,
    /// How often differences 13, 14 and 15 were played.
    pub quirks_played: [usize; 3],
    /// Per path, the scope LIO keeps in that nexus's registration (difference 14).
    lio_scope: [u8; 2],
    pending: [bool; 2],
}

impl FakeDevice {
    pub fn new() -> FakeDevice {
        let nexus = [
            Nexus::new(
                TransportId::Sas {
                    address: 0x5001_4050_0000_0A01,
                },
                1,
            ),
            Nexus::new(
                TransportId::Sas {
                    address: 0x5001_4050_0000_0A02,
                },
                2,
            ),
        ];
        FakeDevice {
            lu: LogicalUnit::new(vec![1, 2]),
            nexus,
            unit_attentions: false,
            bug: None,
            lio_quirks: true,
            lio7_preempt_type: false,
            quirks_played: [0; 3],
            lio_scope: [0; 2],
            pending: [false; 2],
        }
    }
}

impl Device for FakeDevice {
    fn execute(&mut self, path: Path, cdb: &[u8], data_out: &[u8]) -> Result<Reply, DeviceError> {
        if std::mem::take(&mut self.pending[path.index()]) {
            return Ok(Reply {
                status: 0x02,
                sense: Some((UNIT_ATTENTION, 0x2A, 0x05)),
                data: Vec::new(),
            });
        }
        let mut cdb = cdb.to_vec();
        let is_release = cdb.first() == Some(&0x5F) && cdb.get(1).map(|sa| sa & 0x1F) == Some(0x02);
        if let (Some(Bug::ReleaseIgnoresType), true, Some(held)) =
            (&self.bug, is_release, self.lu.reservation())
        {
            cdb[2] = held.rtype.code();
        }
        let nexus = self.nexus[path.index()].clone();
        let registered = self.lu.key_of(&nexus).is_some();
        let before = self.lu.clone();
        let outcome = if self.lio_quirks {
            self.quirky_execute(path, &cdb, data_out)
        } else {
            self.lu.execute(&nexus, &cdb, data_out)
        };
        let is_register = cdb.first() == Some(&0x5F)
            && matches!(cdb.get(1).map(|sa| sa & 0x1F), Some(0x00 | 0x06));
        if self.lio_quirks && is_register && registered && self.lu.key_of(&nexus).is_none() {
            let generation = self.lu.generation().wrapping_sub(1);
            self.lu.set_generation(generation);
        }
        if self.lio_quirks && outcome.status() == 0 {
            self.keep_lio_scope(&before, path, &cdb);
        }
        let removes = matches!(cdb.get(1).map(|sa| sa & 0x1F), Some(0x03..=0x05));
        if self.unit_attentions && cdb.first() == Some(&0x5F) && outcome.status() == 0 && removes {
            self.pending[path.other().index()] = true;
        }
        Ok(match outcome {
            Outcome::Good(data) => Reply {
                status: 0,
                sense: None,
                data,
            },
            Outcome::ReservationConflict => Reply {
                status: 0x18,
                sense: None,
                data: Vec::new(),
            },
            Outcome::CheckCondition(s) => Reply {
                status: 0x02,
                sense: Some((s.key, s.asc, s.ascq)),
                data: Vec::new(),
            },
        })
    }
}

/// The fields of a PR OUT command the LIO quirks look at.
struct OutFields {
    action: u8,
    type_code: u8,
    scope: u8,
    key: u64,
    sa_key: u64,
}

fn out_fields(cdb: &[u8], data_out: &[u8]) -> Option<OutFields> {
    let key = |range: std::ops::Range<usize>| {
        data_out
            .get(range)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
    };
    match cdb {
        [0x5F, sa, type_and_scope, ..] => Some(OutFields {
            action: sa & 0x1F,
            type_code: type_and_scope & 0x0F,
            scope: type_and_scope & 0xF0,
            key: key(0..8)?,
            sa_key: key(8..16)?,
        }),
        _ => None,
    }
}

impl FakeDevice {
    /// The model's answer, except where LIO answers otherwise (differences 13, 14).
    fn quirky_execute(&mut self, path: Path, cdb: &[u8], data_out: &[u8]) -> Outcome {
        let me = self.nexus[path.index()].clone();
        let other = self.nexus[path.other().index()].clone();
        if let Some(outcome) = self.lio7_preempt(&me, cdb, data_out) {
            return outcome;
        }
        let (Some(fields), Some(reservation)) = (out_fields(cdb, data_out), self.lu.reservation())
        else {
            return self.lu.execute(&me, cdb, data_out);
        };
        let holder = reservation.holder.clone();
        let rtype = reservation.rtype;
        let key_ok = self.lu.key_of(&me) == Some(fields.key);
        let release_or_reserve = fields.action == PrOutAction::Release.code()
            || fields.action == PrOutAction::Reserve.code();
        let always = matches!(self.bug, Some(Bug::HolderReleaseConflicts))
            && fields.action == PrOutAction::Release.code();
        if release_or_reserve
            && key_ok
            && holder == me
            && !rtype.all_registrants()
            && (always || self.lio_scope[path.index()] != fields.scope)
        {
            // 14: LIO compares the CDB's scope with the one in the registration.
            self.quirks_played[1] += 1;
            return Outcome::ReservationConflict;
        }
        let all_registrants_preempt = fields.action == PrOutAction::Preempt.code()
            && key_ok
            && fields.scope == 0
            && ReservationType::from_code(fields.type_code).is_some()
            && rtype.all_registrants()
            && fields.sa_key != 0;
        let holder_key = self.lu.key_of(&holder);
        if !all_registrants_preempt
            || (holder_key != Some(fields.sa_key) && self.lu.key_of(&me) != Some(fields.sa_key))
        {
            return self.lu.execute(&me, cdb, data_out);
        }
        // 13: LIO's own rules, written with the two nexuses this fake has.
        self.quirks_played[0] += 1;
        let generation = self.lu.generation();
        let run = |lu: &mut LogicalUnit, action, type_code, sa_key| {
            let (cdb, list) =
                build::out_command(action, type_code, fields.key, sa_key, Flags::default());
            lu.execute(&me, &cdb, &list)
        };
        if holder_key == Some(fields.sa_key) {
            if self.lu.key_of(&other) == Some(fields.sa_key) {
                // The other nexus loses its registration, the caller takes over.
                run(&mut self.lu, PrOutAction::Preempt, fields.type_code, 0);
            } else {
                // Nobody else has the key: the caller's reservation changes type.
                run(&mut self.lu, PrOutAction::Release, rtype.code(), 0);
                run(&mut self.lu, PrOutAction::Reserve, fields.type_code, 0);
            }
        }
        // Otherwise the key is only the caller's own, which LIO keeps: no change.
        self.lu.set_generation(generation.wrapping_add(1));
        Outcome::Good(Vec::new())
    }

    /// 15: a PREEMPT with an invalid TYPE, as the 7.x kernel's LIO answers it: the
    /// TYPE is replaced by a valid one, and only a PREEMPT that would then change the
    /// reservation is refused for it. `None` for every other command.
    fn lio7_preempt(&mut self, me: &Nexus, cdb: &[u8], data_out: &[u8]) -> Option<Outcome> {
        let fields = out_fields(cdb, data_out)?;
        if !self.lio7_preempt_type
            || fields.action != PrOutAction::Preempt.code()
            || ReservationType::from_code(fields.type_code).is_some()
        {
            return None;
        }
        let mut lu = self.lu.clone();
        let mut valid = cdb.to_vec();
        valid[2] = fields.scope | ReservationType::WriteExclusive.code();
        let outcome = lu.execute(me, &valid, data_out);
        let reservation = |lu: &LogicalUnit| lu.reservation().map(|r| (r.holder.clone(), r.rtype));
        if reservation(&lu) != reservation(&self.lu) {
            return None;
        }
        self.quirks_played[2] += 1;
        self.lu = lu;
        Some(outcome)
    }

    /// Keeps `lio_scope` as LIO keeps the scope in its registrations, after a GOOD
    /// PR OUT: set by RESERVE and PREEMPT for the new holder, cleared when a holder
    /// is released or a registration goes, and REGISTER AND MOVE writes the TYPE code
    /// into the source's scope while the destination keeps its own.
    fn keep_lio_scope(&mut self, before: &LogicalUnit, path: Path, cdb: &[u8]) {
        let action = match cdb {
            [0x5F, sa, ..] => sa & 0x1F,
            _ => return,
        };
        let holder = |lu: &LogicalUnit| lu.reservation().map(|r| (r.holder.clone(), r.rtype));
        if action == PrOutAction::RegisterAndMove.code() {
            if let Some((_, rtype)) = holder(before) {
                self.lio_scope[path.index()] = rtype.code();
            }
        } else if holder(before) != holder(&self.lu) || action == PrOutAction::Preempt.code() {
            for (i, n) in self.nexus.iter().enumerate() {
                let was = holder(before).is_some_and(|(h, _)| h == *n);
                let is = holder(&self.lu).is_some_and(|(h, _)| h == *n);
                if was || is {
                    self.lio_scope[i] = 0;
                }
            }
        }
        for (i, n) in self.nexus.iter().enumerate() {
            if self.lu.key_of(n).is_none() {
                self.lio_scope[i] = 0;
            }
        }
    }
}
