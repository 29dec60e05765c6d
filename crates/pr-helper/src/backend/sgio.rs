//! The SG_IO backend: one `SG_IO` ioctl per command on a SCSI block or sg device.
//!
//! The command is sent and its outcome mapped by [`sg_io::execute_pr`], which `prtool
//! --direct` and the multipath backend use too. Unlike QEMU's helper, the CDB goes out
//! with the opcode's real length (10 for PR IN and OUT), the data buffer is exactly the
//! transfer length from the CDB rather than a fixed 8192 bytes, the timeout is the
//! configured one (QEMU uses 1 ms), and the payload returned is clamped both to the
//! allocation length and to what the device transferred.

use std::time::Duration;

use pr_protocol::Response;
use scsi::pr::{PrOutAction, PrOutCdb, PrOutParams};
use scsi::status::Status;

use super::{Backend, Command};

/// What the SG_IO backend is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SgIoSettings {
    /// Timeout handed to the ioctl.
    pub timeout: Duration,
}

/// Executes commands with one `SG_IO` on the received descriptor.
#[derive(Debug, Clone)]
pub struct SgIoBackend {
    timeout: Duration,
}

impl SgIoBackend {
    /// The backend for `settings`.
    pub fn new(settings: &SgIoSettings) -> Self {
        Self {
            timeout: settings.timeout,
        }
    }
}

impl Backend for SgIoBackend {
    fn execute(&self, command: &Command<'_>) -> Response {
        let mut executed =
            sg_io::execute_pr(command.fd, command.cdb, command.data_out, self.timeout);
        if executed.status == Status::RESERVATION_CONFLICT
            && !executed.is_transport_failure()
            && let Some(key) = migrate_pr_register(command.cdb, command.data_out)
            && self.nexus_holds(command, key)
        {
            tracing::info!(
                key = format_args!("0x{key:x}"),
                "REGISTER (0, K) on a nexus that holds K already (QEMU's migrate-pr on the same host): GOOD"
            );
            executed = sg_io::PrExecution {
                status: Status::GOOD,
                sense: [0; sg_io::SENSE_BUFFER_SIZE],
                data: Vec::new(),
                outcome: executed.outcome,
            };
        }
        Response {
            status: executed.status.as_u8(),
            sense: executed.sense,
            data: executed.data,
        }
    }
}

impl SgIoBackend {
    /// Whether the descriptor's I_T nexus holds `key`: REGISTER of `key` over itself,
    /// which the device accepts only from a nexus registered with exactly that key
    /// (and which changes nothing else; the APTPL bit is the guest's). Atomic on the
    /// device, and needs no name for the nexus.
    fn nexus_holds(&self, command: &Command<'_>, key: u64) -> bool {
        let mut list = command.data_out.to_vec();
        if let Some(reservation_key) = list.get_mut(0..8) {
            reservation_key.copy_from_slice(&key.to_be_bytes());
        }
        let probe = sg_io::execute_pr(command.fd, command.cdb, &list, self.timeout);
        probe.status == Status::GOOD && !probe.is_transport_failure()
    }
}

/// The key of QEMU's migrate-pr REGISTER on the destination: REGISTER (not AND
/// IGNORE) with RESERVATION KEY 0, a non-zero SERVICE ACTION RESERVATION KEY and
/// no SPEC_I_PT. On the same host (a cpr-transfer live update, a local migration) the
/// nexus already holds that key and a strict device answers RESERVATION CONFLICT,
/// which fails the migration; the state the command asks for already holds, so the
/// helper answers GOOD (a deliberate difference from qemu-pr-helper, in the README).
fn migrate_pr_register(cdb: &[u8], data_out: &[u8]) -> Option<u64> {
    let out = PrOutCdb::decode(cdb).ok()?;
    if out.action != PrOutAction::Register {
        return None;
    }
    let params = PrOutParams::decode_header(data_out).ok()?;
    (params.reservation_key == 0 && params.service_action_key != 0 && !params.spec_i_pt)
        .then_some(params.service_action_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_qemus_migrate_pr_register_is_recognised() {
        let list = |rk: u64, sak: u64, spec_i_pt: bool| {
            let mut list = vec![0u8; 24];
            list[0..8].copy_from_slice(&rk.to_be_bytes());
            list[8..16].copy_from_slice(&sak.to_be_bytes());
            if spec_i_pt {
                list[20] = 0x08;
            }
            list
        };
        let cdb = |action: PrOutAction| {
            scsi::pr::pr_out_cdb(action, scsi::pr::Scope::LogicalUnit, None, 24)
        };
        assert_eq!(
            migrate_pr_register(&cdb(PrOutAction::Register), &list(0, 0xa1, false)),
            Some(0xa1)
        );
        assert_eq!(
            migrate_pr_register(&cdb(PrOutAction::Register), &list(0xa0, 0xa1, false)),
            None
        );
        assert_eq!(
            migrate_pr_register(&cdb(PrOutAction::Register), &list(0, 0, false)),
            None
        );
        assert_eq!(
            migrate_pr_register(&cdb(PrOutAction::Register), &list(0, 0xa1, true)),
            None
        );
        assert_eq!(
            migrate_pr_register(
                &cdb(PrOutAction::RegisterAndIgnoreExistingKey),
                &list(0, 0xa1, false)
            ),
            None
        );
        let read_keys = scsi::pr::pr_in_cdb(scsi::pr::PrInAction::ReadKeys, 8);
        assert_eq!(migrate_pr_register(&read_keys, &[]), None);
    }
}
