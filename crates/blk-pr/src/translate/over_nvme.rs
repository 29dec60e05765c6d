//! SCSI PR over NVMe reservations.
//!
//! | SCSI | NVMe |
//! |---|---|
//! | REGISTER, unregistered, SA key ≠ 0 | Reservation Register, Register (NRKEY = SA key) |
//! | REGISTER, registered, SA key ≠ 0 | Register, Replace (CRKEY = key, NRKEY = SA key) |
//! | REGISTER, registered, SA key 0 | Register, Unregister (CRKEY = key) |
//! | REGISTER AND IGNORE EXISTING KEY | the same with IEKEY set |
//! | APTPL 1 / 0 | CPTPL 11b / 10b (00b when the namespace cannot persist) |
//! | RESERVE | Reservation Acquire, Acquire |
//! | PREEMPT, PREEMPT AND ABORT | Acquire, Preempt / Preempt and Abort (PRKEY = SA key) |
//! | RELEASE, CLEAR | Reservation Release, Release / Clear |
//! | READ KEYS, READ RESERVATION, READ FULL STATUS | Reservation Report (extended data structure) |
//! | REPORT CAPABILITIES | Identify Namespace RESCAP, and the report's PTPLS |
//!
//! Types map one to one (SCSI 1, 3, 5, 6, 7, 8 are NVMe 1 to 6). Registrations are
//! per host (Host Identifier), so one SCSI initiator is one NVMe host, seen through
//! one target port (relative port 1).
//!
//! Each PR OUT first reads the report (and the host's own ID) to decide what SCSI
//! would: whether the host is registered (REGISTER becomes Register, Replace or
//! Unregister), the conflict check SCSI makes before looking at the fields, and the
//! refusals NVMe words differently. The device stays the judge: the NVMe command
//! that follows checks the key again, so a change by another host in between gives
//! RESERVATION CONFLICT, never a wrong change.

use scsi::pr::{
    FullStatus, FullStatusDescriptor, PrInAction, PrInCdb, PrOutAction, PrOutCdb, PrOutParams,
    ReadKeys, ReadReservation, ReportCapabilities, Reservation, ReservationType, Scope, ScopeType,
    TypeMask,
};
use scsi::sense::Sense;

use super::{
    Answer, decode_out_cdb, decode_params, dispatch, is_register, pr_in_data, requested_type,
};
use crate::nvme::{
    Acquire, AcquireAction, HostId, NvmeReservationType, NvmeStatus, PtplChange, Register,
    RegisterAction, Registrant, Release, ReleaseAction, ReportDecodeError, ReservationCapabilities,
    ReservationStatus,
};
use crate::outcome::ScsiOutcome;

/// The relative target port identifier every registrant is reported through.
pub const RELATIVE_TARGET_PORT: u16 = 1;

/// Why an NVMe reservation command did not succeed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum NvmeError {
    /// The controller completed it with this status.
    Status(NvmeStatus),
    /// The ioctl failed with this errno (the command may not have reached the device).
    Errno(i32),
    /// The controller's data does not decode (a Reservation Report naming an unknown
    /// type, or shorter than its header).
    Malformed(ReportDecodeError),
}

/// An NVMe namespace as one host sees it: the four reservation commands, the host's
/// identity and the namespace's capabilities.
pub trait NvmeReservations {
    /// The 128-bit Host Identifier this host's commands carry.
    fn host_id(&mut self) -> Result<HostId, NvmeError>;
    /// RESCAP of the namespace.
    fn capabilities(&mut self) -> Result<ReservationCapabilities, NvmeError>;
    /// Reservation Report, extended data structure, every registrant.
    fn report(&mut self) -> Result<ReservationStatus, NvmeError>;
    /// Reservation Register.
    fn register(&mut self, command: &Register) -> Result<(), NvmeError>;
    /// Reservation Acquire.
    fn acquire(&mut self, command: &Acquire) -> Result<(), NvmeError>;
    /// Reservation Release.
    fn release(&mut self, command: &Release) -> Result<(), NvmeError>;
}

/// Executes one SCSI PERSISTENT RESERVE IN or OUT command on an NVMe namespace.
pub fn execute_scsi_pr_over_nvme(
    device: &mut impl NvmeReservations,
    cdb: &[u8],
    data_out: &[u8],
) -> ScsiOutcome {
    dispatch(device, cdb, data_out, pr_in, pr_out)
}

