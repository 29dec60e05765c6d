//! `pr-helper`: parse the command line, validate it, run the start-up
//! sequence. Every error is printed once, with its causes, and the exit
//! status is non-zero.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

use pr_helper::args::Args;
use pr_helper::config::Config;
use pr_helper::startup::{self, error_chain};

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with status 2.
    let args = Args::parse();
    let config = match Config::try_from(args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("pr-helper: {}", error_chain(&error));
            return ExitCode::from(2);
        }
    };
    match startup::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pr-helper: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}
