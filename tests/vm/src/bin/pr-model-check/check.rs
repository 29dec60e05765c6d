//! Plays a seeded command sequence against the device and the model and compares.
//!
//! Deliberate differences (documented, not counted as mismatches):
//! 1. REPORT CAPABILITIES byte 2 bit 4 (CRH) is masked: it depends on SPC-2
//!    RESERVE/RELEASE support, which `pr-target` does not have (the VM's LIO reports
//!    0 as well, so this mask has not fired yet).
//! 2. REPORT CAPABILITIES byte 3: PTPL_A (bit 0; when APTPL counts as active after the
//!    registrations that set it are gone is not pinned down) and ALLOW COMMANDS
//!    (bits 6:4; LIO reports 001b, `pr-target` serves no other command and says 000b).
//! 3. Unit attentions: `pr-target` does not model them. A device command answered
//!    with UNIT ATTENTION was not executed, so it is sent again (up to 4 times) and
//!    the attentions are only counted.
//! 4. PR OUT from an unregistered I_T nexus that SPC-4 answers with RESERVATION
//!    CONFLICT: LIO (Debian 6.1 kernel) answers some of them (RELEASE, REGISTER AND
//!    MOVE, seen) with CHECK CONDITION, NOT READY / LOGICAL UNIT COMMUNICATION
//!    FAILURE (02/08/00). Counted, not reported.
//! 5. PREEMPT AND ABORT is never sent to the device: on the VM's kernel (Debian 6.1)
//!    it wedged LIO's loopback LUN twice (a command that never completed, then a
//!    soft lockup in a kworker). The model's handling is covered by pr-target's tests.
//! 6. REGISTER with SPEC_I_PT is never generated: in the VM's loopback topology each
//!    initiator reaches only its own target port, and LIO answers a TransportID
//!    naming the other initiator with RESERVATION CONFLICT, where `pr-target` (which
//!    has no notion of which initiator ports exist) registers it.
//! 7. RELEASE with a wrong reservation key when there is nothing for the caller to
//!    release (no reservation, or the caller does not hold it): SPC-4 checks the key
//!    of every PR OUT (RESERVATION CONFLICT), LIO answers GOOD. Nothing changes on
//!    either side; counted, not reported.
//! 8. Unregistering (REGISTER or REGISTER AND IGNORE EXISTING KEY with SERVICE ACTION
//!    RESERVATION KEY 0) does not advance LIO's PRgeneration; SPC-4 (and `pr-target`)
//!    count every successful REGISTER. The model's counter is set back by one after
//!    each unregistration, so later payloads still compare exactly.
//! 9. READ FULL STATUS with an allocation length too short for the descriptors: LIO's
//!    ADDITIONAL LENGTH counts only the descriptors that fit, SPC-4 (and `pr-target`)
//!    report the full length. Only the generation is compared in that case.
//! 10. PR IN with an allocation length below 8 is never generated: LIO answers
//!     INVALID FIELD IN CDB, SPC-4 (and `pr-target`) return the truncated data.
//! 11. READ KEYS and READ RESERVATION cut by the allocation length: LIO zero-fills a
//!     key that does not fit whole, SPC-4 (and `pr-target`) transfer its first bytes.
//!     Only the header and the whole keys are compared in that case.
//! 12. RELEASE by the holder with a TYPE (or SCOPE) other than the reservation's:
//!     SPC-4 (and `pr-target`) answer ILLEGAL REQUEST / INVALID RELEASE OF PERSISTENT
//!     RESERVATION, LIO answers RESERVATION CONFLICT. Nothing changes on either side.
//!
//! 13. PREEMPT under an all-registrants reservation with a non-zero SERVICE ACTION
//!     RESERVATION KEY that is the key of the nexus that created (or last took) the
//!     reservation, or the caller's own key. SPC-4 (and `pr-target`): every
//!     registration with that key goes, the caller's included, and the all-registrants
//!     reservation stays while a registrant is left. LIO keeps one "holder"
//!     registration even for these types: when the key is that holder's, it preempts
//!     as if the reservation were held by it (the other nexuses with the key lose
//!     their registrations, the caller keeps its own and gets a reservation of the
//!     CDB's TYPE); otherwise it never removes the caller's registration. Seen with
//!     Debian's 6.1 kernel: afterwards LIO reports a WE/EA reservation held by the
//!     caller (or the caller still registered) where SPC-4 has an all-registrants
//!     reservation (or none, or the caller unregistered). Both answer GOOD; the two
//!     are then reset to an empty state (a resync) because their states differ.
//! 14. RELEASE (or RESERVE of the same type) by a holder that got the reservation by
//!     REGISTER AND MOVE after its own registration had earlier been the source of a
//!     REGISTER AND MOVE. SPC-4: the moved reservation keeps its scope (LU_SCOPE), so
//!     the holder's RELEASE with the reservation's type and LU_SCOPE is GOOD. LIO
//!     stores the scope per registration: a REGISTER AND MOVE writes the reservation's
//!     TYPE code into the source registration's scope and leaves the destination's as
//!     it was, so when such a registration is moved back to, LIO compares the CDB's
//!     LU_SCOPE with that stale value and answers RESERVATION CONFLICT (READ
//!     RESERVATION does not show it: the stale value lies in the low bits LIO masks
//!     off). The driver follows which registrations carry such a value
//!     (`lio_stale_scope`); LIO changes nothing, so the model's state before the
//!     command is put back.
//! 15. PREEMPT with a TYPE that is no reservation type (0, 2, 4, 9-F). `pr-target`
//!     (and LIO up to Debian's 6.1 kernel) refuse it first: ILLEGAL REQUEST /
//!     INVALID FIELD IN CDB. LIO of the 7.x kernel checks the TYPE only where the
//!     PREEMPT would take the reservation over; where it only removes registrations
//!     (no reservation, or the SERVICE ACTION RESERVATION KEY is not the holder's) it
//!     ignores the TYPE and answers by its other rules: RESERVATION CONFLICT (caller
//!     unregistered or wrong key), INVALID FIELD IN PARAMETER LIST (SERVICE ACTION
//!     RESERVATION KEY 0), or GOOD after removing the registrations with that key.
//!     Counted, and both sides are reset (a resync): the GOOD answers change LIO's
//!     state and not the model's.
//!
//! After a real mismatch the two may have diverged, so both are reset to an empty
//! state before the sequence goes on; each mismatch is reported once.