/// The SCSI answer to an NVMe command that failed; `invalid_field` is the sense an
/// Invalid Field in Command stands for in this command.
fn refused(error: NvmeError, invalid_field: Sense) -> ScsiOutcome {
    let status = match error {
        NvmeError::Errno(errno) => return ScsiOutcome::transport_failure(errno),
        NvmeError::Malformed(_) => return ScsiOutcome::check(Sense::INTERNAL_TARGET_FAILURE),
        NvmeError::Status(status) => status,
    };
    if status.is_path_error() {
        return ScsiOutcome::check(Sense::LOGICAL_UNIT_COMMUNICATION_FAILURE);
    }
    match status.code() {
        NvmeStatus::RESERVATION_CONFLICT => ScsiOutcome::conflict(),
        NvmeStatus::INVALID_FIELD => ScsiOutcome::check(invalid_field),
        // A namespace without reservations: the PR commands do not exist there.
        NvmeStatus::INVALID_OPCODE => ScsiOutcome::check(Sense::INVALID_COMMAND_OPERATION_CODE),
        NvmeStatus::NAMESPACE_NOT_READY => ScsiOutcome::check(Sense::NOT_READY),
        NvmeStatus::INVALID_NAMESPACE => ScsiOutcome::check(Sense::LUN_NOT_SUPPORTED),
        NvmeStatus::ABORTED_BY_REQUEST => ScsiOutcome::check(Sense::IO_PROCESS_TERMINATED),
        _ => ScsiOutcome::check(Sense::INTERNAL_TARGET_FAILURE),
    }
}

/// GOOD when the NVMe command succeeded, else its SCSI answer (see [`refused`]).
fn done(result: Result<(), NvmeError>, invalid_field: Sense) -> Answer {
    result
        .map(|()| ScsiOutcome::good(Vec::new()))
        .map_err(|error| refused(error, invalid_field))
}

/// Reads of the device's state failing: the command cannot be answered.
fn unreadable(error: NvmeError) -> ScsiOutcome {
    refused(error, Sense::INTERNAL_TARGET_FAILURE)
}

fn pr_in(device: &mut impl NvmeReservations, cdb: &[u8]) -> Answer {
    let cdb = PrInCdb::decode(cdb).map_err(|error| ScsiOutcome::check(error.sense()))?;
    let data = match cdb.action {
        PrInAction::ReportCapabilities => {
            let capabilities = device.capabilities().map_err(unreadable)?;
            let status = device.report().map_err(unreadable)?;
            report_capabilities(&capabilities, &status)
                .encode()
                .to_vec()
        }
        action => {
            let status = device.report().map_err(unreadable)?;
            let encoded = match action {
                PrInAction::ReadKeys => read_keys(&status).encode(),
                PrInAction::ReadReservation => Ok(read_reservation(&status).encode()),
                _ => read_full_status(&status).encode(),
            };
            // Only more registrants than the length fields hold get here.
            encoded.map_err(|_| ScsiOutcome::check(Sense::INTERNAL_TARGET_FAILURE))?
        }
    };
    Ok(pr_in_data(data, cdb.allocation_length))
}

fn scsi_type(status: &ReservationStatus) -> Option<ReservationType> {
    status.rtype.map(ReservationType::from)
}

/// READ KEYS: one key per registered host, in the report's order.
pub fn read_keys(status: &ReservationStatus) -> ReadKeys {
    ReadKeys {
        generation: status.generation,
        keys: status.hosts().iter().map(|r| r.key).collect(),
    }
}

/// READ RESERVATION: the holder's key, or 0 under the all-registrants types (every
/// registrant holds it), as SPC-4 reports them.
pub fn read_reservation(status: &ReservationStatus) -> ReadReservation {
    let reservation = status.rtype.map(|rtype| {
        let key = if rtype.all_registrants() {
            0
        } else {
            status
                .hosts()
                .iter()
                .find(|r| r.holds_reservation)
                .map_or(0, |r| r.key)
        };
        Reservation {
            key,
            scope_type: ScopeType::new(Scope::LogicalUnit, Some(rtype.into())),
        }
    });
    ReadReservation {
        generation: status.generation,
        reservation,
    }
}

/// READ FULL STATUS: one descriptor per host, its TransportID built from its Host
/// Identifier ([`HostId::transport_id`]), target port 1, ALL_TG_PT set (an NVMe
/// registration covers every controller of the host).
pub fn read_full_status(status: &ReservationStatus) -> FullStatus {
    let rtype = scsi_type(status);
    let descriptors = status
        .hosts()
        .iter()
        .map(|registrant| {
            let r_holder = is_holder(status, Some(registrant));
            let scope_type = match rtype {
                Some(rtype) if r_holder => ScopeType::new(Scope::LogicalUnit, Some(rtype)),
                _ => ScopeType(0),
            };
            FullStatusDescriptor {
                reservation_key: registrant.key,
                all_tg_pt: true,
                r_holder,
                scope_type,
                relative_target_port: RELATIVE_TARGET_PORT,
                transport_id: registrant.host_id.transport_id(),
            }
        })
        .collect();
    FullStatus {
        generation: status.generation,
        descriptors,
    }
}

