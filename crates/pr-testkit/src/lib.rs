//! Test support shared by the integration tests.
//!
//! - [`workspace_bin`]: the path of a binary built in this workspace;
//! - [`Daemon`]: our `pr-helper` started on a temporary socket, killed on drop;
//! - [`RawClient`]: a protocol peer that sends exactly the bytes and descriptors a test
//!   asks for, well-formed or not;
//! - [`descriptors`]: files, pipes, sockets and devices to send;
//! - [`fuse`]: a FUSE file system whose server stops answering (a file on it can be
//!   opened, then `stat` and `close` wait);
//! - [`detached`]: a daemon started with `-d`, known by its pid file;
//! - [`proc`]: what `/proc` tells about a process (open descriptors, CPU time);
//! - [`checks`]: "another client is still served", "descriptor count back to baseline";
//! - [`cdb`]: PR IN / PR OUT CDBs as 16-byte arrays;
//! - [`reference`]: Debian's `qemu-pr-helper`, QEMU and loop devices;
//! - [`ready`]: waiting for a daemon's `READY=1` on a notify socket of the test's own.
//! - [`qmp`]: a QMP session with a running QEMU;
//! - [`wait`]: bounded waits, exit checks, signals and a kill-on-drop guard for
//!   processes a test started.
#![forbid(unsafe_code)]

pub mod activation;
pub mod bins;
pub mod cdb;
pub mod checks;
pub mod daemon;
pub mod descriptors;
pub mod detached;
pub mod fuse;
pub mod proc;
pub mod qmp;
pub mod raw;
pub mod ready;
pub mod reference;
pub mod wait;

pub use bins::workspace_bin;
pub use daemon::{Daemon, DaemonOptions};
pub use proc::{cpu_ticks, fd_count};
pub use raw::{RawClient, WireResponse};

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
