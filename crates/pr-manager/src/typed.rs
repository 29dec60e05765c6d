//! The typed layer: PERSISTENT RESERVE commands built with the `scsi`
//! encoders and PR IN payloads decoded into `scsi::pr` types. Sans-I/O, so
//! the blocking client, the async client and `prtool --direct` share it.

use scsi::pr::{
    Decoded, FullStatus, PrEncodeError, PrInAction, PrOutAction, PrOutParams, ReadKeys,
    ReadReservation, RegisterMoveParams, ReportCapabilities, ReservationType, Scope, TransportId,
    pr_in_cdb, pr_out_cdb,
};
use scsi::status::Status;

use crate::command::Reply;
use crate::error::{Error, ScsiError};

/// Allocation length the typed PR IN commands use: the protocol's maximum,
/// so a device only truncates when it has more than that to say.
pub const PR_IN_ALLOCATION: u16 = 8192;

/// A decoded PR IN payload, by service action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrInData {
    /// READ KEYS.
    Keys(Decoded<ReadKeys>),
    /// READ RESERVATION.
    Reservation(Decoded<ReadReservation>),
    /// REPORT CAPABILITIES.
    Capabilities(Decoded<ReportCapabilities>),
    /// READ FULL STATUS.
    FullStatus(Decoded<FullStatus>),
}

/// Decodes the payload of a PR IN `action` (possibly truncated).
pub fn decode_pr_in(action: PrInAction, payload: &[u8]) -> Result<PrInData, Error> {
    Ok(match action {
        PrInAction::ReadKeys => PrInData::Keys(ReadKeys::decode(payload)?),
        PrInAction::ReadReservation => PrInData::Reservation(ReadReservation::decode(payload)?),
        PrInAction::ReportCapabilities => {
            PrInData::Capabilities(ReportCapabilities::decode(payload)?)
        }
        PrInAction::ReadFullStatus => PrInData::FullStatus(FullStatus::decode(payload)?),
    })
}

/// The CDB of a PR IN `action` with the given allocation length.
pub fn pr_in_command(action: PrInAction, allocation: u16) -> [u8; 10] {
    pr_in_cdb(action, allocation)
}

/// The parameter list of a PR OUT command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrOutList {
    /// The basic list of every service action but REGISTER AND MOVE.
    Basic(PrOutParams),
    /// REGISTER AND MOVE's list.
    Move(RegisterMoveParams),
}

/// A PERSISTENT RESERVE OUT command: service action, type, parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrOutCommand {
    /// The service action.
    pub action: PrOutAction,
    /// The reservation type (for the actions that use one).
    pub rtype: Option<ReservationType>,
    /// The parameter list.
    pub params: PrOutList,
}

/// Options of REGISTER and REGISTER AND IGNORE EXISTING KEY.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterOptions {
    /// Activate persist through power loss.
    pub aptpl: bool,
    /// Register through all target ports.
    pub all_tg_pt: bool,
    /// Also register these initiator ports (sets SPEC_I_PT).
    pub transport_ids: Vec<TransportId>,
}

impl PrOutCommand {
    fn basic(
        action: PrOutAction,
        rtype: Option<ReservationType>,
        reservation_key: u64,
        service_action_key: u64,
    ) -> Self {
        Self {
            action,
            rtype,
            params: PrOutList::Basic(PrOutParams {
                reservation_key,
                service_action_key,
                ..PrOutParams::default()
            }),
        }
    }

    fn registration(action: PrOutAction, key: u64, new_key: u64, options: RegisterOptions) -> Self {
        Self {
            action,
            rtype: None,
            params: PrOutList::Basic(PrOutParams {
                reservation_key: key,
                service_action_key: new_key,
                spec_i_pt: !options.transport_ids.is_empty(),
                all_tg_pt: options.all_tg_pt,
                aptpl: options.aptpl,
                transport_ids: options.transport_ids,
            }),
        }
    }

    /// REGISTER: replace `key` (0 when not registered) with `new_key`
    /// (0 unregisters).
    pub fn register(key: u64, new_key: u64, options: RegisterOptions) -> Self {
        Self::registration(PrOutAction::Register, key, new_key, options)
    }

    /// REGISTER AND IGNORE EXISTING KEY: register `new_key` whatever is registered.
    pub fn register_and_ignore(new_key: u64, options: RegisterOptions) -> Self {
        Self::registration(
            PrOutAction::RegisterAndIgnoreExistingKey,
            0,
            new_key,
            options,
        )
    }

    /// RESERVE with `key` a reservation of type `rtype`.
    pub fn reserve(key: u64, rtype: ReservationType) -> Self {
        Self::basic(PrOutAction::Reserve, Some(rtype), key, 0)
    }

    /// RELEASE the reservation of type `rtype` held with `key`.
    pub fn release(key: u64, rtype: ReservationType) -> Self {
        Self::basic(PrOutAction::Release, Some(rtype), key, 0)
    }

