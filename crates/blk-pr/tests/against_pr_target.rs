//! SCSI semantics over NVMe, checked against the SCSI reference: random sequences of
//! PERSISTENT RESERVE IN/OUT commands from three initiators go to `pr-target` (an
//! SPC-4 target, one logical unit, one target port) and, through
//! `execute_scsi_pr_over_nvme`, to an NVMe namespace model ([`blk_pr::model`]) where
//! each initiator is one host. Status, sense and PR IN data must be equal, except for
//! the deliberate differences the crate README lists (and `expected_difference`
//! below encodes, row by row). After every command both sides' full state is compared
//! through READ FULL STATUS and READ RESERVATION.

mod common;

use blk_pr::ScsiOutcome;
use blk_pr::model::NamespaceModel;
use blk_pr::nvme::ReservationCapabilities;
use blk_pr::translate::over_nvme::execute_scsi_pr_over_nvme;
use common::{Command, HOSTS, Sides, command, encode};
use pr_target::{LogicalUnit, Nexus, PrInAction, PrOutAction, build};
use proptest::prelude::*;
use scsi::pr::FULL_STATUS_DESCRIPTOR_LEN;
use scsi::sense::Sense;

/// The reference's PR IN data as the translation words it: ALL_TG_PT set in every
/// READ FULL STATUS descriptor (an NVMe registration is the host's on every
/// controller) and SIP_C clear in REPORT CAPABILITIES.
fn normalized_reference_data(action: PrInAction, full: &[u8]) -> Vec<u8> {
    let mut data = full.to_vec();
    match action {
        PrInAction::ReadFullStatus => {
            let mut at = 8;
            while at + FULL_STATUS_DESCRIPTOR_LEN <= data.len() {
                data[at + 12] |= 0x02;
                let id_len = u32::from_be_bytes(data[at + 20..at + 24].try_into().unwrap());
                at += FULL_STATUS_DESCRIPTOR_LEN + id_len as usize;
            }
        }
        PrInAction::ReportCapabilities => data[2] &= !0x08,
        _ => {}
    }
    data
}

struct Pair {
    reference: LogicalUnit,
    namespace: NamespaceModel,
}

impl Pair {
    fn new() -> Pair {
        Pair {
            reference: LogicalUnit::new(vec![1]),
            // The second host is connected through two controllers: reports list it
            // twice, SCSI must see one initiator.
            namespace: NamespaceModel::new(ReservationCapabilities::ALL)
                .with_two_controllers(HOSTS[1]),
        }
    }
}

impl Sides for Pair {
    const STATE: &[PrInAction] = &PrInAction::ALL;

    fn ours(&mut self, initiator: usize, cdb: &[u8], data_out: &[u8]) -> ScsiOutcome {
        let mut host = self.namespace.host(HOSTS[initiator]);
        execute_scsi_pr_over_nvme(&mut host, cdb, data_out)
    }

    fn reference(&mut self, initiator: usize, cdb: &[u8], data_out: &[u8]) -> ScsiOutcome {
        let nexus = Nexus::new(HOSTS[initiator].transport_id(), 1);
        let outcome = ScsiOutcome::from(self.reference.execute(&nexus, cdb, data_out));
        match (cdb[0], outcome.status.as_u8()) {
            (0x5E, 0) => {
                // Normalise the whole data, then cut it as the allocation length did.
                let action = PrInAction::from_code(cdb[1] & 0x1f).unwrap();
                let mut full_cdb = cdb.to_vec();
                full_cdb[7..9].copy_from_slice(&[0xFF, 0xFF]);
                let full = self.reference.execute(&nexus, &full_cdb, &[]);
                let mut data = normalized_reference_data(action, full.data());
                data.truncate(usize::from(u16::from_be_bytes([cdb[7], cdb[8]])));
                ScsiOutcome::good(data)
            }
            _ => outcome,
        }
    }

