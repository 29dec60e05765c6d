//! Starting the two helpers the client must work with: our `pr-helper`
//! and Debian's `qemu-pr-helper`, on a socket in a temporary directory,
//! with stop and restart on the same path (for the reconnect tests).

#![allow(dead_code)]

pub mod fake;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pr_testkit::reference::{HelperProcess, QEMU_PR_HELPER};
use tempfile::TempDir;

/// Which helper a test talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// Our daemon, built from this workspace.
    Ours,
    /// Debian's `qemu-pr-helper` 7.2.
    Debian,
}

impl Peer {
    pub fn program(self) -> PathBuf {
        match self {
            Self::Ours => our_daemon().to_owned(),
            Self::Debian => PathBuf::from(QEMU_PR_HELPER),
        }
    }
}

/// Our daemon's binary. The tests of this crate do not depend on it, so cargo does not
/// build it for them: `cargo nextest run --workspace` (the README test command) does, and
/// so does `cargo build -p pr-helper`. Building it from here instead would race with the
/// other test binaries that run it, and could rebuild it with other features.
pub fn our_daemon() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = pr_testkit::workspace_bin("pr-helper");
        assert!(
            bin.is_file(),
            "{} is missing: run the tests with `cargo nextest run --workspace`, \
             or build it first with `cargo build -p pr-helper`",
            bin.display()
        );
        bin
    })
}

/// A helper on `DIR/helper.sock` that can be stopped and started again.
pub struct Helper {
    peer: Peer,
    dir: TempDir,
    extra_args: Vec<String>,
    process: Option<HelperProcess>,
}

impl Helper {
    pub fn start(peer: Peer) -> Self {
        Self::start_with(peer, &[])
    }

    /// Starts our daemon with its software target serving regular files,
    /// state kept in the helper's temporary directory.
    pub fn start_emulated() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pr-manager-test")
            .tempdir()
            .expect("temporary directory");
        let state = dir.path().join("state");
        std::fs::create_dir(&state).expect("state directory");
        let mut helper = Self {
            peer: Peer::Ours,
            extra_args: vec![
                "--emulated-state-dir".to_owned(),
                state.to_str().expect("utf-8 path").to_owned(),
            ],
            dir,
            process: None,
        };
        helper.restart();
        helper
    }

    pub fn start_with(peer: Peer, extra_args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pr-manager-test")
            .tempdir()
            .expect("temporary directory");
        let mut helper = Self {
            peer,
            dir,
            extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
            process: None,
        };
        helper.restart();
        helper
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("helper.sock")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the helper (SIGKILL, as a crash) and removes its socket.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill().expect("kill the helper");
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// Starts the helper again on the same socket path.
    pub fn restart(&mut self) {
        self.stop();
        let extra: Vec<&str> = self.extra_args.iter().map(String::as_str).collect();
        let process = HelperProcess::spawn(
            &self.peer.program(),
            &self.socket(),
            &self.dir.path().join("helper.pid"),
            &extra,
        )
        .expect("start the helper");
        self.process = Some(process);
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A regular file: SG_IO on it fails with ENOTTY.
pub fn regular_file() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temporary file");
    file.as_file().set_len(4096).expect("size the file");
    file
}

/// A READ KEYS CDB with `allocation` bytes of allocation length.
pub fn read_keys_cdb(allocation: u16) -> [u8; 10] {
    let a = allocation.to_be_bytes();
    [0x5E, 0x00, 0, 0, 0, 0, 0, a[0], a[1], 0]
}

/// A REGISTER CDB with a 24-byte parameter list, and that list.
pub fn register_cdb(key: u64) -> ([u8; 10], [u8; 24]) {
    let cdb = [0x5F, 0x00, 0, 0, 0, 0, 0, 0, 24, 0];
    let mut params = [0u8; 24];
    params[8..16].copy_from_slice(&key.to_be_bytes());
    (cdb, params)
}
