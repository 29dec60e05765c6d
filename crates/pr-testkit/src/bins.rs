//! Finding binaries built in this workspace.

use std::path::PathBuf;

/// The path of binary `name` in the same target directory and profile as the running
/// test executable (`target/<profile>/deps/test-…` → `target/<profile>/name`).
///
/// Inside the crate that defines the binary, prefer `env!("CARGO_BIN_EXE_<name>")`;
/// this is for binaries of other crates, which must have been built already.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("."));
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}
