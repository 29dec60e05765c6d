//! PERSISTENT RESERVE IN: the four payloads, built from the unit's state.

use crate::outcome::Outcome;
use crate::params::refuse;
use crate::unit::LogicalUnit;
use scsi::pr::{PrInAction, PrInCdb, ScopeType};

/// REPORT CAPABILITIES byte 2: SIP_C, ATP_C and PTPL_C (no CRH: no SPC-2 reservations).
const CAPABILITY_FLAGS: u8 = 0x08 | 0x04 | 0x01;
/// Byte 3 bit 7: the type mask below is valid.
const TYPE_MASK_VALID: u8 = 0x80;
/// Type mask byte 4: WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX; byte 5: EX_AC_AR.
const TYPE_MASK: [u8; 2] = [0x80 | 0x40 | 0x20 | 0x08 | 0x02, 0x01];

impl LogicalUnit {
    /// Executes PERSISTENT RESERVE IN; the payload is cut to the allocation length.
    pub fn persistent_reserve_in(&self, cdb: &[u8]) -> Outcome {
        let cdb = match PrInCdb::decode(cdb) {
            Ok(cdb) => cdb,
            Err(error) => return refuse(error.sense()),
        };
        let mut payload = match cdb.action {
            PrInAction::ReadKeys => self.read_keys(),
            PrInAction::ReadReservation => self.read_reservation(),
            PrInAction::ReportCapabilities => self.report_capabilities(),
            PrInAction::ReadFullStatus => self.read_full_status(),
        };
        payload.truncate(usize::from(cdb.allocation_length));
        Outcome::Good(payload)
    }

    /// Generation and additional length, the header of three of the payloads.
    fn header(&self, additional: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + additional);
        out.extend_from_slice(&self.generation().to_be_bytes());
        out.extend_from_slice(&u32::try_from(additional).unwrap_or(u32::MAX).to_be_bytes());
        out
    }

    fn read_keys(&self) -> Vec<u8> {
        let keys = self.registrations();
        let mut out = self.header(keys.len().saturating_mul(8));
        for registration in keys {
            out.extend_from_slice(&registration.key.to_be_bytes());
        }
        out
    }

    fn read_reservation(&self) -> Vec<u8> {
        let Some(reservation) = self.reservation() else {
            return self.header(0);
        };
        let mut out = self.header(16);
        // All-registrants reservations report key 0: there is no single holder.
        let key = if reservation.rtype.all_registrants() {
            0
        } else {
            self.key_of(&reservation.holder).unwrap_or(0)
        };
        out.extend_from_slice(&key.to_be_bytes());
        out.extend_from_slice(&[0; 4]); // obsolete
        out.push(0);
        out.push(ScopeType::new(reservation.scope, Some(reservation.rtype)).0);
        out.extend_from_slice(&[0; 2]); // obsolete
        out
    }

    fn report_capabilities(&self) -> Vec<u8> {
        let mut out = vec![0u8; 8];
        out[1] = 8; // length
        out[2] = CAPABILITY_FLAGS;
        out[3] = TYPE_MASK_VALID | u8::from(self.aptpl());
        out[4] = TYPE_MASK[0];
        out[5] = TYPE_MASK[1];
        out
    }

    fn read_full_status(&self) -> Vec<u8> {
        let mut descriptors = Vec::new();
        for registration in self.registrations() {
            let holder = self.is_holder(&registration.nexus);
            // Registrations only hold encodable IDs (see `params::registrable`).
            let tid = registration.nexus.initiator.to_bytes().unwrap_or_default();
            descriptors.extend_from_slice(&registration.key.to_be_bytes());
            descriptors.extend_from_slice(&[0; 4]);
            descriptors.push(u8::from(registration.all_tg_pt) << 1 | u8::from(holder));
            let scope_type = match self.reservation() {
                Some(r) if holder => ScopeType::new(r.scope, Some(r.rtype)).0,
                _ => 0,
            };
            descriptors.push(scope_type);
            descriptors.extend_from_slice(&[0; 4]);
            descriptors.extend_from_slice(&registration.nexus.target_port.to_be_bytes());
            descriptors.extend_from_slice(&u32::try_from(tid.len()).unwrap_or(0).to_be_bytes());
            descriptors.extend_from_slice(&tid);
        }
        let mut out = self.header(descriptors.len());
        out.extend_from_slice(&descriptors);
        out
    }
}