use pr_target::build::{self, Flags};
use pr_target::{
    LogicalUnit, Nexus, Outcome, PrInAction, PrOutAction, ReservationType, Sense, TransportId,
};

use crate::device::{Device, DeviceError, Path, Reply};
use crate::generate::{Command, generate};
use crate::rng::Rng;

/// Key used to take over and clear the LUN before a run.
const RESET_KEY: u64 = 0x5EED;
/// Keys the two initiators register during discovery.
const DISCOVERY_KEYS: [u64; 2] = [0x00D1_5C0A, 0x00D1_5C0B];
/// Resends of a command that got UNIT ATTENTION.
const UA_RETRIES: usize = 4;
/// NOT READY / LOGICAL UNIT COMMUNICATION FAILURE.
const LUN_COMMUNICATION_FAILURE: (u8, u8, u8) = (0x02, 0x08, 0x00);
/// Deliberately masked REPORT CAPABILITIES bits: (byte, mask).
const MASKED_CAPABILITY_BITS: [(usize, u8); 2] = [(2, 0x10), (3, 0x71)];

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{step}: {source}")]
    Device {
        step: String,
        #[source]
        source: DeviceError,
    },
    #[error("{step}: unexpected reply {reply:?}")]
    Unexpected { step: String, reply: Reply },
    #[error("discovery: READ FULL STATUS did not show both initiators ({0})")]
    Discovery(String),
}

/// What a run found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub commands: usize,
    pub mismatches: usize,
    pub unit_attentions: usize,
    /// Differences on the deliberate list above.
    pub deliberate: usize,
    /// Resets of both sides to an empty state: after a mismatch, or after deliberate
    /// difference 13.
    pub resyncs: usize,
}

pub struct Checker<D: Device> {
    device: D,
    pub nexus: [Nexus; 2],
    model: LogicalUnit,
    ports: Vec<u16>,
    summary: Summary,
    /// Per path: LIO's registration carries a stale scope value written by a
    /// REGISTER AND MOVE from it (deliberate difference 14).
    lio_stale_scope: [bool; 2],
}

