//! `pr-helper`: a drop-in, multi-threaded replacement for `qemu-pr-helper`.
//!
//! `main.rs` is a thin wrapper around [`startup::run`]; the pieces are:
//! - [`args`] and [`config`]: the command line (qemu-pr-helper's flags plus our long options),
//!   validated into a [`config::Config`];
//! - [`startup`]: the linear start-up sequence (logging, descriptors, pid file, listener,
//!   privileges, signals);
//! - [`serve`]: the accept loop and one task per connection;
//! - [`sandbox`]: seccomp and Landlock, applied once start-up is done;
//! - [`backend`]: executing a validated request on a descriptor (SG_IO, emulated target).

pub mod args;
pub mod backend;
pub mod config;
pub mod sandbox;
pub mod serve;
pub mod startup;
