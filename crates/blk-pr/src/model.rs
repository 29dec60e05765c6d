//! A pure model of one NVMe namespace's reservations, as the NVM Express Base
//! Specification describes them: registrants by Host Identifier, one reservation
//! (holder and type, every registrant a holder under the all-registrants types), the
//! generation counter and the persist-through-power-loss state. It answers the four
//! reservation commands with the statuses the specification gives.
//!
//! It is the device the property tests drive through [`crate::translate`], and a
//! stand-in NVMe namespace for tests of code above the translation. Aborting commands
//! (Preempt and Abort) is not modelled: there are no commands in flight.

use crate::nvme::{
    Acquire, AcquireAction, HostId, NvmeReservationType, NvmeStatus, PtplChange, Register,
    RegisterAction, Registrant, Release, ReleaseAction, ReservationCapabilities, ReservationStatus,
};
use crate::translate::over_nvme::{NvmeError, NvmeReservations};

/// The reservation state of one namespace, shared by every host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceModel {
    capabilities: ReservationCapabilities,
    generation: u32,
    ptpl_state: bool,
    /// Registrants in registration order (the report's order).
    registrants: Vec<(HostId, u64)>,
    /// The holder and type; under the all-registrants types the holder is only the
    /// registrant the reservation was created by (every registrant holds it).
    reservation: Option<(HostId, NvmeReservationType)>,
    /// Hosts connected through two controllers: the report lists them twice.
    two_controllers: Vec<HostId>,
}

/// One host's view of the namespace: what its commands are executed as.
#[derive(Debug)]
pub struct ModelHost<'a> {
    pub namespace: &'a mut NamespaceModel,
    pub host: HostId,
}

fn conflict<T>() -> Result<T, NvmeError> {
    Err(NvmeError::Status(NvmeStatus(
        NvmeStatus::RESERVATION_CONFLICT.0 | NvmeStatus::DNR,
    )))
}

fn invalid_field<T>() -> Result<T, NvmeError> {
    Err(NvmeError::Status(NvmeStatus(
        NvmeStatus::INVALID_FIELD.0 | NvmeStatus::DNR,
    )))
}

impl NamespaceModel {
    /// A namespace with no registrants and these capabilities.
    pub fn new(capabilities: ReservationCapabilities) -> NamespaceModel {
        NamespaceModel {
            capabilities,
            generation: 0,
            ptpl_state: false,
            registrants: Vec::new(),
            reservation: None,
            two_controllers: Vec::new(),
        }
    }

    /// `host` is connected through two controllers (it appears twice in reports).
    pub fn with_two_controllers(mut self, host: HostId) -> NamespaceModel {
        self.two_controllers.push(host);
        self
    }

