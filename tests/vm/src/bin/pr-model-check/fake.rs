//! A fake device for host tests: a second `pr-target`, optionally with unit
//! attentions (as LIO raises them) or with a deliberate bug.

use pr_target::{Initiator, LogicalUnit, Nexus, Outcome};

use crate::device::{Device, DeviceError, Path, Reply, UNIT_ATTENTION};

pub enum Bug {
    /// RELEASE ignores its TYPE field (never INVALID RELEASE OF PERSISTENT RESERVATION).
    ReleaseIgnoresType,
}

pub struct FakeDevice {
    pub lu: LogicalUnit,
    pub nexus: [Nexus; 2],
    /// Raise REGISTRATIONS PREEMPTED on the other path after a GOOD PR OUT that
    /// removes registrations (PREEMPT, CLEAR).
    pub unit_attentions: bool,
    pub bug: Option<Bug>,
    /// Behave like LIO where check.rs lists a deliberate difference that changes
    /// state (unregistering does not advance PRgeneration).
    pub lio_quirks: bool,
    pending: [bool; 2],
}

impl FakeDevice {
    pub fn new() -> FakeDevice {
        let nexus = [
            Nexus::new(
                Initiator::Sas([0x50, 0x01, 0x40, 0x50, 0, 0, 0x0A, 0x01]),
                1,
            ),
            Nexus::new(
                Initiator::Sas([0x50, 0x01, 0x40, 0x50, 0, 0, 0x0A, 0x02]),
                2,
            ),
        ];
        FakeDevice {
            lu: LogicalUnit::new(vec![1, 2]),
            nexus,
            unit_attentions: false,
            bug: None,
            lio_quirks: true,
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
        let nexus = &self.nexus[path.index()];
        let registered = self.lu.key_of(nexus).is_some();
        let outcome = self.lu.execute(nexus, &cdb, data_out);
        let is_register = cdb.first() == Some(&0x5F)
            && matches!(cdb.get(1).map(|sa| sa & 0x1F), Some(0x00 | 0x06));
        if self.lio_quirks && is_register && registered && self.lu.key_of(nexus).is_none() {
            let generation = self.lu.generation().wrapping_sub(1);
            self.lu.set_generation(generation);
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
