//! `pr-helper-slow`: `pr-helper` whose backend waits before every command (see the
//! README). Same command line as `pr-helper`.

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

/// Waits, then answers as the SG_IO backend does.
#[derive(Debug)]
struct Delayed {
    latency: Duration,
    then: SgIoBackend,
}

impl Backend for Delayed {
    fn execute(&self, command: &Command<'_>) -> pr_protocol::Response {
        std::thread::sleep(self.latency);
        self.then.execute(command)
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