impl<D: Device> Checker<D> {
    /// Resets the device and learns how it names the two initiators (TransportID and
    /// relative target port) from its own READ FULL STATUS.
    pub fn new(mut device: D) -> Result<Checker<D>, CheckError> {
        reset(&mut device)?;
        for path in [Path::A, Path::B] {
            let (cdb, list) = build::out_command(
                PrOutAction::RegisterAndIgnoreExistingKey,
                0,
                0,
                DISCOVERY_KEYS[path.index()],
                Flags::default(),
            );
            expect_good(&mut device, path, &cdb, &list, "discovery register")?;
        }
        let status = expect_good(
            &mut device,
            Path::A,
            &build::pr_in(PrInAction::ReadFullStatus, 8192),
            &[],
            "discovery read full status",
        )?;
        let found = parse_full_status(&status.data);
        let find = |key: u64| {
            found
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, n)| n.clone())
        };
        let (Some(a), Some(b)) = (find(DISCOVERY_KEYS[0]), find(DISCOVERY_KEYS[1])) else {
            return Err(CheckError::Discovery(format!("{found:?}")));
        };
        let mut ports = vec![a.target_port, b.target_port];
        ports.sort_unstable();
        ports.dedup();
        let mut checker = Checker {
            device,
            nexus: [a, b],
            model: LogicalUnit::new(ports.clone()),
            ports,
            summary: Summary::default(),
            lio_stale_scope: [false; 2],
        };
        checker.resync()?;
        checker.summary.resyncs = 0;
        Ok(checker)
    }

    /// The device, for tests that look at what a fake device played.
    #[cfg(test)]
    pub fn device(&self) -> &D {
        &self.device
    }

    /// Empties the device and the model, and aligns the model's generation.
    fn resync(&mut self) -> Result<(), CheckError> {
        reset(&mut self.device)?;
        let keys = expect_good(
            &mut self.device,
            Path::A,
            &build::read_keys(8),
            &[],
            "read generation",
        )?;
        let generation = keys
            .data
            .get(0..4)
            .map_or(0, |g| u32::from_be_bytes([g[0], g[1], g[2], g[3]]));
        self.model = LogicalUnit::new(self.ports.clone());
        self.model.set_generation(generation);
        self.lio_stale_scope = [false; 2];
        self.summary.resyncs += 1;
        Ok(())
    }

    /// Runs `count` commands from `seed`; prints one line per mismatch.
    pub fn run(
        &mut self,
        seed: u64,
        count: usize,
        out: &mut dyn FnMut(String),
    ) -> Result<Summary, CheckError> {
        let mut rng = Rng::new(seed);
        for index in 0..count {
            let command = generate(&mut rng, &self.model, &self.nexus, false);
            let reply = self.send(&command)?;
            let nexus = self.nexus[command.path.index()].clone();
            let registered = self.model.key_of(&nexus).is_some();
            let holder = self.model.is_holder(&nexus);
            let before = self.model.clone();
            let expected = self.model.execute(&nexus, &command.cdb, &command.data_out);
            self.summary.commands += 1;
            if !registered && is_lio_unregistered_refusal(&reply, &expected) {
                self.summary.deliberate += 1;
                continue;
            }
            if is_lio_release_type_conflict(&command.cdb, &reply, &expected)
                || (registered
                    && !holder
                    && is_lio_release_without_key_check(&command.cdb, &reply, &expected))
            {
                self.summary.deliberate += 1;
                continue;
            }
            if is_lio_preempt_type_unchecked(&command.cdb, &reply, &expected) {
                // Deliberate difference 15: LIO may have removed registrations.
                self.summary.deliberate += 1;
                self.resync()?;
                continue;
            }
            let stale_scope = self.lio_stale_scope[command.path.index()];
            if stale_scope
                && is_lio_stale_scope_refusal(&before, &nexus, &command.cdb, &reply, &expected)
            {
                // Deliberate difference 14: LIO refused and changed nothing.
                self.model = before;
                self.summary.deliberate += 1;
                continue;
            }
            if registered
                && self.model.key_of(&nexus).is_none()
                && is_register(&command.cdb)
                && matches!(expected, Outcome::Good(_))
            {
                // Deliberate difference 8: follow LIO's counter.
                let generation = self.model.generation().wrapping_sub(1);
                self.model.set_generation(generation);
                self.summary.deliberate += 1;
            }
            if let Some(difference) = self.compare(&command, &reply, &expected) {
                self.summary.mismatches += 1;
                out(format!(
                    "MISMATCH seed={seed} #{index} {} {}: {difference}",
                    command.path.name(),
                    command.label
                ));
                self.resync()?;
                continue;
            }
            if expected.status() == 0
                && is_lio_all_registrants_preempt(&before, &nexus, &command.cdb, &command.data_out)
            {
                // Deliberate difference 13: same answer, different states.
                self.summary.deliberate += 1;
                self.resync()?;
                continue;
            }
            self.track_lio_scope(&before, &nexus, &command, &expected);
        }
        Ok(self.summary.clone())
    }

    /// Follows which of LIO's registrations carry a stale scope (deliberate difference
    /// 14) after a command both sides answered alike. LIO sets a registration's scope
    /// when it becomes the holder by RESERVE or PREEMPT, clears it when its
    /// reservation is released (also as part of PREEMPT, CLEAR or an unregistration)
    /// or the registration goes, and a REGISTER AND MOVE writes the TYPE code into the
    /// source's scope while the destination keeps its own.
    fn track_lio_scope(
        &mut self,
        before: &LogicalUnit,
        nexus: &Nexus,
        command: &Command,
        expected: &Outcome,
    ) {
        if expected.status() != 0 {
            return;
        }
        let path = command.path.index();
        let sa = service_action(&command.cdb);
        let holder = |lu: &LogicalUnit| lu.reservation().map(|r| (r.holder.clone(), r.rtype));
        if sa == Some(PrOutAction::RegisterAndMove.code()) {
            self.lio_stale_scope[path] = true;
        } else {
            let (old, new) = (holder(before), holder(&self.model));
            let mut cleared = Vec::new();
            if old != new {
                cleared.extend(old.map(|(n, _)| n));
                cleared.extend(new.map(|(n, _)| n));
            }
            if sa == Some(PrOutAction::Preempt.code()) && self.model.is_holder(nexus) {
                cleared.push(nexus.clone());
            }
            for n in &cleared {
                if let Some(i) = self.nexus.iter().position(|m| m == n) {
                    self.lio_stale_scope[i] = false;
                }
            }
        }
        for (i, n) in self.nexus.iter().enumerate() {
            if self.model.key_of(n).is_none() {
                self.lio_stale_scope[i] = false;
            }
        }
    }

    fn send(&mut self, command: &Command) -> Result<Reply, CheckError> {
        let mut attempts = 0;
        loop {
            let reply = self
                .device
                .execute(command.path, &command.cdb, &command.data_out)
                .map_err(|source| CheckError::Device {
                    step: command.label.clone(),
                    source,
                })?;
            if reply.is_unit_attention() && attempts < UA_RETRIES {
                attempts += 1;
                self.summary.unit_attentions += 1;
                continue;
            }
            return Ok(reply);
        }
    }

    /// `None` when the device and the model agree (after the deliberate masks).
    fn compare(&mut self, command: &Command, reply: &Reply, expected: &Outcome) -> Option<String> {
        if reply.status != expected.status() {
            return Some(format!(
                "status device={:#04x}{} model={:#04x}{}",
                reply.status,
                sense_text(reply.sense),
                expected.status(),
                sense_text(expected.sense().map(|s| (s.key, s.asc, s.ascq)))
            ));
        }
        let model_sense = expected.sense().map(|s| (s.key, s.asc, s.ascq));
        if reply.sense != model_sense {
            return Some(format!(
                "sense device={} model={}",
                sense_text(reply.sense),
                sense_text(model_sense)
            ));
        }
        let mut device_data = reply.data.clone();
        let mut model_data = expected.data().to_vec();
        let is_capabilities = command.cdb.first() == Some(&0x5E)
            && command.cdb.get(1).map(|sa| sa & 0x1F)
                == Some(PrInAction::ReportCapabilities.code());
        let action = match command.cdb.as_slice() {
            [0x5E, sa, ..] => PrInAction::from_code(sa & 0x1F),
            _ => None,
        };
        let complete_len = action.map_or(0, |action| {
            self.model
                .persistent_reserve_in(&build::pr_in(action, 8192))
                .data()
                .len()
        });
        if complete_len > model_data.len() {
            let keep = match action {
                Some(PrInAction::ReadFullStatus) => Some(4),
                Some(PrInAction::ReadKeys | PrInAction::ReadReservation) => {
                    Some(8 + model_data.len().saturating_sub(8) / 8 * 8)
                }
                _ => None,
            };
            if let Some(keep) = keep {
                let differs = device_data != model_data;
                device_data.truncate(keep);
                model_data.truncate(keep);
                if differs && device_data == model_data {
                    self.summary.deliberate += 1;
                }
            }
        }
        if is_capabilities {
            let before = device_data != model_data;
            for (byte, mask) in MASKED_CAPABILITY_BITS {
                for data in [&mut device_data, &mut model_data] {
                    if let Some(b) = data.get_mut(byte) {
                        *b &= !mask;
                    }
                }
            }
            if before && device_data == model_data {
                self.summary.deliberate += 1;
            }
        }
        (device_data != model_data).then(|| {
            format!(
                "data device={} model={}",
                hex(&device_data),
                hex(&model_data)
            )
        })
    }
}