    /// Both sides answer the same, or the translation gives the documented answer.
    fn step(&mut self, initiator: usize, command: &Command) -> Result<(), TestCaseError> {
        let (cdb, data_out) = encode(command);
        let ours = self.ours(initiator, &cdb, &data_out);
        if let Some(documented) = common::registers_another_initiator(command) {
            // Checks both sides share (the list's length) may come first.
            let shared = ours.sense == Some(Sense::PARAMETER_LIST_LENGTH_ERROR);
            if !shared {
                prop_assert_eq!(ours, documented, "{:?} from {}", command, initiator);
                return Ok(());
            }
        }
        let reference = self.reference(initiator, &cdb, &data_out);
        prop_assert_eq!(&ours, &reference, "{:?} from {}", command, initiator);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn scsi_over_nvme_answers_as_the_scsi_reference(
        commands in prop::collection::vec((0..HOSTS.len(), command()), 1..40)
    ) {
        let mut pair = Pair::new();
        common::run(&mut pair, &commands)?;
    }
}

/// Each row of the difference table, once, by hand.
#[test]
fn the_deliberate_differences_are_the_documented_answers() {
    let mut pair = Pair::new();
    let (cdb, list) = build::register(0, 0xA1, false);
    assert_eq!(pair.ours(0, &cdb, &list), ScsiOutcome::good(Vec::new()));
    // SPEC_I_PT: refused, nothing registered for anyone else.
    let flags = build::Flags {
        spec_i_pt: true,
        ..build::Flags::default()
    };
    let tids = [HOSTS[2].transport_id()];
    let list = build::basic_list(0, 0xC3, flags, &tids);
    let cdb = build::pr_out(PrOutAction::Register, 0, u32::try_from(list.len()).unwrap());
    assert_eq!(
        pair.ours(1, &cdb, &list),
        ScsiOutcome::check(Sense::INVALID_FIELD_IN_PARAMETER_LIST)
    );
    // REGISTER AND MOVE: refused before anything else.
    let list = build::move_list(0xA1, 0xB2, false, false, 1, &HOSTS[1].transport_id());
    let mut cdb = build::pr_out(PrOutAction::Register, 1, u32::try_from(list.len()).unwrap());
    cdb[1] = PrOutAction::RegisterAndMove.code();
    assert_eq!(
        pair.ours(0, &cdb, &list),
        ScsiOutcome::check(Sense::INVALID_FIELD_IN_CDB)
    );
    // READ FULL STATUS: ALL_TG_PT set, the host named by its NQN, target port 1.
    let status = pair.ours(2, &build::pr_in(PrInAction::ReadFullStatus, 0xFFFF), &[]);
    let decoded = scsi::pr::FullStatus::decode(&status.data).unwrap().value;
    assert_eq!(decoded.descriptors.len(), 1);
    let only = &decoded.descriptors[0];
    assert!(only.all_tg_pt);
    assert_eq!(only.relative_target_port, 1);
    assert_eq!(
        only.transport_id,
        scsi::pr::TransportId::iscsi(
            "nqn.2014-08.org.nvmexpress:uuid:11111111-1111-1111-1111-111111111111"
        )
    );
    // REPORT CAPABILITIES: no SIP_C, ATP_C, PTPL_C from RESCAP, every type.
    let caps = pair.ours(2, &build::pr_in(PrInAction::ReportCapabilities, 8), &[]);
    let decoded = scsi::pr::ReportCapabilities::decode(&caps.data)
        .unwrap()
        .value;
    assert!(!decoded.sip_c && decoded.atp_c && decoded.ptpl_c && decoded.tmv);
    assert!(!decoded.rlr_c && !decoded.crh);
    assert_eq!(decoded.type_mask, scsi::pr::TypeMask::ALL);
}

/// On a namespace that cannot persist through power loss, REGISTER with APTPL is
/// INVALID FIELD IN PARAMETER LIST and without it GOOD (key 0xA1).
fn registers_only_without_aptpl(host: &mut impl blk_pr::NvmeReservations) {
    let (cdb, list) = build::register(0, 0xA1, true);
    assert_eq!(
        execute_scsi_pr_over_nvme(host, &cdb, &list),
        ScsiOutcome::check(Sense::INVALID_FIELD_IN_PARAMETER_LIST)
    );
    let (cdb, list) = build::register(0, 0xA1, false);
    assert_eq!(
        execute_scsi_pr_over_nvme(host, &cdb, &list),
        ScsiOutcome::good(Vec::new())
    );
}

/// A namespace that cannot persist through power loss and knows only two types is
/// reported, and refused, as a SCSI device with that type mask and no PTPL_C.
#[test]
fn the_namespace_capabilities_shape_the_scsi_answers() {
    let capabilities = ReservationCapabilities::from_rescap(0b0000_1010);
    let mut namespace = NamespaceModel::new(capabilities);
    let mut host = namespace.host(HOSTS[0]);
    let caps = execute_scsi_pr_over_nvme(
        &mut host,
        &build::pr_in(PrInAction::ReportCapabilities, 8),
        &[],
    );
    let decoded = scsi::pr::ReportCapabilities::decode(&caps.data)
        .unwrap()
        .value;
    assert!(!decoded.ptpl_c);
    assert_eq!(
        decoded.type_mask.types(),
        [
            scsi::pr::ReservationType::WriteExclusive,
            scsi::pr::ReservationType::WriteExclusiveRegistrantsOnly
        ]
    );
    registers_only_without_aptpl(&mut host);
    // Exclusive Access is not in the mask: INVALID FIELD IN CDB.
    let (cdb, list) = build::reserve(0xA1, 3);
    assert_eq!(
        execute_scsi_pr_over_nvme(&mut host, &cdb, &list),
        ScsiOutcome::check(Sense::INVALID_FIELD_IN_CDB)
    );
    let (cdb, list) = build::reserve(0xA1, 5);
    assert_eq!(
        execute_scsi_pr_over_nvme(&mut host, &cdb, &list),
        ScsiOutcome::good(Vec::new())
    );
}

/// The model with a real target's quirks switched on.
struct Quirky<'a> {
    host: blk_pr::model::ModelHost<'a>,
    /// Identify Namespace is refused: capabilities unknown.
    unidentified: bool,
    /// Preempt and Release complete successfully and change nothing.
    hollow: bool,
}

