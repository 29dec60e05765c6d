//! The files the Debian package ships that are derived from the command
//! lines: the man pages `pr-helper(8)` and `prtool(8)` and the bash, zsh
//! and fish completions of both commands.
//!
//! They are generated from the very clap definitions the binaries parse
//! (`pr_helper::args::Args`, `prtool::args::Cli`), so an option can never
//! be documented differently from how it is parsed. The man pages add
//! hand-written sections (protocol, signals, files, exit status, examples,
//! differences from qemu-pr-helper) kept as roff next to this crate.
//!
//! The output is committed under `packaging/generated/` so that a change of
//! the command line shows up in review as a change of the documentation;
//! the test `generated_files_are_current` fails when the committed copies
//! differ from what the current definitions give, and names the command
//! that regenerates them.
//!
//! ```
//! let files = pr_dist::generate().unwrap();
//! let man = files.iter().find(|f| f.path == "man/pr-helper.8").unwrap();
//! assert!(String::from_utf8_lossy(&man.contents).contains("max\\-connections"));
//! ```

#![forbid(unsafe_code)]

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;

/// Hand-written sections of pr-helper(8), after the generated OPTIONS.
const PR_HELPER_SECTIONS: &str = include_str!("../man/pr-helper.sections.roff");
/// Hand-written sections of prtool(8), after the generated COMMANDS.
const PRTOOL_SECTIONS: &str = include_str!("../man/prtool.sections.roff");

/// Where the committed copies live, relative to the workspace root.
pub const COMMITTED_DIR: &str = "packaging/generated";

/// The man pages' section: both are administration commands.
const SECTION: &str = "8";
const MANUAL: &str = "System Administration";

/// One generated file: its path below the output directory and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub path: &'static str,
    pub contents: Vec<u8>,
}

/// Generating or writing the files failed.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    #[error("rendering the man page {page}")]
    RenderMan {
        page: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("creating the directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Every generated file, in a fixed order, from the current command lines.
pub fn generate() -> Result<Vec<GeneratedFile>, DistError> {
    generate_from(
        pr_helper::args::Args::command(),
        prtool::args::Cli::command(),
    )
}

/// The files for these command definitions (the tests pass altered ones
/// to show that a new option changes every file that should mention it).
pub fn generate_from(
    pr_helper: clap::Command,
    prtool: clap::Command,
) -> Result<Vec<GeneratedFile>, DistError> {
    let mut files = vec![
        GeneratedFile {
            path: "man/pr-helper.8",
            contents: pr_helper_man(pr_helper.clone())?,
        },
        GeneratedFile {
            path: "man/prtool.8",
            contents: prtool_man(prtool.clone())?,
        },
    ];
    for (name, command) in [("pr-helper", pr_helper), ("prtool", prtool)] {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            files.push(GeneratedFile {
                path: completion_path(name, shell),
                contents: completion(command.clone(), name, shell),
            });
        }
    }
    Ok(files)
}

/// The file name each shell looks for, below `completions/SHELL/`; the
/// package installs them where Debian's bash-completion, zsh and fish read
/// vendor completions.
fn completion_path(name: &str, shell: Shell) -> &'static str {
    match (name, shell) {
        ("pr-helper", Shell::Bash) => "completions/bash/pr-helper",
        ("pr-helper", Shell::Zsh) => "completions/zsh/_pr-helper",
        ("pr-helper", _) => "completions/fish/pr-helper.fish",
        (_, Shell::Bash) => "completions/bash/prtool",
        (_, Shell::Zsh) => "completions/zsh/_prtool",
        _ => "completions/fish/prtool.fish",
    }
}

fn completion(mut command: clap::Command, name: &str, shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut out);
    out
}

fn man_for(command: clap::Command) -> Man {
    Man::new(command).section(SECTION).manual(MANUAL)
}

/// The sections every page starts with, from clap: title, name, synopsis,
/// description, options.
fn render_head(man: &Man, out: &mut Vec<u8>) -> io::Result<()> {
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)
}

/// pr-helper(8): NAME, SYNOPSIS, DESCRIPTION and OPTIONS from clap, then
/// the hand-written sections.
fn pr_helper_man(command: clap::Command) -> Result<Vec<u8>, DistError> {
    let page = "pr-helper(8)";
    let render = |out: &mut Vec<u8>| -> io::Result<()> {
        let man = man_for(command);
        render_head(&man, out)?;
        out.extend_from_slice(PR_HELPER_SECTIONS.as_bytes());
        man.render_version_section(out)
    };
    let mut out = Vec::new();
    render(&mut out).map_err(|source| DistError::RenderMan { page, source })?;
    Ok(out)
}

/// prtool(8): the global options from clap, then one subsection per
/// command with its own options and example (all in one page: an
/// administrator looks up `prtool reserve` in `man prtool`), then the
/// hand-written sections.
fn prtool_man(command: clap::Command) -> Result<Vec<u8>, DistError> {
    let page = "prtool(8)";
    let render = |out: &mut Vec<u8>| -> io::Result<()> {
        // Subcommands taken before `Man::new` builds the command, so they
        // do not carry the global options again.
        let subcommands: Vec<clap::Command> = command
            .get_subcommands()
            .filter(|sub| !sub.is_hide_set())
            .cloned()
            .collect();
        let man = man_for(command);
        render_head(&man, out)?;
        out.extend_from_slice(b".SH COMMANDS\n");
        for sub in subcommands {
            render_subcommand(out, sub)?;
        }
        out.extend_from_slice(PRTOOL_SECTIONS.as_bytes());
        man.render_version_section(out)
    };
    let mut out = Vec::new();
    render(&mut out).map_err(|source| DistError::RenderMan { page, source })?;
    Ok(out)
}

/// `.SS prtool NAME`, its synopsis line, description, options and example.
fn render_subcommand(out: &mut Vec<u8>, sub: clap::Command) -> io::Result<()> {
    let name = format!("prtool {}", sub.get_name());
    let man = Man::new(sub.clone().bin_name(&name).display_name(&name));
    out.extend_from_slice(format!(".SS \"{}\"\n", name).as_bytes());
    // clap_mangen renders each part as a section of its own: keep the body,
    // drop the `.SH` line, so the parts nest under this subsection.
    for part in [
        render_part(|w| man.render_synopsis_section(w))?,
        render_part(|w| man.render_description_section(w))?,
        render_part(|w| man.render_options_section(w))?,
        render_part(|w| man.render_extra_section(w))?,
    ] {
        let text = String::from_utf8_lossy(&part);
        for line in text.lines().filter(|line| !line.starts_with(".SH ")) {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(b".PP\n");
    }
    Ok(())
}

fn render_part(render: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    render(&mut out)?;
    Ok(out)
}

/// Writes every file below `dir`.
pub fn write_all(dir: &Path) -> Result<(), DistError> {
    for file in generate()? {
        let path = dir.join(file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| DistError::CreateDir {
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::write(&path, &file.contents)
            .map_err(|source| DistError::Write { path, source })?;
    }
    Ok(())
}

/// The generated files whose copy below `dir` is missing or differs.
pub fn stale_files(dir: &Path) -> Result<Vec<PathBuf>, DistError> {
    let mut stale = Vec::new();
    for file in generate()? {
        let path = dir.join(file.path);
        match std::fs::read(&path) {
            Ok(bytes) if bytes == file.contents => {}
            Ok(_) => stale.push(path),
            Err(error) if error.kind() == io::ErrorKind::NotFound => stale.push(path),
            Err(source) => return Err(DistError::Read { path, source }),
        }
    }
    Ok(stale)
}