/// Deliberate difference 4: NOT READY / LOGICAL UNIT COMMUNICATION FAILURE where
/// the model (SPC-4) says RESERVATION CONFLICT to an unregistered nexus.
fn is_lio_unregistered_refusal(reply: &Reply, expected: &Outcome) -> bool {
    *expected == Outcome::ReservationConflict
        && reply.status == 0x02
        && reply.sense == Some(LUN_COMMUNICATION_FAILURE)
}

/// Deliberate difference 7: RELEASE from a registered non-holder with a wrong key.
fn is_lio_release_without_key_check(cdb: &[u8], reply: &Reply, expected: &Outcome) -> bool {
    service_action(cdb) == Some(PrOutAction::Release.code())
        && *expected == Outcome::ReservationConflict
        && reply.status == 0x00
}

/// Deliberate difference 12: RELEASE of the wrong type, RESERVATION CONFLICT.
fn is_lio_release_type_conflict(cdb: &[u8], reply: &Reply, expected: &Outcome) -> bool {
    service_action(cdb) == Some(PrOutAction::Release.code())
        && *expected == Outcome::CheckCondition(Sense::INVALID_RELEASE_OF_PERSISTENT_RESERVATION)
        && reply.status == 0x18
}

/// Deliberate difference 15: PREEMPT with an invalid TYPE that the model refuses
/// with INVALID FIELD IN CDB and the device answers otherwise.
fn is_lio_preempt_type_unchecked(cdb: &[u8], reply: &Reply, expected: &Outcome) -> bool {
    let invalid_type = cdb
        .get(2)
        .is_some_and(|b| ReservationType::from_code(b & 0x0F).is_none());
    let refused = Sense::INVALID_FIELD_IN_CDB;
    service_action(cdb) == Some(PrOutAction::Preempt.code())
        && invalid_type
        && *expected == Outcome::CheckCondition(refused)
        && !(reply.status == 0x02 && reply.sense == Some((refused.key, refused.asc, refused.ascq)))
}