impl blk_pr::NvmeReservations for Quirky<'_> {
    fn host_id(&mut self) -> Result<blk_pr::nvme::HostId, blk_pr::NvmeError> {
        self.host.host_id()
    }
    fn capabilities(&mut self) -> Result<ReservationCapabilities, blk_pr::NvmeError> {
        if self.unidentified {
            Ok(ReservationCapabilities::UNKNOWN)
        } else {
            self.host.capabilities()
        }
    }
    fn report(&mut self) -> Result<blk_pr::nvme::ReservationStatus, blk_pr::NvmeError> {
        self.host.report()
    }
    fn register(&mut self, command: &blk_pr::nvme::Register) -> Result<(), blk_pr::NvmeError> {
        self.host.register(command)
    }
    fn acquire(&mut self, command: &blk_pr::nvme::Acquire) -> Result<(), blk_pr::NvmeError> {
        if self.hollow && command.action != blk_pr::nvme::AcquireAction::Acquire {
            return Ok(());
        }
        self.host.acquire(command)
    }
    fn release(&mut self, command: &blk_pr::nvme::Release) -> Result<(), blk_pr::NvmeError> {
        if self.hollow && command.action == blk_pr::nvme::ReleaseAction::Release {
            return Ok(());
        }
        self.host.release(command)
    }
}

#[test]
fn unreadable_capabilities_leave_the_refusals_to_the_device() {
    use blk_pr::NvmeReservations;
    let no_ptpl = ReservationCapabilities {
        persist_through_power_loss: false,
        ..ReservationCapabilities::ALL
    };
    let mut namespace = NamespaceModel::new(no_ptpl);
    let mut host = Quirky {
        host: namespace.host(HOSTS[0]),
        unidentified: true,
        hollow: false,
    };
    let caps = execute_scsi_pr_over_nvme(
        &mut host,
        &build::pr_in(PrInAction::ReportCapabilities, 8),
        &[],
    );
    let decoded = scsi::pr::ReportCapabilities::decode(&caps.data)
        .unwrap()
        .value;
    assert!(!decoded.tmv && !decoded.ptpl_c);
    assert_eq!(decoded.type_mask, scsi::pr::TypeMask::default());
    // APTPL goes to the device, which cannot persist: the SCSI answer all the same.
    registers_only_without_aptpl(&mut host);
    let (cdb, list) = build::reserve(0xA1, 6);
    assert_eq!(
        execute_scsi_pr_over_nvme(&mut host, &cdb, &list),
        ScsiOutcome::good(Vec::new())
    );
    assert_eq!(host.report().unwrap().rtype.map(|t| t.code()), Some(4));
}

#[test]
fn a_preempt_or_release_that_changes_nothing_is_a_target_failure_not_good() {
    let mut namespace = NamespaceModel::new(ReservationCapabilities::ALL);
    let (cdb, list) = build::register(0, 0xB2, false);
    execute_scsi_pr_over_nvme(&mut namespace.host(HOSTS[1]), &cdb, &list);
    let mut a = Quirky {
        host: namespace.host(HOSTS[0]),
        unidentified: false,
        hollow: true,
    };
    let (cdb, list) = build::register(0, 0xA1, false);
    execute_scsi_pr_over_nvme(&mut a, &cdb, &list);
    let (cdb, list) = build::reserve(0xA1, 5);
    execute_scsi_pr_over_nvme(&mut a, &cdb, &list);
    // The holder preempts B's key; the target says success but B stays registered.
    let flags = build::Flags::default();
    for action in [PrOutAction::Preempt, PrOutAction::PreemptAndAbort] {
        let (cdb, list) = build::out_command(action, 5, 0xA1, 0xB2, flags);
        assert_eq!(
            execute_scsi_pr_over_nvme(&mut a, &cdb, &list),
            ScsiOutcome::check(Sense::INTERNAL_TARGET_FAILURE)
        );
    }
    // A RELEASE that releases nothing is no GOOD either.
    let (cdb, list) = build::out_command(PrOutAction::Release, 5, 0xA1, 0, flags);
    assert_eq!(
        execute_scsi_pr_over_nvme(&mut a, &cdb, &list),
        ScsiOutcome::check(Sense::INTERNAL_TARGET_FAILURE)
    );
}
