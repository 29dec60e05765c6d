#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]
#![doc = include_str!("../README.md")]

pub mod cdb;
pub mod errno;
pub mod pr;
pub mod sense;
pub mod sgio;
pub mod status;
mod wire;

pub use sense::Sense;
pub use status::Status;