/// REPORT CAPABILITIES from RESCAP: the types the namespace supports, PTPL_C from its
/// persist-through-power-loss bit (neither when RESCAP could not be read: TMV 0),
/// PTPL_A from the report's PTPLS; ATP_C (a
/// registration is the host's on every controller), no SIP_C (no way to register
/// another host), no CRH, no REPLACE LOST RESERVATION.
pub fn report_capabilities(
    capabilities: &ReservationCapabilities,
    status: &ReservationStatus,
) -> ReportCapabilities {
    let types = NvmeReservationType::ALL
        .into_iter()
        .filter(|&t| capabilities.supports(t))
        .map(ReservationType::from);
    // Capabilities that could not be read: no type mask (TMV 0), no PTPL_C claimed.
    let type_mask = if capabilities.reported {
        TypeMask::from_types(types)
    } else {
        TypeMask::default()
    };
    ReportCapabilities {
        atp_c: true,
        ptpl_c: capabilities.persist_through_power_loss,
        tmv: capabilities.reported,
        ptpl_a: status.ptpl_state,
        type_mask,
        ..ReportCapabilities::default()
    }
}

/// Whether the host of `registrant` holds the reservation.
fn is_holder(status: &ReservationStatus, registrant: Option<&Registrant>) -> bool {
    match (status.rtype, registrant) {
        (Some(rtype), Some(r)) => rtype.all_registrants() || r.holds_reservation,
        _ => false,
    }
}

/// What one host knows about the namespace before a PR OUT.
struct View {
    status: ReservationStatus,
    me: Option<Registrant>,
}

impl View {
    fn holder(&self) -> bool {
        is_holder(&self.status, self.me.as_ref())
    }

    fn key(&self) -> Option<u64> {
        self.me.map(|r| r.key)
    }

    /// The check SPC-4 targets make before any field (`pr-target`'s rule).
    fn conflicts_before_fields(&self, action: PrOutAction) -> bool {
        pr_target::conflicts_before_fields(
            action,
            scsi_type(&self.status),
            self.holder(),
            self.me.is_some(),
        )
    }

    /// The host must be registered with exactly `key`.
    fn require_key(&self, key: u64) -> Result<(), ScsiOutcome> {
        if self.key() == Some(key) {
            Ok(())
        } else {
            Err(ScsiOutcome::conflict())
        }
    }
}

fn pr_out(device: &mut impl NvmeReservations, cdb: &[u8], data_out: &[u8]) -> Answer {
    let cdb = decode_out_cdb(cdb)?;
    let host = device.host_id().map_err(unreadable)?;
    let status = device.report().map_err(unreadable)?;
    let view = View {
        me: status.registrant(&host),
        status,
    };
    if view.conflicts_before_fields(cdb.action) {
        return Err(ScsiOutcome::conflict());
    }
    let params = decode_params(&cdb, data_out)?;
    match cdb.action {
        PrOutAction::Register | PrOutAction::RegisterAndIgnoreExistingKey => {
            register(device, &view, &cdb, &params)
        }
        PrOutAction::Reserve => reserve(device, &view, &cdb, &params),
        PrOutAction::Release => release(device, &view, &cdb, &params),
        PrOutAction::Clear => {
            view.require_key(params.reservation_key)?;
            let command = Release {
                action: ReleaseAction::Clear,
                current_key: params.reservation_key,
                rtype: None,
            };
            done(
                device.release(&command),
                Sense::INVALID_FIELD_IN_PARAMETER_LIST,
            )
        }
        PrOutAction::Preempt | PrOutAction::PreemptAndAbort => {
            preempt(device, &view, &cdb, &params)
        }
        // Refused by decode_out_cdb.
        PrOutAction::RegisterAndMove | PrOutAction::ReplaceLostReservation => {
            Err(ScsiOutcome::check(Sense::INVALID_FIELD_IN_CDB))
        }
    }
}

