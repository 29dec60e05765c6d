//! The reservation state of one logical unit and the PERSISTENT RESERVE OUT rules.

use serde::{Deserialize, Serialize};

use crate::nexus::Nexus;
use crate::outcome::Outcome;
use crate::params::{decode_basic, decode_move, decode_out_cdb, refuse, requested_reservation};
use crate::types::Access;
use scsi::pr::{
    PrOutAction, PrOutCdb, PrOutParams, RegisterMoveParams, ReservationType, Scope, ScopeType,
    TransportId,
};
use scsi::sense::Sense;

pub use scsi::cdb::opcode::{PERSISTENT_RESERVE_IN, PERSISTENT_RESERVE_OUT};

/// Registrations one logical unit holds at most (one per I_T nexus). A
/// REGISTER (or REGISTER AND MOVE) that would need more answers CHECK
/// CONDITION, ILLEGAL REQUEST / INSUFFICIENT REGISTRATION RESOURCES
/// (05/55/04), as a real target with a full registration table does, and
/// changes nothing. Clusters use a handful; the bound keeps what initiators
/// can make a unit hold finite.
pub const MAX_REGISTRATIONS: usize = 256;

/// One registered I_T nexus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The registered I_T nexus.
    pub nexus: Nexus,
    /// Its reservation key (never zero).
    pub key: u64,
    /// Registered with ALL_TG_PT set (reported in READ FULL STATUS).
    pub all_tg_pt: bool,
}

/// The persistent reservation, if one exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The holder; for the all-registrants types, the nexus that created it (every
    /// registrant holds it; this field then only names a registered one).
    pub holder: Nexus,
    /// The reservation type.
    pub rtype: ReservationType,
    /// The reservation scope (always logical unit; serialised as its code, 0).
    pub scope: Scope,
}

/// The persistent-reservation state of one logical unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogicalUnit {
    /// The relative target port identifiers through which the unit is reachable.
    target_ports: Vec<u16>,
    /// PRgeneration: a wrapping counter bumped by the commands SPC-4 names.
    generation: u32,
    /// Activate Persist Through Power Loss, as last set by a registering command.
    aptpl: bool,
    /// Registrations in the order they were made (READ KEYS reports this order).
    registrations: Vec<Registration>,
    reservation: Option<Reservation>,
}

type Step = Result<(), Outcome>;

/// The conflict check a PR OUT command passes before any field or parameter is looked
/// at: with a reservation of type `reserved` that the initiator neither holds nor
/// (registrants-only and all-registrants types) shares as a registrant, RESERVE and
/// REGISTER AND MOVE conflict, and so do RELEASE, CLEAR, PREEMPT and PREEMPT AND ABORT
/// from an unregistered initiator. REGISTER always passes. This is the order of a real
/// SPC-4 target (LIO), checked by the VM tier's differential test; translations onto
/// other reservation schemes (NVMe) answer in the same order with it.
pub fn conflicts_before_fields(
    action: PrOutAction,
    reserved: Option<ReservationType>,
    holder: bool,
    registered: bool,
) -> bool {
    let Some(rtype) = reserved else {
        return false;
    };
    if holder || (registered && rtype.registrants_share()) {
        return false;
    }
    match action {
        PrOutAction::Register | PrOutAction::RegisterAndIgnoreExistingKey => false,
        PrOutAction::Reserve
        | PrOutAction::RegisterAndMove
        | PrOutAction::ReplaceLostReservation => true,
        PrOutAction::Release
        | PrOutAction::Clear
        | PrOutAction::Preempt
        | PrOutAction::PreemptAndAbort => !registered,
    }
}

impl LogicalUnit {
    /// A unit with no registrations, reachable through `target_ports`.
    pub fn new(target_ports: Vec<u16>) -> LogicalUnit {
        LogicalUnit {
            target_ports,
            generation: 0,
            aptpl: false,
            registrations: Vec::new(),
            reservation: None,
        }
    }

    /// The PRgeneration counter.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Starts the PRgeneration counter at `generation` (to mirror a device whose
    /// counter is already running, e.g. in a differential test).
    pub fn set_generation(&mut self, generation: u32) {
        self.generation = generation;
    }

    /// Whether the state must persist through power loss.
    pub fn aptpl(&self) -> bool {
        self.aptpl
    }