    /// CLEAR every registration and the reservation.
    pub fn clear(key: u64) -> Self {
        Self::basic(PrOutAction::Clear, None, key, 0)
    }

    /// PREEMPT the registrations (and reservation) of `victim`.
    pub fn preempt(key: u64, victim: u64, rtype: ReservationType) -> Self {
        Self::basic(PrOutAction::Preempt, Some(rtype), key, victim)
    }

    /// PREEMPT AND ABORT: as preempt, also aborting the victim's tasks.
    pub fn preempt_and_abort(key: u64, victim: u64, rtype: ReservationType) -> Self {
        Self::basic(PrOutAction::PreemptAndAbort, Some(rtype), key, victim)
    }

    /// REGISTER AND MOVE the reservation to the port in `params`.
    pub fn register_and_move(params: RegisterMoveParams, rtype: ReservationType) -> Self {
        Self {
            action: PrOutAction::RegisterAndMove,
            rtype: Some(rtype),
            params: PrOutList::Move(params),
        }
    }

    /// The CDB and the parameter list to send.
    pub fn encode(&self) -> Result<([u8; 10], Vec<u8>), PrEncodeError> {
        let params = match &self.params {
            PrOutList::Basic(p) => p.encode()?,
            PrOutList::Move(p) => p.encode()?,
        };
        // The helper protocol carries at most 8192 bytes, and only the low
        // 16 bits of the length: refuse rather than send a lie.
        let len = u16::try_from(params.len())
            .ok()
            .filter(|&len| usize::from(len) <= pr_protocol::MAX_TRANSFER)
            .ok_or(PrEncodeError::TooLong {
                what: "PR OUT parameter list",
                len: params.len(),
            })?;
        let cdb = pr_out_cdb(
            self.action,
            Scope::LogicalUnit,
            self.rtype.filter(|_| self.action.uses_type()),
            u32::from(len),
        );
        Ok((cdb, params))
    }
}

/// GOOD and a live link, or the error that says why not.
pub fn check_reply(reply: Reply) -> Result<Reply, Error> {
    if let Some(failure) = reply.failure {
        return Err(failure);
    }
    if reply.status != Status::GOOD {
        return Err(Error::Scsi(ScsiError {
            status: reply.status,
            sense: reply.decoded_sense(),
        }));
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scsi::pr::{PrOutCdb, ReservationType as T};

    #[test]
    fn reserve_sets_type_and_key() {
        let (cdb, params) = PrOutCommand::reserve(0xAB, T::WriteExclusive)
            .encode()
            .unwrap();
        let decoded = PrOutCdb::decode(&cdb).unwrap();
        assert_eq!(decoded.action, PrOutAction::Reserve);
        assert_eq!(decoded.scope_type.rtype(), Some(T::WriteExclusive));
        assert_eq!(decoded.parameter_list_length, 24);
        assert_eq!(PrOutParams::decode(&params).unwrap().reservation_key, 0xAB);
    }

    #[test]
    fn register_ignores_type_and_carries_transport_ids() {
        let options = RegisterOptions {
            aptpl: true,
            all_tg_pt: false,
            transport_ids: vec![TransportId::Sas {
                address: 0x5000_0000_0000_0001,
            }],
        };
        let (cdb, params) = PrOutCommand::register(0, 7, options).encode().unwrap();
        let decoded = PrOutCdb::decode(&cdb).unwrap();
        assert_eq!(decoded.scope_type.type_code(), 0);
        let list = PrOutParams::decode(&params).unwrap();
        assert!(list.spec_i_pt && list.aptpl);
        assert_eq!(list.service_action_key, 7);
        assert_eq!(list.transport_ids.len(), 1);
        assert_eq!(
            usize::try_from(decoded.parameter_list_length).unwrap(),
            params.len()
        );
    }

    #[test]
    fn register_and_move_uses_its_own_list() {
        let params = RegisterMoveParams {
            reservation_key: 1,
            service_action_key: 2,
            unreg: true,
            aptpl: false,
            relative_target_port: 3,
            transport_id: TransportId::FibreChannel {
                n_port_name: 0x2100_0000_0000_0001,
            },
        };
        let (cdb, bytes) = PrOutCommand::register_and_move(params.clone(), T::ExclusiveAccess)
            .encode()
            .unwrap();
        assert_eq!(cdb[1], PrOutAction::RegisterAndMove.code());
        assert_eq!(RegisterMoveParams::decode(&bytes).unwrap(), params);
    }

    #[test]
    fn too_many_transport_ids_are_refused() {
        let options = RegisterOptions {
            transport_ids: vec![TransportId::Sas { address: 1 }; 400],
            ..RegisterOptions::default()
        };
        assert!(matches!(
            PrOutCommand::register(0, 1, options).encode(),
            Err(PrEncodeError::TooLong { .. })
        ));
    }
}
