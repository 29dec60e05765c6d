//! Temporary stand-in for `scsi::sgio::SgIoOutcome` (same fields as the
//! contract in docs/ARCHITECTURE.md) until the `scsi` crate publishes it;
//! then this becomes a re-export.

/// Raw result of one `SG_IO`, before mapping to a SCSI status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SgIoOutcome {
    pub errno: Option<i32>,
    pub host_status: u16,
    pub driver_status: u16,
    pub scsi_status: u8,
}
