//! `pr-dist write [DIR]`: (re)generate the man pages and completions into
//! DIR (default: the committed copies in packaging/generated).
//! `pr-dist check [DIR]`: exit 1, naming the files, if DIR's copies are not
//! what the current command lines give.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let action = args.next().and_then(|a| a.into_string().ok());
    let dir = args.next().map(PathBuf::from).unwrap_or_else(default_dir);
    match action.as_deref() {
        Some("write") => match pr_dist::write_all(&dir) {
            Ok(()) => {
                println!("pr-dist: wrote the generated files to {}", dir.display());
                ExitCode::SUCCESS
            }
            Err(error) => fail(&error),
        },
        Some("check") => match pr_dist::stale_files(&dir) {
            Ok(stale) if stale.is_empty() => {
                println!("pr-dist: {} is current", dir.display());
                ExitCode::SUCCESS
            }
            Ok(stale) => {
                for path in &stale {
                    eprintln!(
                        "pr-dist: {} is not what the command line gives",
                        path.display()
                    );
                }
                eprintln!("pr-dist: run `cargo run -p pr-dist -- write` and commit the result");
                ExitCode::FAILURE
            }
            Err(error) => fail(&error),
        },
        _ => {
            eprintln!("usage: pr-dist write|check [DIR]");
            ExitCode::from(2)
        }
    }
}

/// The committed copies, found from this crate's source directory.
fn default_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(pr_dist::COMMITTED_DIR)
}

fn fail(error: &dyn std::error::Error) -> ExitCode {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    eprintln!("pr-dist: {text}");
    ExitCode::FAILURE
}