    /// The registrations, in registration order.
    pub fn registrations(&self) -> &[Registration] {
        &self.registrations
    }

    /// The persistent reservation, if any.
    pub fn reservation(&self) -> Option<&Reservation> {
        self.reservation.as_ref()
    }

    /// The relative target port identifiers of the unit.
    pub fn target_ports(&self) -> &[u16] {
        &self.target_ports
    }

    /// The reservation key registered for `nexus`.
    pub fn key_of(&self, nexus: &Nexus) -> Option<u64> {
        self.registration(nexus).map(|r| r.key)
    }

    /// Whether `nexus` holds the reservation (any registrant does for all-registrants types).
    pub fn is_holder(&self, nexus: &Nexus) -> bool {
        match &self.reservation {
            None => false,
            Some(r) if r.rtype.all_registrants() => self.key_of(nexus).is_some(),
            Some(r) => r.holder == *nexus,
        }
    }

    /// What survives a power loss: everything when APTPL is set, nothing otherwise.
    pub fn persistent_part(&self) -> LogicalUnit {
        if self.aptpl {
            self.clone()
        } else {
            LogicalUnit::new(self.target_ports.clone())
        }
    }

    /// Would a medium access of this kind from `nexus` get RESERVATION CONFLICT?
    pub fn access_conflicts(&self, nexus: &Nexus, access: Access) -> bool {
        let Some(reservation) = &self.reservation else {
            return false;
        };
        if self.is_holder(nexus) {
            return false;
        }
        if access == Access::Read && !reservation.rtype.restricts_reads() {
            return false;
        }
        !(reservation.rtype.registrants_share() && self.key_of(nexus).is_some())
    }

    /// Executes a PERSISTENT RESERVE IN or OUT command from `nexus`.
    pub fn execute(&mut self, nexus: &Nexus, cdb: &[u8], data_out: &[u8]) -> Outcome {
        match cdb.first() {
            Some(&PERSISTENT_RESERVE_IN) => self.persistent_reserve_in(cdb),
            Some(&PERSISTENT_RESERVE_OUT) => self.persistent_reserve_out(nexus, cdb, data_out),
            _ => refuse(Sense::INVALID_COMMAND_OPERATION_CODE),
        }
    }

    /// Executes PERSISTENT RESERVE OUT; `data_out` holds at least the parameter list.
    pub fn persistent_reserve_out(
        &mut self,
        nexus: &Nexus,
        cdb: &[u8],
        data_out: &[u8],
    ) -> Outcome {
        match self.reserve_out(nexus, cdb, data_out) {
            Ok(()) => Outcome::good(),
            Err(refusal) => refusal,
        }
    }

    fn reserve_out(&mut self, nexus: &Nexus, cdb: &[u8], data_out: &[u8]) -> Step {
        let cdb = decode_out_cdb(cdb)?;
        if self.out_conflicts(nexus, cdb.action) {
            return Err(Outcome::ReservationConflict);
        }
        let param_len = usize::try_from(cdb.parameter_list_length).unwrap_or(usize::MAX);
        let list = data_out
            .get(..param_len)
            .ok_or(refuse(Sense::PARAMETER_LIST_LENGTH_ERROR))?;
        if cdb.action == PrOutAction::RegisterAndMove {
            return self.register_and_move(nexus, decode_move(list)?);
        }
        let params = decode_basic(cdb.action, list)?;
        match cdb.action {
            PrOutAction::Register => self.register(nexus, &params, false),
            PrOutAction::RegisterAndIgnoreExistingKey => self.register(nexus, &params, true),
            PrOutAction::Reserve => self.reserve(nexus, &cdb, &params),
            PrOutAction::Release => self.release(nexus, &cdb, &params),
            PrOutAction::Clear => self.clear(nexus, &params),
            PrOutAction::Preempt | PrOutAction::PreemptAndAbort => {
                self.preempt(nexus, &cdb, &params)
            }
            PrOutAction::RegisterAndMove | PrOutAction::ReplaceLostReservation => Ok(()),
        }
    }

    /// The conflict check a command passes before it runs, for PR OUT (see
    /// [`conflicts_before_fields`]).
    fn out_conflicts(&self, nexus: &Nexus, action: PrOutAction) -> bool {
        let reserved = self.reservation.as_ref().map(|r| r.rtype);
        conflicts_before_fields(
            action,
            reserved,
            self.is_holder(nexus),
            self.key_of(nexus).is_some(),
        )
    }