    /// `host`'s view.
    pub fn host(&mut self, host: HostId) -> ModelHost<'_> {
        ModelHost {
            namespace: self,
            host,
        }
    }

    fn key_of(&self, host: &HostId) -> Option<u64> {
        self.registrants
            .iter()
            .find(|(h, _)| h == host)
            .map(|&(_, key)| key)
    }

    /// Whether `host` holds the reservation.
    pub fn is_holder(&self, host: &HostId) -> bool {
        match self.reservation {
            None => false,
            Some((_, rtype)) if rtype.all_registrants() => self.key_of(host).is_some(),
            Some((holder, _)) => holder == *host,
        }
    }

    /// The Reservation Status data: one entry per controller of each registrant.
    pub fn status(&self) -> ReservationStatus {
        let mut registrants = Vec::new();
        for (index, &(host, key)) in self.registrants.iter().enumerate() {
            let controllers = if self.two_controllers.contains(&host) {
                2
            } else {
                1
            };
            for controller in 0..controllers {
                let id = u16::try_from(index * 2 + controller + 1).unwrap_or(u16::MAX);
                registrants.push(Registrant {
                    controller_id: id,
                    holds_reservation: self.is_holder(&host),
                    host_id: host,
                    key,
                });
            }
        }
        ReservationStatus {
            generation: self.generation,
            rtype: self.reservation.map(|(_, rtype)| rtype),
            ptpl_state: self.ptpl_state,
            registrants,
        }
    }

    fn bump(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// The registrant leaves; the reservation goes with it unless it is an
    /// all-registrants one and registrants remain (another then stands as holder).
    fn unregister(&mut self, host: &HostId) {
        self.registrants.retain(|(h, _)| h != host);
        let Some((holder, rtype)) = self.reservation else {
            return;
        };
        if rtype.all_registrants() {
            match self.registrants.first() {
                None => self.reservation = None,
                Some(&(first, _)) if holder == *host => self.reservation = Some((first, rtype)),
                Some(_) => {}
            }
        } else if holder == *host {
            self.reservation = None;
        }
    }

    fn register(&mut self, host: HostId, command: &Register) -> Result<(), NvmeError> {
        let ptpl = match command.ptpl {
            PtplChange::NoChange => None,
            PtplChange::Clear => Some(false),
            PtplChange::Set if self.capabilities.persist_through_power_loss => Some(true),
            PtplChange::Set => return invalid_field(),
        };
        let current = self.key_of(&host);
        let key_ok = |key: u64| command.ignore_existing_key || command.current_key == key;
        match (command.action, current) {
            (RegisterAction::Register, Some(key)) if key == command.new_key => {}
            (RegisterAction::Register, Some(_)) => return conflict(),
            (RegisterAction::Register, None) => self.registrants.push((host, command.new_key)),
            (RegisterAction::Unregister, Some(key)) if key_ok(key) => self.unregister(&host),
            (RegisterAction::Replace, Some(key)) if key_ok(key) => {
                if let Some(entry) = self.registrants.iter_mut().find(|(h, _)| *h == host) {
                    entry.1 = command.new_key;
                }
            }
            (RegisterAction::Unregister | RegisterAction::Replace, _) => return conflict(),
        }
        if let Some(state) = ptpl {
            self.ptpl_state = state;
        }
        self.bump();
        Ok(())
    }

    /// Unregisters every registrant whose key is `key` (the issuing host's too);
    /// none: Reservation Conflict.
    fn unregister_key(&mut self, key: u64) -> Result<(), NvmeError> {
        let doomed: Vec<HostId> = self
            .registrants
            .iter()
            .filter(|&&(_, k)| k == key)
            .map(|&(h, _)| h)
            .collect();
        if doomed.is_empty() {
            return conflict();
        }
        for host in &doomed {
            self.unregister(host);
        }
        Ok(())
    }

    fn acquire(&mut self, host: HostId, command: &Acquire) -> Result<(), NvmeError> {
        if !self.capabilities.supports(command.rtype) {
            return invalid_field();
        }
        if self.key_of(&host) != Some(command.current_key) {
            return conflict();
        }
        let preempt_key = command.preempt_key;
        match command.action {
            AcquireAction::Acquire => {
                return match self.reservation {
                    None => {
                        self.reservation = Some((host, command.rtype));
                        Ok(())
                    }
                    Some((_, rtype)) if rtype == command.rtype && self.is_holder(&host) => Ok(()),
                    Some(_) => conflict(),
                };
            }
            AcquireAction::Preempt | AcquireAction::PreemptAndAbort => {}
        }
        match self.reservation {
            Some((_, rtype)) if rtype.all_registrants() && preempt_key == 0 => {
                // Every other registrant goes; the host holds a new reservation.
                self.registrants.retain(|(h, _)| *h == host);
                self.reservation = Some((host, command.rtype));
            }
            Some((_, rtype)) if rtype.all_registrants() => self.unregister_key(preempt_key)?,
            Some((holder, _)) if self.key_of(&holder) == Some(preempt_key) => {
                // The holder is preempted: registrants with its key go (the issuing
                // host stays), and the host holds the reservation of the new type.
                self.registrants
                    .retain(|&(h, k)| h == host || k != preempt_key);
                self.reservation = Some((host, command.rtype));
            }
            _ if preempt_key == 0 => return invalid_field(),
            _ => self.unregister_key(preempt_key)?,
        }
        self.bump();
        Ok(())
    }

    fn release(&mut self, host: HostId, command: &Release) -> Result<(), NvmeError> {
        if self.key_of(&host) != Some(command.current_key) {
            return conflict();
        }
        match command.action {
            ReleaseAction::Clear => {
                self.registrants.clear();
                self.reservation = None;
                self.bump();
                Ok(())
            }
            ReleaseAction::Release => match self.reservation {
                None => Ok(()),
                Some(_) if !self.is_holder(&host) => Ok(()),
                Some((_, rtype)) if Some(rtype) != command.rtype => invalid_field(),
                Some(_) => {
                    self.reservation = None;
                    Ok(())
                }
            },
        }
    }
}

