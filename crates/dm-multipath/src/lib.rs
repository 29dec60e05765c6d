#![doc = include_str!("../README.md")]

pub mod device;
pub mod devnum;
pub mod engine;
#[cfg(test)]
mod fault_tests;
pub mod fence;
pub mod ioctl_data;
pub mod map;
pub mod plan;
pub mod service;
pub mod sys;
pub mod table;
pub mod uevent;

pub use devnum::DevNum;
pub use service::{MapUse, Multipath, Settings};

/// An error and its sources on one line, for logs.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}
