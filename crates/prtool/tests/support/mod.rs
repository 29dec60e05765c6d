//! Running the prtool binary, shared by the integration tests.

use std::process::{Command, Output};

/// Runs prtool with `args` and collects what it printed.
pub fn prtool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prtool"))
        .args(args)
        .output()
        .expect("run prtool")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