impl NvmeReservations for ModelHost<'_> {
    fn host_id(&mut self) -> Result<HostId, NvmeError> {
        Ok(self.host)
    }

    fn capabilities(&mut self) -> Result<ReservationCapabilities, NvmeError> {
        Ok(self.namespace.capabilities)
    }

    fn report(&mut self) -> Result<ReservationStatus, NvmeError> {
        Ok(self.namespace.status())
    }

    fn register(&mut self, command: &Register) -> Result<(), NvmeError> {
        self.namespace.register(self.host, command)
    }

    fn acquire(&mut self, command: &Acquire) -> Result<(), NvmeError> {
        self.namespace.acquire(self.host, command)
    }

    fn release(&mut self, command: &Release) -> Result<(), NvmeError> {
        self.namespace.release(self.host, command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: HostId = HostId([0xA; 16]);
    const B: HostId = HostId([0xB; 16]);

    fn register(action: RegisterAction, current: u64, new: u64) -> Register {
        Register {
            action,
            current_key: current,
            new_key: new,
            ignore_existing_key: false,
            ptpl: PtplChange::NoChange,
        }
    }

    fn acquire(action: AcquireAction, current: u64, preempt: u64, rtype: u8) -> Acquire {
        Acquire {
            action,
            current_key: current,
            preempt_key: preempt,
            rtype: NvmeReservationType::from_code(rtype).unwrap(),
        }
    }

    /// A registered with 0xA1, B with 0xB2.
    fn a_and_b_registered(mut ns: NamespaceModel) -> NamespaceModel {
        ns.host(A)
            .register(&register(RegisterAction::Register, 0, 0xA1))
            .unwrap();
        ns.host(B)
            .register(&register(RegisterAction::Register, 0, 0xB2))
            .unwrap();
        ns
    }

    fn is_conflict(result: Result<(), NvmeError>) -> bool {
        matches!(result, Err(NvmeError::Status(s)) if s.code() == NvmeStatus::RESERVATION_CONFLICT)
    }

    #[test]
    fn registering_twice_with_another_key_conflicts_and_replace_checks_the_key() {
        let mut ns = NamespaceModel::new(ReservationCapabilities::ALL);
        let mut a = ns.host(A);
        a.register(&register(RegisterAction::Register, 0, 0xA1))
            .unwrap();
        assert!(is_conflict(a.register(&register(
            RegisterAction::Register,
            0,
            0xA2
        ))));
        // The same key again succeeds (and counts as a registration).
        a.register(&register(RegisterAction::Register, 0, 0xA1))
            .unwrap();
        assert!(is_conflict(a.register(&register(
            RegisterAction::Replace,
            0xFF,
            0xA2
        ))));
        a.register(&register(RegisterAction::Replace, 0xA1, 0xA2))
            .unwrap();
        let ignore = Register {
            ignore_existing_key: true,
            ..register(RegisterAction::Unregister, 0xFF, 0)
        };
        a.register(&ignore).unwrap();
        assert_eq!(ns.status().generation, 4);
        assert!(ns.status().registrants.is_empty());
        assert!(is_conflict(ns.host(B).register(&register(
            RegisterAction::Replace,
            0,
            1
        ))));
    }

    #[test]
    fn only_registrants_with_their_key_acquire_and_types_must_match() {
        let mut ns = a_and_b_registered(NamespaceModel::new(ReservationCapabilities::ALL));
        assert!(is_conflict(ns.host(A).acquire(&acquire(
            AcquireAction::Acquire,
            0xB2,
            0,
            1
        ))));
        ns.host(A)
            .acquire(&acquire(AcquireAction::Acquire, 0xA1, 0, 1))
            .unwrap();
        ns.host(A)
            .acquire(&acquire(AcquireAction::Acquire, 0xA1, 0, 1))
            .unwrap();
        assert!(is_conflict(ns.host(A).acquire(&acquire(
            AcquireAction::Acquire,
            0xA1,
            0,
            2
        ))));
        assert!(is_conflict(ns.host(B).acquire(&acquire(
            AcquireAction::Acquire,
            0xB2,
            0,
            1
        ))));
        // Acquire changes no generation.
        assert_eq!(ns.status().generation, 2);
        let release = Release {
            action: ReleaseAction::Release,
            current_key: 0xA1,
            rtype: NvmeReservationType::from_code(2),
        };
        assert_eq!(
            ns.host(A).release(&release),
            Err(NvmeError::Status(NvmeStatus(0x4002)))
        );
    }

    #[test]
    fn preempting_the_holder_moves_the_reservation_and_removes_its_key() {
        let mut ns = a_and_b_registered(NamespaceModel::new(ReservationCapabilities::ALL));
        ns.host(A)
            .acquire(&acquire(AcquireAction::Acquire, 0xA1, 0, 1))
            .unwrap();
        ns.host(B)
            .acquire(&acquire(AcquireAction::PreemptAndAbort, 0xB2, 0xA1, 3))
            .unwrap();
        let status = ns.status();
        assert_eq!(status.rtype, NvmeReservationType::from_code(3));
        assert_eq!(status.registrants.len(), 1);
        assert_eq!(status.registrants[0].host_id, B);
        assert!(status.registrants[0].holds_reservation);
        assert_eq!(status.generation, 3);
        // PRKEY 0 names nobody outside an all-registrants reservation.
        assert_eq!(
            ns.host(B)
                .acquire(&acquire(AcquireAction::Preempt, 0xB2, 0, 3)),
            Err(NvmeError::Status(NvmeStatus(0x4002)))
        );
    }

    #[test]
    fn an_all_registrants_reservation_outlives_its_creator_until_the_last_registrant() {
        let two = NamespaceModel::new(ReservationCapabilities::ALL).with_two_controllers(B);
        let mut ns = a_and_b_registered(two);
        ns.host(A)
            .acquire(&acquire(AcquireAction::Acquire, 0xA1, 0, 5))
            .unwrap();
        assert!(ns.is_holder(&B));
        assert_eq!(ns.status().registrants.len(), 3);
        ns.host(A)
            .register(&register(RegisterAction::Unregister, 0xA1, 0))
            .unwrap();
        assert_eq!(ns.status().rtype, NvmeReservationType::from_code(5));
        ns.host(B)
            .register(&register(RegisterAction::Unregister, 0xB2, 0))
            .unwrap();
        assert_eq!(ns.status().rtype, None);
    }

    #[test]
    fn clear_needs_the_key_and_empties_everything() {
        let mut ns = NamespaceModel::new(ReservationCapabilities::ALL);
        ns.host(A)
            .register(&register(RegisterAction::Register, 0, 0xA1))
            .unwrap();
        let clear = |key| Release {
            action: ReleaseAction::Clear,
            current_key: key,
            rtype: None,
        };
        assert!(is_conflict(ns.host(A).release(&clear(0xA2))));
        assert!(is_conflict(ns.host(B).release(&clear(0xA1))));
        ns.host(A).release(&clear(0xA1)).unwrap();
        assert_eq!(ns.status().registrants, []);
        assert_eq!(ns.status().generation, 2);
    }

    #[test]
    fn persist_through_power_loss_needs_the_capability() {
        let without = ReservationCapabilities {
            persist_through_power_loss: false,
            ..ReservationCapabilities::ALL
        };
        let mut ns = NamespaceModel::new(without);
        let set = Register {
            ptpl: PtplChange::Set,
            ..register(RegisterAction::Register, 0, 0xA1)
        };
        assert_eq!(
            ns.host(A).register(&set),
            Err(NvmeError::Status(NvmeStatus(0x4002)))
        );
        let mut capable = NamespaceModel::new(ReservationCapabilities::ALL);
        capable.host(A).register(&set).unwrap();
        assert!(capable.status().ptpl_state);
    }
}
