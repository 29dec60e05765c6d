//! Client library for persistent-reservation helper sockets: what QEMU's
//! `pr-manager-helper` object is, for any Rust VMM or storage tool.
//!
//! A [`Client`] connects to a helper (our `pr-helper` or QEMU's
//! `qemu-pr-helper`), sends PERSISTENT RESERVE IN/OUT commands together
//! with the device descriptor, and returns what an `sg_io_hdr` caller would
//! see. It is `Send + Sync` and keeps a pool of connections. The wire format
//! is `pr-protocol`'s sans-I/O codec; this crate only does the I/O.
//!
//! Without a helper, [`execute_direct`] sends the same command to the device
//! itself and returns the same kind of [`Reply`]: SG_IO on SCSI devices, NVMe
//! reservations on NVMe namespaces and the kernel's PR ioctls on other block
//! devices ([`DirectPath`]), with SCSI semantics on every path.
//!
//! ```no_run
//! use std::fs::File;
//! use std::os::fd::AsFd;
//! use pr_manager::{Client, Config, DataTransfer};
//!
//! let client = Client::new(Config::new("/run/qemu-pr-helper.sock"));
//! let disk = File::open("/dev/sdb")?;
//! let keys = client.read_keys(disk.as_fd())?.value;
//! println!("generation {}, {} key(s)", keys.generation, keys.keys.len());
//!
//! // The raw, sg_io_hdr-like view: status, sense, data, residual.
//! let mut data = [0u8; 256];
//! let read_keys = [0x5E, 0x00, 0, 0, 0, 0, 0, 0x01, 0x00, 0];
//! let reply = client.execute(&read_keys, disk.as_fd(), DataTransfer::FromDevice(&mut data))?;
//! println!("status {}, {} byte(s)", reply.status, reply.data_len);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod client;
mod command;
mod conn;
mod direct;
mod error;
mod pool;
mod status;
mod typed;
mod typed_client;
mod watcher;

pub use client::{Client, Config, DEFAULT_SOCKET, error_chain};
pub use command::{DataTransfer, Reply};
pub use direct::{DirectPath, execute_direct};
pub use error::{ConnectError, Error, InvalidCommand, ProtocolError, ScsiError, TransportError};
/// The `scsi` types the typed API speaks.
pub use scsi::pr::{
    Decoded, FullStatus, FullStatusDescriptor, PrInAction, PrOutAction, ReadKeys, ReadReservation,
    RegisterMoveParams, ReportCapabilities, ReservationType, TransportId,
};
pub use status::StatusEvent;
pub use typed::{
    PR_IN_ALLOCATION, PrInData, PrOutCommand, PrOutList, RegisterOptions, check_reply,
    decode_pr_in, pr_in_command,
};

#[cfg(feature = "async")]
mod async_client;
#[cfg(feature = "async")]
pub use async_client::AsyncClient;

/// The README's example, compiled as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
