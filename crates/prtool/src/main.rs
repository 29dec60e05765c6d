//! `prtool`: persistent reservations from the command line, through a PR
//! helper socket or directly with SG_IO.
#![forbid(unsafe_code)]

mod check;
mod direct;
mod exit;
mod render;
mod run;

// The command line is the library's, shared with the man page generator.
use prtool::args;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // The `check --as` connect probe: this program re-run as another user.
    if let Some(code) = check::connect_as::child_main() {
        return code;
    }
    // clap exits with 2 on a usage error and 0 for --help/--version.
    let cli = args::Cli::parse();
    if let args::Command::Check(check_args) = &cli.command {
        let report = check::run(&cli, check_args);
        let out = if cli.json {
            render::check::json(&report)
        } else {
            render::check::human(&report)
        };
        let _ = std::io::stdout().write_all(out.as_bytes());
        return render::check::exit_of(report.diagnosis.verdict).into();
    }
    let outcome = run::run(&cli);
    let (out, err) = if cli.json {
        (render::json::render(&outcome), String::new())
    } else {
        render::human::render(&outcome)
    };
    // A closed stdout (e.g. `| head`) must not turn into a panic.
    let _ = std::io::stdout().write_all(out.as_bytes());
    let _ = std::io::stderr().write_all(err.as_bytes());
    outcome.exit.into()
}
