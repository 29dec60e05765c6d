#![doc = include_str!("../README.md")]

mod access;
mod cache;
mod classify;
mod pr;
mod send;
mod sys;

pub use access::{AccessMode, AccessModeError, access_mode};
pub use cache::{Classified, ClassifyCache, DEFAULT_TTL, Examined, FileIdentity, NodeKey};
pub use classify::{
    ClassifyError, DescriptorKind, OtherKind, SG_MAJOR, classify, classify_with_sysfs,
};
pub use pr::{PrExecution, execute_pr};
pub use scsi::sgio::SgIoOutcome;
pub use send::{
    Direction, MAX_CDB_LEN, SENSE_BUFFER_SIZE, SendError, SgIoReport, send, send_to_device,
};
