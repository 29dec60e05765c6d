//! Host side of the real-device test tier: the hex helpers `pr-replay`
//! uses and the parser of the guest's result lines, used by
//! `tests/vm_tier.rs`. The harness itself is `run.sh` (see README.md).
#![forbid(unsafe_code)]

pub mod hex;
pub mod report;
pub mod wire;

/// An error and its sources on one line (`outer: inner: root cause`), as the tools
/// print it before exiting non-zero.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
