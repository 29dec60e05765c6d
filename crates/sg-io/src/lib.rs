//! Safe `SG_IO` and descriptor classification.
//!
//! - [`classify`]: what a descriptor refers to (whole block device,
//!   partition, sg character device, regular file, something else);
//! - [`access_mode`]: how it was opened (read-only, write-only, read-write);
//! - [`send`]: one SCSI command through the `SG_IO` ioctl.
//!
//! None of these change the descriptor: it belongs to the peer as much as
//! to us. `unsafe` code is confined to the private `sys` module.

mod access;
mod classify;
mod send;
mod sys;

pub use access::{AccessMode, AccessModeError, access_mode};
pub use classify::{
    ClassifyError, DescriptorKind, OtherKind, SG_MAJOR, classify, classify_with_sysfs,
};
pub use scsi::sgio::SgIoOutcome;
pub use send::{Direction, MAX_CDB_LEN, SENSE_BUFFER_SIZE, SendError, SgIoReport, send};