/// Deliberate difference 13: PREEMPT under an all-registrants reservation with the
/// key of the nexus that created it or the caller's own key (`before`: the model
/// before the command).
fn is_lio_all_registrants_preempt(
    before: &LogicalUnit,
    nexus: &Nexus,
    cdb: &[u8],
    data_out: &[u8],
) -> bool {
    let Some(reservation) = before.reservation() else {
        return false;
    };
    let sa_key = data_out
        .get(8..16)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes);
    service_action(cdb) == Some(PrOutAction::Preempt.code())
        && reservation.rtype.all_registrants()
        && sa_key != 0
        && (before.key_of(&reservation.holder) == Some(sa_key)
            || before.key_of(nexus) == Some(sa_key))
}

/// Deliberate difference 14: RELEASE or RESERVE by the holder with the reservation's
/// type and LU_SCOPE, GOOD for SPC-4, RESERVATION CONFLICT from LIO (the caller's
/// registration carries a stale scope; the caller checks that).
fn is_lio_stale_scope_refusal(
    before: &LogicalUnit,
    nexus: &Nexus,
    cdb: &[u8],
    reply: &Reply,
    expected: &Outcome,
) -> bool {
    let Some(reservation) = before.reservation() else {
        return false;
    };
    let sa = service_action(cdb);
    let type_and_scope = cdb.get(2).copied().unwrap_or(0xFF);
    (sa == Some(PrOutAction::Release.code()) || sa == Some(PrOutAction::Reserve.code()))
        && reservation.holder == *nexus
        && !reservation.rtype.all_registrants()
        && type_and_scope == reservation.rtype.code()
        && expected.status() == 0
        && reply.status == 0x18
}