fn register(
    device: &mut impl NvmeReservations,
    view: &View,
    cdb: &PrOutCdb,
    params: &PrOutParams,
) -> Answer {
    debug_assert!(is_register(cdb.action));
    let ignore_existing = cdb.action == PrOutAction::RegisterAndIgnoreExistingKey;
    let capabilities = device.capabilities().map_err(unreadable)?;
    let (action, current_key) = match view.key() {
        None => {
            if !ignore_existing && params.reservation_key != 0 {
                return Err(ScsiOutcome::conflict());
            }
            if params.service_action_key == 0 {
                // Unregistering an unregistered initiator: nothing to do, GOOD.
                return Ok(ScsiOutcome::good(Vec::new()));
            }
            (RegisterAction::Register, 0)
        }
        Some(key) => {
            if !ignore_existing && params.reservation_key != key {
                return Err(ScsiOutcome::conflict());
            }
            let action = if params.service_action_key == 0 {
                RegisterAction::Unregister
            } else {
                RegisterAction::Replace
            };
            (action, params.reservation_key)
        }
    };
    let persists = capabilities.persist_through_power_loss;
    let ptpl = match (params.aptpl, persists, capabilities.reported) {
        (true, true, _) => PtplChange::Set,
        // APTPL without PTPL_C: SPC-4's answer.
        (true, false, true) => {
            return Err(ScsiOutcome::check(Sense::INVALID_FIELD_IN_PARAMETER_LIST));
        }
        // Capabilities unknown: the device refuses what it cannot do (Invalid Field
        // in Command, which is INVALID FIELD IN PARAMETER LIST here).
        (true, false, false) => PtplChange::Set,
        (false, true, _) | (false, false, false) => PtplChange::Clear,
        (false, false, true) => PtplChange::NoChange,
    };
    let command = Register {
        action,
        current_key,
        new_key: params.service_action_key,
        ignore_existing_key: ignore_existing && action != RegisterAction::Register,
        ptpl,
    };
    done(
        device.register(&command),
        Sense::INVALID_FIELD_IN_PARAMETER_LIST,
    )
}

/// The NVMe type for a requested SCSI type; one the namespace does not support is
/// refused as a SCSI device refuses a type outside its type mask.
fn supported_type(
    device: &mut impl NvmeReservations,
    rtype: ReservationType,
) -> Result<NvmeReservationType, ScsiOutcome> {
    let nvme_type = NvmeReservationType::from(rtype);
    let capabilities = device.capabilities().map_err(unreadable)?;
    if capabilities.supports(nvme_type) {
        Ok(nvme_type)
    } else {
        Err(ScsiOutcome::check(Sense::INVALID_FIELD_IN_CDB))
    }
}

/// RESERVE's and PREEMPT's checks, in SPC-4's order: the type (known, supported),
/// then the key.
fn type_and_key(
    device: &mut impl NvmeReservations,
    view: &View,
    cdb: &PrOutCdb,
    params: &PrOutParams,
) -> Result<NvmeReservationType, ScsiOutcome> {
    let nvme_type = supported_type(device, requested_type(cdb)?)?;
    view.require_key(params.reservation_key)?;
    Ok(nvme_type)
}

fn reserve(
    device: &mut impl NvmeReservations,
    view: &View,
    cdb: &PrOutCdb,
    params: &PrOutParams,
) -> Answer {
    let nvme_type = type_and_key(device, view, cdb, params)?;
    match view.status.rtype {
        // Already held by this host with this type (under the all-registrants types
        // every registrant holds it): nothing changes, GOOD.
        Some(current) if view.holder() && current == nvme_type => Ok(ScsiOutcome::good(Vec::new())),
        Some(_) => Err(ScsiOutcome::conflict()),
        None => {
            let command = Acquire {
                action: AcquireAction::Acquire,
                current_key: params.reservation_key,
                preempt_key: 0,
                rtype: nvme_type,
            };
            done(device.acquire(&command), Sense::INVALID_FIELD_IN_CDB)
        }
    }
}

fn release(
    device: &mut impl NvmeReservations,
    view: &View,
    cdb: &PrOutCdb,
    params: &PrOutParams,
) -> Answer {
    view.require_key(params.reservation_key)?;
    let Some(current) = view.status.rtype else {
        return Ok(ScsiOutcome::good(Vec::new()));
    };
    if !view.holder() {
        // Not the holder: SPC-4 says GOOD, nothing released.
        return Ok(ScsiOutcome::good(Vec::new()));
    }
    let held = ScopeType::new(Scope::LogicalUnit, Some(current.into()));
    if cdb.scope_type != held {
        return Err(ScsiOutcome::check(
            Sense::INVALID_RELEASE_OF_PERSISTENT_RESERVATION,
        ));
    }
    let command = Release {
        action: ReleaseAction::Release,
        current_key: params.reservation_key,
        rtype: Some(current),
    };
    let answer = done(
        device.release(&command),
        Sense::INVALID_RELEASE_OF_PERSISTENT_RESERVATION,
    )?;
    // Some targets complete a release without releasing (nvmet, from a registrant
    // other than the one that created an all-registrants reservation): a reservation
    // this host still holds afterwards is a target failure, not GOOD.
    let after = device.report().map_err(unreadable)?;
    let me = view.me.map(|r| r.host_id);
    let still_held = me.is_some_and(|host| is_holder(&after, after.registrant(&host).as_ref()));
    if still_held && after.rtype == Some(current) {
        return Err(ScsiOutcome::check(Sense::INTERNAL_TARGET_FAILURE));
    }
    Ok(answer)
}

