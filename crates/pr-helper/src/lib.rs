//! `pr-helper`: a drop-in, multi-threaded replacement for `qemu-pr-helper`.
//!
//! `main.rs` is a thin wrapper around [`startup::run`]; the pieces are:
//! - [`args`] and [`config`]: the command line (qemu-pr-helper's flags plus our long options),
//!   validated into a [`config::Config`];
//! - [`startup`]: the linear start-up sequence (logging, descriptors, pid file, listener,
//!   privileges, signals);
//! - [`serve`]: the epoll hub of idle connections, the sans-I/O session and its blocking
//!   driver, the shutdown primitive;
//! - [`sandbox`]: seccomp and Landlock, applied once start-up is done;
//! - [`backend`]: the `Backend` trait and the router (SG_IO, software target, multipath).

pub mod args;
pub mod backend;
pub mod config;
pub mod sandbox;
pub mod serve;
pub mod startup;