/// REGISTER or REGISTER AND IGNORE EXISTING KEY.
fn is_register(cdb: &[u8]) -> bool {
    let sa = service_action(cdb);
    sa == Some(PrOutAction::Register.code())
        || sa == Some(PrOutAction::RegisterAndIgnoreExistingKey.code())
}

/// The service action of a PR OUT CDB.
fn service_action(cdb: &[u8]) -> Option<u8> {
    match cdb {
        [0x5F, sa, ..] => Some(sa & 0x1F),
        _ => None,
    }
}

fn sense_text(sense: Option<(u8, u8, u8)>) -> String {
    sense.map_or(String::new(), |(k, a, q)| {
        format!(" sense={k:02X}/{a:02X}/{q:02X}")
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends a command, resending on UNIT ATTENTION; anything but GOOD is an error.
fn expect_good<D: Device>(
    device: &mut D,
    path: Path,
    cdb: &[u8],
    data_out: &[u8],
    step: &str,
) -> Result<Reply, CheckError> {
    for _ in 0..=UA_RETRIES {
        let reply = device
            .execute(path, cdb, data_out)
            .map_err(|source| CheckError::Device {
                step: step.to_owned(),
                source,
            })?;
        if reply.is_unit_attention() {
            continue;
        }
        if reply.status != 0 {
            return Err(CheckError::Unexpected {
                step: step.to_owned(),
                reply,
            });
        }
        return Ok(reply);
    }
    Err(CheckError::Unexpected {
        step: format!("{step}: unit attentions do not stop"),
        reply: Reply {
            status: 0x02,
            sense: None,
            data: Vec::new(),
        },
    })
}

/// Takes the LUN over (REGISTER AND IGNORE EXISTING KEY from A) and CLEARs it, then
/// consumes the unit attentions that leaves on both paths.
fn reset<D: Device>(device: &mut D) -> Result<(), CheckError> {
    let (cdb, list) = build::out_command(
        PrOutAction::RegisterAndIgnoreExistingKey,
        0,
        0,
        RESET_KEY,
        Flags::default(),
    );
    expect_good(device, Path::A, &cdb, &list, "reset register")?;
    let (cdb, list) = build::out_command(PrOutAction::Clear, 0, RESET_KEY, 0, Flags::default());
    expect_good(device, Path::A, &cdb, &list, "reset clear")?;
    for path in [Path::A, Path::B] {
        expect_good(
            device,
            path,
            &build::read_keys(8),
            &[],
            "drain unit attentions",
        )?;
    }
    Ok(())
}

/// (key, nexus) of every READ FULL STATUS descriptor that parses.
pub fn parse_full_status(data: &[u8]) -> Vec<(u64, Nexus)> {
    let mut out = Vec::new();
    let mut rest = data.get(8..).unwrap_or_default();
    while rest.len() >= 24 {
        let key = u64::from_be_bytes(rest[0..8].try_into().unwrap_or([0; 8]));
        let port = u16::from_be_bytes([rest[18], rest[19]]);
        let tid_len = u32::from_be_bytes([rest[20], rest[21], rest[22], rest[23]]);
        let tid_len = usize::try_from(tid_len).unwrap_or(usize::MAX);
        let Some(tid) = rest.get(24..).and_then(|r| r.get(..tid_len)) else {
            break;
        };
        if let Ok((initiator, _)) = TransportId::decode(tid) {
            out.push((key, Nexus::new(initiator, port)));
        }
        rest = rest.get(24 + tid_len..).unwrap_or_default();
    }
    out
}
