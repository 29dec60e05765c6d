//! `pr-helper-slow`: `pr-helper` whose backend waits before every command (see the
//! README). Same command line as `pr-helper`.

#![forbid(unsafe_code)]

use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use pr_helper::args::Args;
use pr_helper::backend::{Backend, Backends, Command, SgIoBackend, SgIoSettings};
use pr_helper::config::Config;
use pr_helper::startup::{self, error_chain};

/// Environment variable holding the delay in milliseconds.
const LATENCY_ENV: &str = "PR_HELPER_TEST_LATENCY_MS";
/// If set, a file: only commands on it are delayed (a hung device among healthy ones).
const SLOW_FILE_ENV: &str = "PR_HELPER_TEST_SLOW_FILE";

/// Waits, then answers as the SG_IO backend does.
#[derive(Debug)]
struct Delayed {
    latency: Duration,
    /// `Some`: only commands on this file wait.
    only: Option<sg_io::FileIdentity>,
    then: SgIoBackend,
}

impl Backend for Delayed {
    fn execute(&self, command: &Command<'_>) -> pr_protocol::Response {
        if self.only.is_none_or(|file| file == command.file) {
            std::thread::sleep(self.latency);
        }
        self.then.execute(command)
    }
}

/// The file named by [`SLOW_FILE_ENV`], as the router identifies descriptors.
fn slow_file() -> Option<sg_io::FileIdentity> {
    let path = std::path::PathBuf::from(std::env::var_os(SLOW_FILE_ENV)?);
    match std::fs::metadata(&path) {
        Ok(meta) => Some(sg_io::FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            rdev: meta.rdev(),
        }),
        Err(error) => {
            eprintln!(
                "pr-helper-slow: {SLOW_FILE_ENV}={}: {error}",
                path.display()
            );
            std::process::exit(2);
        }
    }
}

fn latency() -> Duration {
    let millis = std::env::var(LATENCY_ENV)
        .ok()
        .and_then(|value| value.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Duration::from_millis(millis)
}

fn slow(backends: Backends) -> Backends {
    let delayed = Delayed {
        latency: latency(),
        only: slow_file(),
        then: SgIoBackend::new(&SgIoSettings {
            timeout: Duration::from_secs(30),
        }),
    };
    backends.replace_all_with(Arc::new(delayed))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::try_from(args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("pr-helper-slow: {}", error_chain(&error));
            return ExitCode::from(2);
        }
    };
    match startup::run_with(config, slow) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pr-helper-slow: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}