    fn registration(&self, nexus: &Nexus) -> Option<&Registration> {
        self.registrations.iter().find(|r| r.nexus == *nexus)
    }

    /// The nexus must be registered with exactly `key`, else RESERVATION CONFLICT.
    fn require_key(&self, nexus: &Nexus, key: u64) -> Step {
        match self.key_of(nexus) {
            Some(registered) if registered == key => Ok(()),
            _ => Err(Outcome::ReservationConflict),
        }
    }

    /// Room for `added` more registrations, else INSUFFICIENT REGISTRATION
    /// RESOURCES.
    fn require_room_for(&self, added: usize) -> Step {
        if added > MAX_REGISTRATIONS.saturating_sub(self.registrations.len()) {
            Err(refuse(Sense::INSUFFICIENT_REGISTRATION_RESOURCES))
        } else {
            Ok(())
        }
    }

    fn bump_generation(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    fn register(&mut self, nexus: &Nexus, params: &PrOutParams, ignore_existing: bool) -> Step {
        match self.key_of(nexus) {
            None => {
                if !ignore_existing && params.reservation_key != 0 {
                    return Err(Outcome::ReservationConflict);
                }
                if params.service_action_key == 0 {
                    // Unregistered nexus unregistering: nothing happens, generation kept.
                    return Ok(());
                }
                let nexuses = self.nexuses_to_register(nexus, params)?;
                let added = nexuses
                    .iter()
                    .filter(|new| self.key_of(new).is_none())
                    .count();
                self.require_room_for(added)?;
                for new in nexuses {
                    if self.key_of(&new).is_none() {
                        self.registrations.push(Registration {
                            nexus: new,
                            key: params.service_action_key,
                            all_tg_pt: params.all_tg_pt,
                        });
                    }
                }
            }
            Some(current) => {
                if !ignore_existing && params.reservation_key != current {
                    return Err(Outcome::ReservationConflict);
                }
                if params.spec_i_pt {
                    return Err(refuse(Sense::INVALID_FIELD_IN_PARAMETER_LIST));
                }
                if params.service_action_key == 0 {
                    self.unregister(nexus);
                } else if let Some(r) = self.registrations.iter_mut().find(|r| r.nexus == *nexus) {
                    r.key = params.service_action_key;
                }
            }
        }
        self.aptpl = params.aptpl;
        self.bump_generation();
        Ok(())
    }

    /// The caller's nexus (on every port with ALL_TG_PT) plus those SPEC_I_PT names;
    /// refuses a named nexus that is already registered.
    fn nexuses_to_register(
        &self,
        nexus: &Nexus,
        params: &PrOutParams,
    ) -> Result<Vec<Nexus>, Outcome> {
        let ports = if params.all_tg_pt && !self.target_ports.is_empty() {
            self.target_ports.clone()
        } else {
            vec![nexus.target_port]
        };
        let mut out = vec![nexus.clone()];
        let initiators = std::iter::once(&nexus.initiator).chain(&params.transport_ids);
        for initiator in initiators {
            for &port in &ports {
                let candidate = Nexus::new(initiator.clone(), port);
                if out.contains(&candidate) {
                    continue;
                }
                if *initiator != nexus.initiator && self.key_of(&candidate).is_some() {
                    return Err(refuse(Sense::INVALID_FIELD_IN_PARAMETER_LIST));
                }
                out.push(candidate);
            }
        }
        Ok(out)
    }

    /// Removes a registration; a reservation it held goes too, except an
    /// all-registrants one while other registrants remain.
    fn unregister(&mut self, nexus: &Nexus) {
        self.registrations.retain(|r| r.nexus != *nexus);
        let Some(reservation) = &mut self.reservation else {
            return;
        };
        if reservation.rtype.all_registrants() {
            match self.registrations.first() {
                None => self.reservation = None,
                Some(first) if reservation.holder == *nexus => {
                    reservation.holder = first.nexus.clone();
                }
                Some(_) => {}
            }
        } else if reservation.holder == *nexus {
            self.reservation = None;
        }
    }

    fn reserve(&mut self, nexus: &Nexus, cdb: &PrOutCdb, params: &PrOutParams) -> Step {
        let (scope, rtype) = requested_reservation(cdb)?;
        self.require_key(nexus, params.reservation_key)?;
        match &self.reservation {
            None => {
                self.reservation = Some(Reservation {
                    holder: nexus.clone(),
                    rtype,
                    scope,
                });
                Ok(())
            }
            Some(r) if self.is_holder(nexus) && r.rtype == rtype && r.scope == scope => Ok(()),
            Some(_) => Err(Outcome::ReservationConflict),
        }
    }

    fn release(&mut self, nexus: &Nexus, cdb: &PrOutCdb, params: &PrOutParams) -> Step {
        self.require_key(nexus, params.reservation_key)?;
        let Some(reservation) = &self.reservation else {
            return Ok(());
        };
        if !self.is_holder(nexus) {
            return Ok(());
        }
        if ScopeType::new(reservation.scope, Some(reservation.rtype)) != cdb.scope_type {
            return Err(refuse(Sense::INVALID_RELEASE_OF_PERSISTENT_RESERVATION));
        }
        self.reservation = None;
        Ok(())
    }

    fn clear(&mut self, nexus: &Nexus, params: &PrOutParams) -> Step {
        self.require_key(nexus, params.reservation_key)?;
        self.registrations.clear();
        self.reservation = None;
        self.bump_generation();
        Ok(())
    }

    fn preempt(&mut self, nexus: &Nexus, cdb: &PrOutCdb, params: &PrOutParams) -> Step {
        let (scope, rtype) = requested_reservation(cdb)?;
        self.require_key(nexus, params.reservation_key)?;
        let new_reservation = Reservation {
            holder: nexus.clone(),
            rtype,
            scope,
        };
        match self.reservation.clone() {
            Some(current) if current.rtype.all_registrants() && params.service_action_key == 0 => {
                // Key 0 under all-registrants: everyone else goes, the caller takes over.
                self.registrations.retain(|r| r.nexus == *nexus);
                self.reservation = Some(new_reservation);
            }
            Some(current) if current.rtype.all_registrants() => {
                self.remove_registrations_with_key(params.service_action_key)?;
            }
            Some(current) if self.key_of(&current.holder) == Some(params.service_action_key) => {
                // Preempting the holder: its key's registrations go, the caller's stays.
                self.registrations
                    .retain(|r| r.nexus == *nexus || r.key != params.service_action_key);
                self.reservation = Some(new_reservation);
            }
            _ => {
                if params.service_action_key == 0 {
                    return Err(refuse(Sense::INVALID_FIELD_IN_PARAMETER_LIST));
                }
                self.remove_registrations_with_key(params.service_action_key)?;
            }
        }
        self.bump_generation();
        Ok(())
    }

    /// Removes every registration with `key` (the caller's too); none: RESERVATION CONFLICT.
    fn remove_registrations_with_key(&mut self, key: u64) -> Step {
        let doomed: Vec<Nexus> = self
            .registrations
            .iter()
            .filter(|r| r.key == key)
            .map(|r| r.nexus.clone())
            .collect();
        if doomed.is_empty() {
            return Err(Outcome::ReservationConflict);
        }
        for nexus in &doomed {
            self.unregister(nexus);
        }
        Ok(())
    }

    fn register_and_move(&mut self, nexus: &Nexus, params: RegisterMoveParams) -> Step {
        self.require_key(nexus, params.reservation_key)?;
        if params.service_action_key == 0 {
            return Err(refuse(Sense::INVALID_FIELD_IN_PARAMETER_LIST));
        }
        if !self.target_ports.contains(&params.relative_target_port) {
            return Err(refuse(Sense::INVALID_FIELD_IN_PARAMETER_LIST));
        }
        let Some(reservation) = self.reservation.clone() else {
            return Err(refuse(Sense::INVALID_FIELD_IN_CDB));
        };
        if reservation.rtype.all_registrants() || !self.is_holder(nexus) {
            return Err(Outcome::ReservationConflict);
        }
        let destination = Nexus::new(params.transport_id, params.relative_target_port);
        if destination == *nexus {
            return Err(refuse(Sense::INVALID_FIELD_IN_PARAMETER_LIST));
        }
        if self.key_of(&destination).is_none() {
            // The caller's own registration may go with UNREG, but only after
            // the destination's is made: the table must hold both at once.
            self.require_room_for(1)?;
        }
        match self
            .registrations
            .iter_mut()
            .find(|r| r.nexus == destination)
        {
            Some(r) => r.key = params.service_action_key,
            None => self.registrations.push(Registration {
                nexus: destination.clone(),
                key: params.service_action_key,
                all_tg_pt: false,
            }),
        }
        self.reservation = Some(Reservation {
            holder: destination,
            ..reservation
        });
        if params.unreg {
            self.registrations.retain(|r| r.nexus != *nexus);
        }
        self.aptpl = params.aptpl;
        self.bump_generation();
        Ok(())
    }

    /// Checks the structural invariants; `Err` names the first one broken.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.registrations.len() > MAX_REGISTRATIONS {
            return Err(format!(
                "{} registrations, above the bound of {MAX_REGISTRATIONS}",
                self.registrations.len()
            ));
        }
        for (i, r) in self.registrations.iter().enumerate() {
            if r.key == 0 {
                return Err(format!("registration {i} has key 0"));
            }
            if self
                .registrations
                .iter()
                .take(i)
                .any(|o| o.nexus == r.nexus)
            {
                return Err(format!("nexus {:?} registered twice", r.nexus));
            }
        }
        if let Some(reservation) = &self.reservation {
            if self.key_of(&reservation.holder).is_none() {
                return Err(format!("holder {:?} is not registered", reservation.holder));
            }
        }
        Ok(())
    }

    /// The initiator ports that have at least one registration.
    pub fn registered_initiators(&self) -> Vec<TransportId> {
        let mut out: Vec<TransportId> = Vec::new();
        for r in &self.registrations {
            if !out.contains(&r.nexus.initiator) {
                out.push(r.nexus.initiator.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state file as the emulated backend wrote it before pr-target used scsi's
    /// TransportId: reservation type by variant name, scope by its code, iSCSI
    /// initiators (the only kind the backend names) with a `format` field.
    const SAVED_STATE: &str = r#"{"target_ports":[1],"generation":2,"aptpl":true,
        "registrations":[{"nexus":{"initiator":{"Iscsi":{"format":0,"name":"iqn.a"}},
        "target_port":1},"key":161,"all_tg_pt":false}],
        "reservation":{"holder":{"initiator":{"Iscsi":{"format":0,"name":"iqn.a"}},
        "target_port":1},"rtype":"ExclusiveAccessAllRegistrants","scope":0}}"#;

    #[test]
    fn state_files_written_before_scsi_transport_ids_still_read() {
        let unit: LogicalUnit = serde_json::from_str(SAVED_STATE).unwrap();
        let a = Nexus::new(TransportId::iscsi("iqn.a"), 1);
        assert_eq!(unit.key_of(&a), Some(161));
        let reservation = unit.reservation().unwrap();
        assert_eq!(reservation.holder, a);
        assert_eq!(
            reservation.rtype,
            ReservationType::ExclusiveAccessAllRegistrants
        );
        assert_eq!(reservation.scope, Scope::LogicalUnit);
        let written = serde_json::to_string(&unit).unwrap();
        assert!(
            written.contains(r#"{"Iscsi":{"name":"iqn.a","isid":null}}"#),
            "{written}"
        );
        assert!(written.contains(r#""rtype":"ExclusiveAccessAllRegistrants","scope":0"#));
        assert_eq!(serde_json::from_str::<LogicalUnit>(&written).unwrap(), unit);
    }

    #[test]
    fn state_files_with_an_old_byte_array_transport_id_are_refused() {
        let old_sas = SAVED_STATE.replacen(
            r#"{"Iscsi":{"format":0,"name":"iqn.a"}}"#,
            r#"{"Sas":[80,1,64,80,0,0,10,1]}"#,
            1,
        );
        // serde reads the 8-element array as a struct variant and stops at the
        // second element; the emulated backend names the file in its error.
        let refused = serde_json::from_str::<LogicalUnit>(&old_sas);
        assert!(refused.is_err(), "{refused:?}");
    }

    #[test]
    fn a_state_file_with_an_unknown_scope_is_refused_naming_it() {
        let bad = SAVED_STATE.replace(r#""scope":0"#, r#""scope":1"#);
        let error = serde_json::from_str::<LogicalUnit>(&bad).unwrap_err();
        assert!(
            error.to_string().contains("unknown SCOPE code 0x1"),
            "{error}"
        );
    }
}
