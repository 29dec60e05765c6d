//! PERSISTENT RESERVE IN: the four payloads, built from the unit's state and
//! encoded with `scsi`'s PR IN data types.

use crate::outcome::Outcome;
use crate::params::refuse;
use crate::unit::LogicalUnit;
use scsi::pr::{
    FullStatus, FullStatusDescriptor, PrInAction, PrInCdb, ReadKeys, ReadReservation,
    ReportCapabilities, ScopeType, TypeMask,
};
use scsi::sense::Sense;

impl LogicalUnit {
    /// Executes PERSISTENT RESERVE IN; the payload is cut to the allocation length.
    pub fn persistent_reserve_in(&self, cdb: &[u8]) -> Outcome {
        let cdb = match PrInCdb::decode(cdb) {
            Ok(cdb) => cdb,
            Err(error) => return refuse(error.sense()),
        };
        let payload = match cdb.action {
            PrInAction::ReadKeys => self.read_keys().encode(),
            PrInAction::ReadReservation => Ok(self.read_reservation().encode()),
            PrInAction::ReportCapabilities => Ok(self.report_capabilities().encode().to_vec()),
            PrInAction::ReadFullStatus => self.read_full_status().encode(),
        };
        match payload {
            Ok(mut payload) => {
                payload.truncate(usize::from(cdb.allocation_length));
                Outcome::Good(payload)
            }
            // Only a state too large for the length fields, or a TransportID given to
            // the API that cannot be encoded (the decoders admit none), gets here.
            Err(_) => refuse(Sense::INTERNAL_TARGET_FAILURE),
        }
    }

    fn read_keys(&self) -> ReadKeys {
        ReadKeys {
            generation: self.generation(),
            keys: self.registrations().iter().map(|r| r.key).collect(),
        }
    }

    fn read_reservation(&self) -> ReadReservation {
        let reservation = self.reservation().map(|reservation| {
            // All-registrants reservations report key 0: there is no single holder.
            let key = if reservation.rtype.all_registrants() {
                0
            } else {
                self.key_of(&reservation.holder).unwrap_or(0)
            };
            scsi::pr::Reservation {
                key,
                scope_type: ScopeType::new(reservation.scope, Some(reservation.rtype)),
            }
        });
        ReadReservation {
            generation: self.generation(),
            reservation,
        }
    }

    /// SIP_C, ATP_C and PTPL_C, every type; no CRH (no SPC-2 reservations), no
    /// REPLACE LOST RESERVATION, ALLOW COMMANDS 0.
    fn report_capabilities(&self) -> ReportCapabilities {
        ReportCapabilities {
            sip_c: true,
            atp_c: true,
            ptpl_c: true,
            tmv: true,
            ptpl_a: self.aptpl(),
            type_mask: TypeMask::ALL,
            ..ReportCapabilities::default()
        }
    }

    fn read_full_status(&self) -> FullStatus {
        let descriptors = self
            .registrations()
            .iter()
            .map(|registration| {
                let r_holder = self.is_holder(&registration.nexus);
                let scope_type = match self.reservation() {
                    Some(r) if r_holder => ScopeType::new(r.scope, Some(r.rtype)),
                    _ => ScopeType(0),
                };
                FullStatusDescriptor {
                    reservation_key: registration.key,
                    all_tg_pt: registration.all_tg_pt,
                    r_holder,
                    scope_type,
                    relative_target_port: registration.nexus.target_port,
                    transport_id: registration.nexus.initiator.clone(),
                }
            })
            .collect();
        FullStatus {
            generation: self.generation(),
            descriptors,
        }
    }
}