fn preempt(
    device: &mut impl NvmeReservations,
    view: &View,
    cdb: &PrOutCdb,
    params: &PrOutParams,
) -> Answer {
    let nvme_type = type_and_key(device, view, cdb, params)?;
    let all_registrants = view.status.rtype.is_some_and(|t| t.all_registrants());
    let holder_key = view
        .status
        .hosts()
        .iter()
        .find(|r| r.holds_reservation)
        .map(|r| r.key);
    let preempts_holder =
        view.status.rtype.is_some() && holder_key == Some(params.service_action_key);
    if params.service_action_key == 0 && !all_registrants && !preempts_holder {
        // SA key 0 names no registrant: only an all-registrants reservation can be
        // preempted with it.
        return Err(ScsiOutcome::check(Sense::INVALID_FIELD_IN_PARAMETER_LIST));
    }
    let action = if cdb.action == PrOutAction::PreemptAndAbort {
        AcquireAction::PreemptAndAbort
    } else {
        AcquireAction::Preempt
    };
    let command = Acquire {
        action,
        current_key: params.reservation_key,
        preempt_key: params.service_action_key,
        rtype: nvme_type,
    };
    let answer = done(
        device.acquire(&command),
        Sense::INVALID_FIELD_IN_PARAMETER_LIST,
    )?;
    verify_fenced(device, view, params.service_action_key)?;
    Ok(answer)
}

/// A preempt is a fence: after it no other host may still be registered with the
/// preempted key (with key 0, under an all-registrants reservation, no other host at
/// all). Some targets complete Preempt without doing it (Linux's nvmet, when the
/// holder preempts another key); reporting GOOD then would tell a cluster a node is
/// fenced when it is not, so the answer is HARDWARE ERROR, INTERNAL TARGET FAILURE.
fn verify_fenced(
    device: &mut impl NvmeReservations,
    view: &View,
    preempted: u64,
) -> Result<(), ScsiOutcome> {
    let me = view.me.map(|r| r.host_id);
    let after = device.report().map_err(unreadable)?;
    let survivor = after
        .hosts()
        .iter()
        .any(|r| Some(r.host_id) != me && (preempted == 0 || r.key == preempted));
    if survivor {
        Err(ScsiOutcome::check(Sense::INTERNAL_TARGET_FAILURE))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvme_statuses_become_the_sense_a_scsi_device_gives() {
        let conflict = refused(NvmeError::Status(NvmeStatus(0x4083)), Sense::INVALID_FIELD);
        assert_eq!(conflict, ScsiOutcome::conflict());
        let invalid = refused(
            NvmeError::Status(NvmeStatus::INVALID_FIELD),
            Sense::INVALID_FIELD_IN_PARAMETER_LIST,
        );
        assert_eq!(invalid.sense, Some(Sense::INVALID_FIELD_IN_PARAMETER_LIST));
        let unsupported = refused(
            NvmeError::Status(NvmeStatus::INVALID_OPCODE),
            Sense::INVALID_FIELD,
        );
        assert_eq!(
            unsupported.sense,
            Some(Sense::INVALID_COMMAND_OPERATION_CODE)
        );
        let path = refused(NvmeError::Status(NvmeStatus(0x370)), Sense::INVALID_FIELD);
        assert_eq!(path.sense, Some(Sense::LOGICAL_UNIT_COMMUNICATION_FAILURE));
        let garbled = refused(
            NvmeError::Malformed(ReportDecodeError::UnknownType(9)),
            Sense::INVALID_FIELD,
        );
        assert_eq!(garbled.sense, Some(Sense::INTERNAL_TARGET_FAILURE));
        let failed = refused(NvmeError::Errno(5), Sense::INVALID_FIELD);
        assert!(failed.is_transport_failure());
        assert_eq!(failed.sense, Some(Sense::IO_PROCESS_TERMINATED));
    }
}
