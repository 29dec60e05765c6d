//! Bad input gets an answer, never a panic: random CDBs and parameter lists through
//! both translations, and random bytes as a controller's Reservation Report.

use blk_pr::model::NamespaceModel;
use blk_pr::nvme::{HostId, ReportLayout, ReservationCapabilities, ReservationStatus};
use blk_pr::{BlockPrOps, HeldReservation, Keys, PrOpError, PrType};
use blk_pr::{ScsiOutcome, execute_scsi_pr_over_ioctls, execute_scsi_pr_over_nvme};
use proptest::prelude::*;
use scsi::status::Status;

const HOSTS: [HostId; 2] = [HostId([1; 16]), HostId([2; 16])];

/// A device whose every operation fails with the given errno or status.
struct Failing(PrOpError);

impl BlockPrOps for Failing {
    fn register(&mut self, _: u64, _: u64, _: bool) -> Result<(), PrOpError> {
        Err(self.0)
    }
    fn reserve(&mut self, _: u64, _: PrType) -> Result<(), PrOpError> {
        Err(self.0)
    }
    fn release(&mut self, _: u64, _: PrType) -> Result<(), PrOpError> {
        Err(self.0)
    }
    fn preempt(&mut self, _: u64, _: u64, _: PrType, _: bool) -> Result<(), PrOpError> {
        Err(self.0)
    }
    fn clear(&mut self, _: u64) -> Result<(), PrOpError> {
        Err(self.0)
    }
    fn read_keys(&mut self) -> Result<Keys, PrOpError> {
        Err(self.0)
    }
    fn read_reservation(&mut self) -> Result<Option<HeldReservation>, PrOpError> {
        Err(self.0)
    }
}

/// An answer a SCSI device could give: a known status, sense only with CHECK
/// CONDITION, data only with GOOD and never more than the allocation length.
fn well_formed(cdb: &[u8], answer: &ScsiOutcome) -> Result<(), TestCaseError> {
    let statuses = [
        Status::GOOD,
        Status::CHECK_CONDITION,
        Status::RESERVATION_CONFLICT,
    ];
    prop_assert!(statuses.contains(&answer.status), "{:?}", answer);
    prop_assert_eq!(
        answer.sense.is_some(),
        answer.status == Status::CHECK_CONDITION
    );
    if answer.status != Status::GOOD || cdb.first() != Some(&0x5E) {
        prop_assert!(answer.data.is_empty(), "{:?}", answer);
    } else {
        let allocation = usize::from(u16::from_be_bytes([cdb[7], cdb[8]]));
        prop_assert!(answer.data.len() <= allocation);
    }
    Ok(())
}

fn cdb() -> impl Strategy<Value = Vec<u8>> {
    let opcode = prop_oneof![Just(0x5Eu8), Just(0x5F), any::<u8>()];
    (opcode, prop::collection::vec(any::<u8>(), 0..16)).prop_map(|(op, rest)| {
        let mut cdb = vec![op];
        cdb.extend(rest);
        cdb
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_commands_get_scsi_answers_over_nvme(
        first in (cdb(), prop::collection::vec(any::<u8>(), 0..64)),
        second in (cdb(), prop::collection::vec(any::<u8>(), 0..64)),
    ) {
        let mut namespace = NamespaceModel::new(ReservationCapabilities::ALL);
        for (i, (cdb, data_out)) in [first, second].iter().enumerate() {
            let answer = execute_scsi_pr_over_nvme(&mut namespace.host(HOSTS[i]), cdb, data_out);
            well_formed(cdb, &answer)?;
        }
    }

    #[test]
    fn random_commands_get_scsi_answers_over_failing_ioctls(
        (cdb, data_out) in (cdb(), prop::collection::vec(any::<u8>(), 0..64)),
        failure in prop_oneof![
            (0i32..200).prop_map(PrOpError::Errno),
            any::<u32>().prop_map(PrOpError::Status),
        ],
    ) {
        let answer = execute_scsi_pr_over_ioctls(&mut Failing(failure), &cdb, &data_out);
        well_formed(&cdb, &answer)?;
    }

    #[test]
    fn random_report_bytes_decode_or_are_refused(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        extended in any::<bool>(),
    ) {
        let layout = if extended { ReportLayout::Extended } else { ReportLayout::Basic };
        if let Ok((status, needed)) = ReservationStatus::decode(&bytes, layout) {
            prop_assert!(needed >= layout.header_len());
            prop_assert!(status.registrants.len() <= (bytes.len() - layout.header_len()) / layout.entry_len());
            // What decoded encodes back to the same fields.
            let again = ReservationStatus::decode(&status.encode(layout), layout).unwrap().0;
            prop_assert_eq!(again, status);
        }
    }
}
