#![doc = include_str!("../README.md")]

pub mod devnum;
pub mod engine;
pub mod ioctl_data;
pub mod plan;
pub mod table;

pub use devnum::DevNum;
