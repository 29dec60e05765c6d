//! The man pages and completions committed under packaging/generated (and
//! shipped by the Debian package) are exactly what the current command
//! lines give, and every option reaches every one of them.

use std::path::PathBuf;

use clap::{Arg, ArgAction, CommandFactory};

fn committed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(pr_dist::COMMITTED_DIR)
}

fn file(files: &[pr_dist::GeneratedFile], path: &str) -> String {
    let file = files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("{path} is not generated"));
    String::from_utf8(file.contents.clone()).expect("generated files are UTF-8")
}

/// Long option names of a command and of all its subcommands.
fn long_options(command: &clap::Command) -> Vec<String> {
    let mut names: Vec<String> = command
        .get_arguments()
        .filter(|arg| !arg.is_hide_set())
        .filter_map(|arg| arg.get_long().map(str::to_owned))
        .collect();
    for sub in command.get_subcommands() {
        names.extend(long_options(sub));
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn generated_files_are_current() {
    let stale = pr_dist::stale_files(&committed_dir()).unwrap();
    assert!(
        stale.is_empty(),
        "these generated files do not match the current command line: {stale:#?}\n\
         run `cargo run -p pr-dist -- write` and commit packaging/generated"
    );
}

#[test]
fn every_option_is_in_the_man_page_and_every_completion() {
    let files = pr_dist::generate().unwrap();
    for (command, man, completions) in [
        (
            pr_helper::args::Args::command(),
            "man/pr-helper.8",
            [
                "completions/bash/pr-helper",
                "completions/zsh/_pr-helper",
                "completions/fish/pr-helper.fish",
            ],
        ),
        (
            prtool::args::Cli::command(),
            "man/prtool.8",
            [
                "completions/bash/prtool",
                "completions/zsh/_prtool",
                "completions/fish/prtool.fish",
            ],
        ),
    ] {
        let options = long_options(&command);
        assert!(options.len() > 5, "{options:?}");
        let page = file(&files, man);
        for option in &options {
            // roff escapes each '-' of an option name.
            let roff = format!("\\-\\-{}", option.replace('-', "\\-"));
            assert!(page.contains(&roff), "{man} does not document --{option}");
        }
        for path in completions {
            let text = file(&files, path);
            for option in &options {
                // fish names long options without their dashes (-l NAME).
                let needle = if path.ends_with(".fish") {
                    format!("-l {option}")
                } else {
                    format!("--{option}")
                };
                assert!(
                    text.contains(&needle),
                    "{path} does not complete --{option}"
                );
            }
        }
    }
}

#[test]
fn every_prtool_command_has_a_subsection() {
    let files = pr_dist::generate().unwrap();
    let page = file(&files, "man/prtool.8");
    for sub in prtool::args::Cli::command().get_subcommands() {
        let heading = format!(".SS \"prtool {}\"", sub.get_name());
        assert!(page.contains(&heading), "prtool(8) lacks {heading}");
    }
}

#[test]
fn a_new_option_makes_the_committed_files_stale() {
    // What another change to args.rs would do: one more long option.
    let extended = pr_helper::args::Args::command().arg(
        Arg::new("brand-new-option")
            .long("brand-new-option")
            .action(ArgAction::SetTrue)
            .help("An option added after the files were generated."),
    );
    let current = pr_dist::generate().unwrap();
    let changed = pr_dist::generate_from(extended, prtool::args::Cli::command()).unwrap();
    for path in [
        "man/pr-helper.8",
        "completions/bash/pr-helper",
        "completions/zsh/_pr-helper",
        "completions/fish/pr-helper.fish",
    ] {
        assert_ne!(
            file(&current, path),
            file(&changed, path),
            "{path} would not change"
        );
        assert!(file(&changed, path).contains("brand"), "{path}");
    }
    // And the check on a directory holding the old files reports them.
    let dir = tempfile::tempdir().unwrap();
    pr_dist::write_all(dir.path()).unwrap();
    assert!(pr_dist::stale_files(dir.path()).unwrap().is_empty());
    let man = changed
        .iter()
        .find(|f| f.path == "man/pr-helper.8")
        .unwrap();
    std::fs::write(dir.path().join(man.path), &man.contents).unwrap();
    assert_eq!(
        pr_dist::stale_files(dir.path()).unwrap(),
        vec![dir.path().join("man/pr-helper.8")]
    );
}
