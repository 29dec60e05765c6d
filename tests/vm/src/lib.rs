//! Host side of the real-device test tier: the hex helpers `pr-replay`
//! uses and the parser of the guest's result lines, used by
//! `tests/vm_tier.rs`. The harness itself is `run.sh` (see README.md).

pub mod hex;
pub mod report;
pub mod wire;
