//! A software SPC-4 persistent-reservation target: the reservation state of one
//! logical unit, and the answers a device server gives to PERSISTENT RESERVE IN
//! and OUT.
//!
//! Pure: no I/O. The caller decides what an I_T nexus is (see [`Nexus`]) and
//! where the state lives ([`LogicalUnit`] is `serde`-serialisable;
//! [`LogicalUnit::persistent_part`] is what must survive a power loss).
//!
//! It records and answers reservations exactly; it does not stand between an
//! initiator and the medium. [`LogicalUnit::access_conflicts`] answers "would
//! this READ or WRITE conflict?", but nothing forces anyone to ask.
//!
//! ```
//! use pr_target::{build, LogicalUnit, Nexus, Outcome, TransportId};
//!
//! let mut lu = LogicalUnit::new(vec![1]);
//! let a = Nexus::new(TransportId::iscsi("iqn.2026-11.invalid:a"), 1);
//! let (cdb, list) = build::register(0, 0xA1, false);
//! assert_eq!(lu.execute(&a, &cdb, &list), Outcome::Good(vec![]));
//! let (cdb, list) = build::reserve(0xA1, 0x1);
//! assert_eq!(lu.execute(&a, &cdb, &list), Outcome::Good(vec![]));
//! let keys = lu.execute(&a, &build::read_keys(256), &[]);
//! assert_eq!(keys.data()[8..16], 0xA1u64.to_be_bytes());
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod build;
#[cfg(test)]
mod invariants_tests;
mod nexus;
mod outcome;
mod params;
mod pr_in;
#[cfg(test)]
mod rules_tests;
mod types;
mod unit;

pub use nexus::Nexus;
pub use outcome::Outcome;
pub use scsi::pr::{PrInAction, PrOutAction, ReservationType, Scope, TransportId};
pub use scsi::sense::Sense;
pub use types::Access;
pub use unit::{
    LogicalUnit, MAX_REGISTRATIONS, PERSISTENT_RESERVE_IN, PERSISTENT_RESERVE_OUT, Registration,
    Reservation, conflicts_before_fields,
};
