//! SCSI vocabulary for persistent reservations: status codes, sense data, CDB
//! helpers, errno and SG_IO outcome mapping, and the PERSISTENT RESERVE IN/OUT
//! structures. Pure: no I/O, no `unsafe`, no libc.
#![forbid(unsafe_code)]

pub mod cdb;
pub mod errno;
pub mod pr;
pub mod sense;
pub mod sgio;
pub mod status;
mod wire;

pub use sense::Sense;
pub use status::Status;
