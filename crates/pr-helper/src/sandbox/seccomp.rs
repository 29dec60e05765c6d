//! The seccomp allowlist: compiled from `seccomp-policy.json` (data, one
//! comment per rule) with rust-vmm's `seccompiler`, installed on every
//! thread with TSYNC.
//!
//! The file holds seccompiler filters: `common`, plus one per architecture
//! for the syscalls only that architecture has (`poll`, `open`, ... on
//! x86_64). [`compile`] joins `common` with the running architecture's and
//! sets what a syscall outside the list gets, from `--seccomp`:
//!
//! | mode | a syscall not in the list |
//! |---|---|
//! | `kill` (default) | the whole process is killed with SIGSYS (SECCOMP_RET_KILL_PROCESS) |
//! | `trap` | fails with ENOSYS; a SIGSYS handler reports it once per syscall number on standard error (and in `$PR_HELPER_SECCOMP_REPORT`) |
//! | `log` | runs, and the kernel logs it (SECCOMP_RET_LOG: the audit log or `dmesg`) |
//! | `none` | no filter |
//!
//! `trap` is the tool for finding what a change to the daemon added: run
//! the test suite with `PR_HELPER_SECCOMP_REPORT` set (see
//! `scripts/seccomp-derive.sh`) and every syscall the allowlist misses is
//! listed, with the ioctl request for ioctls.

use std::path::Path;

use seccompiler::{BpfProgram, TargetArch};

/// The policy, as data.
pub const POLICY_JSON: &str = include_str!("seccomp-policy.json");

/// The environment variable naming a file where trap mode appends one
/// line per blocked syscall number (standard error is /dev/null with
/// `-d`, and test harnesses keep it in per-test files). Setting it also
/// turns a `kill` default into `trap`, so a whole test suite can be run
/// in trap mode without changing any command line.
pub const REPORT_ENV: &str = "PR_HELPER_SECCOMP_REPORT";

/// `--seccomp`: what a syscall outside the allowlist gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SeccompMode {
    /// The process is killed with SIGSYS.
    #[default]
    Kill,
    /// The syscall runs and the kernel logs it.
    Log,
    /// The syscall fails with ENOSYS and is reported once on standard error.
    Trap,
    /// No filter.
    None,
}

impl SeccompMode {
    /// seccompiler's name of the action for syscalls outside the list.
    fn mismatch_action(self) -> Option<&'static str> {
        match self {
            SeccompMode::Kill => Some("kill_process"),
            SeccompMode::Log => Some("log"),
            SeccompMode::Trap => Some("trap"),
            SeccompMode::None => None,
        }
    }

    /// The word used on the command line and in logs.
    pub fn name(self) -> &'static str {
        match self {
            SeccompMode::Kill => "kill",
            SeccompMode::Log => "log",
            SeccompMode::Trap => "trap",
            SeccompMode::None => "none",
        }
    }
}

/// Why the filter could not be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("the seccomp policy is not valid JSON")]
    PolicyJson(#[source] serde_json::Error),
    #[error("the seccomp policy has no filter named {0:?}")]
    MissingFilter(&'static str),
    #[error("this architecture ({0}) has no seccomp policy: run with --seccomp=none")]
    UnsupportedArch(&'static str),
    #[error("cannot compile the seccomp policy")]
    Compile(#[source] seccompiler::Error),
    #[error("cannot install the SIGSYS handler for --seccomp=trap")]
    TrapHandler(#[source] std::io::Error),
    #[error("cannot open the seccomp report file {path} (from ${REPORT_ENV})")]
    ReportFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the seccomp filter")]
    Install(#[source] seccompiler::Error),
}

/// The filter name under which [`compile`] joins the policy's parts.
const JOINED: &str = "pr-helper";

/// The policy for the running architecture with `mode`'s action for
/// syscalls outside it; `None` for [`SeccompMode::None`].
/// `multipath`: the multipath backend is on, and its part of the policy is added.
pub fn compile(mode: SeccompMode, multipath: bool) -> Result<Option<BpfProgram>, SeccompError> {
    let Some(action) = mode.mismatch_action() else {
        return Ok(None);
    };
    let arch_name = std::env::consts::ARCH;
    let extras: &[&str] = if multipath { &["multipath"] } else { &[] };
    build(&joined_policy("common", arch_name, extras, action)?)
}

/// The janitor's own small filter (see `startup/janitor.rs`), with `mode`'s
/// action; `None` for [`SeccompMode::None`]. Trap mode kills: the janitor has no
/// handler to report with, and a janitor killed for a syscall shows as files left
/// behind and a warning in the daemon's log.
pub fn compile_janitor(mode: SeccompMode) -> Result<Option<BpfProgram>, SeccompError> {
    let action = match mode {
        SeccompMode::None => return Ok(None),
        SeccompMode::Log => "log",
        SeccompMode::Kill | SeccompMode::Trap => "kill_process",
    };
    let arch = format!("janitor-{}", std::env::consts::ARCH);
    build(&joined_policy("janitor", &arch, &[], action)?)
}

/// Compiles one joined policy for the running architecture.
fn build(joined: &str) -> Result<Option<BpfProgram>, SeccompError> {
    let arch_name = std::env::consts::ARCH;
    let arch =
        TargetArch::try_from(arch_name).map_err(|_| SeccompError::UnsupportedArch(arch_name))?;
    let mut programs =
        seccompiler::compile_from_json(joined.as_bytes(), arch).map_err(SeccompError::Compile)?;
    programs
        .remove(JOINED)
        .map(Some)
        .ok_or(SeccompError::MissingFilter(JOINED))
}

/// The policy's filter `base` with the rules of `arch_part` (the running
/// architecture's, which must exist) and of each of `extras`, as one seccompiler
/// filter named [`JOINED`] whose syscalls outside it get `action`.
fn joined_policy(
    base: &'static str,
    arch_part: &str,
    extras: &[&'static str],
    action: &str,
) -> Result<String, SeccompError> {
    let mut policy: serde_json::Value =
        serde_json::from_str(POLICY_JSON).map_err(SeccompError::PolicyJson)?;
    let mut rules_of = |part: &str| {
        policy
            .get_mut(part)
            .and_then(|filter| filter.get_mut("filter"))
            .map(serde_json::Value::take)
    };
    let arch_rules =
        rules_of(arch_part).ok_or(SeccompError::UnsupportedArch(std::env::consts::ARCH))?;
    let mut extra_rules = Vec::new();
    for &extra in extras {
        extra_rules.push(rules_of(extra).ok_or(SeccompError::MissingFilter(extra))?);
    }
    let mut filter = policy
        .get_mut(base)
        .map(serde_json::Value::take)
        .ok_or(SeccompError::MissingFilter(base))?;
    let rules = filter
        .get_mut("filter")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or(SeccompError::MissingFilter(base))?;
    for part in std::iter::once(arch_rules).chain(extra_rules) {
        if let serde_json::Value::Array(extra) = part {
            rules.extend(extra);
        }
    }
    if let Some(object) = filter.as_object_mut() {
        // A filter's own comment is ours, not seccompiler's.
        object.remove("comment");
    }
    filter["mismatch_action"] = serde_json::Value::from(action);
    Ok(serde_json::json!({ JOINED: filter }).to_string())
}

/// The syscall names the policy allows on this architecture, with or without the
/// multipath backend's part (for the documentation and tests).
pub fn allowed_syscalls(multipath: bool) -> Result<Vec<String>, SeccompError> {
    let extras: &[&str] = if multipath { &["multipath"] } else { &[] };
    let joined: serde_json::Value = serde_json::from_str(&joined_policy(
        "common",
        std::env::consts::ARCH,
        extras,
        "kill_process",
    )?)
    .map_err(SeccompError::PolicyJson)?;
    let mut names: Vec<String> = joined[JOINED]["filter"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|rule| rule["syscall"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Opens trap mode's report file (before Landlock, which would refuse it).
pub fn open_report(path: Option<&Path>) -> Result<Option<std::fs::File>, SeccompError> {
    path.map(|path| {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|source| SeccompError::ReportFile {
                path: path.to_owned(),
                source,
            })
    })
    .transpose()
}

/// Installs the filter on every thread of the process (TSYNC). In trap
/// mode the SIGSYS handler goes in first, reporting also to `report`.
pub fn install(
    mode: SeccompMode,
    multipath: bool,
    report: Option<std::fs::File>,
) -> Result<(), SeccompError> {
    let Some(program) = compile(mode, multipath)? else {
        return Ok(());
    };
    if mode == SeccompMode::Trap {
        super::sys::install_sigsys_reporter(report.map(std::os::fd::OwnedFd::from))
            .map_err(SeccompError::TrapHandler)?;
    }
    seccompiler::apply_filter_all_threads(&program).map_err(SeccompError::Install)
}

/// The mode to use: `--seccomp` as given, except that a report file in the
/// environment turns the default `kill` into `trap` (see [`REPORT_ENV`]).
pub fn effective_mode(
    given: SeccompMode,
    report: Option<&std::ffi::OsStr>,
) -> (SeccompMode, Option<std::path::PathBuf>) {
    match report.filter(|path| !path.is_empty()) {
        Some(path) if given == SeccompMode::Kill || given == SeccompMode::Trap => {
            (SeccompMode::Trap, Some(path.into()))
        }
        _ => (given, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_compiles_on_this_architecture() {
        for mode in [SeccompMode::Kill, SeccompMode::Log, SeccompMode::Trap] {
            for multipath in [false, true] {
                let program = compile(mode, multipath).unwrap().unwrap();
                assert!(!program.is_empty(), "{mode:?}");
            }
        }
        assert!(compile(SeccompMode::None, false).unwrap().is_none());
    }

    #[test]
    fn the_list_has_what_serving_needs_and_not_what_an_attacker_wants() {
        let allowed = allowed_syscalls(false).unwrap();
        // capset only for the multipath backend's permitted-only capabilities.
        let with_multipath = allowed_syscalls(true).unwrap();
        assert!(with_multipath.iter().any(|name| name == "capset"));
        for needed in [
            "recvmsg",
            "sendmsg",
            "ioctl",
            "epoll_ctl",
            "futex",
            "openat",
        ] {
            assert!(allowed.iter().any(|name| name == needed), "{needed}");
        }
        for forbidden in [
            "execve",
            "execveat",
            "ptrace",
            "mount",
            "setuid",
            "capset",
            "init_module",
            "finit_module",
            "kexec_load",
            "bpf",
            "process_vm_writev",
            "io_uring_setup",
            "chmod",
            "fchmod",
            "chown",
            "mknodat",
            "symlinkat",
            "linkat",
            "landlock_create_ruleset",
        ] {
            assert!(!allowed.iter().any(|name| name == forbidden), "{forbidden}");
        }
    }

    #[test]
    fn the_janitors_filter_compiles_and_allows_only_its_job() {
        for mode in [SeccompMode::Kill, SeccompMode::Log, SeccompMode::Trap] {
            assert!(
                !compile_janitor(mode).unwrap().unwrap().is_empty(),
                "{mode:?}"
            );
        }
        assert!(compile_janitor(SeccompMode::None).unwrap().is_none());
        let joined: serde_json::Value = serde_json::from_str(
            &joined_policy(
                "janitor",
                &format!("janitor-{}", std::env::consts::ARCH),
                &[],
                "kill_process",
            )
            .unwrap(),
        )
        .unwrap();
        let allowed: Vec<&str> = joined[JOINED]["filter"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|rule| rule["syscall"].as_str())
            .collect();
        for needed in ["read", "statx", "unlinkat", "exit_group"] {
            assert!(allowed.contains(&needed), "{needed}");
        }
        for forbidden in [
            "openat", "write", "socket", "connect", "execve", "ioctl", "capset", "ptrace", "clone",
            "kill",
        ] {
            assert!(!allowed.contains(&forbidden), "{forbidden}");
        }
    }

    #[test]
    fn a_report_file_turns_the_default_into_trap_but_never_weakens_none_or_log() {
        let path = std::ffi::OsStr::new("/tmp/report");
        assert_eq!(
            effective_mode(SeccompMode::Kill, Some(path)).0,
            SeccompMode::Trap
        );
        assert_eq!(
            effective_mode(SeccompMode::Log, Some(path)),
            (SeccompMode::Log, None)
        );
        assert_eq!(
            effective_mode(SeccompMode::None, Some(path)),
            (SeccompMode::None, None)
        );
        assert_eq!(
            effective_mode(SeccompMode::Kill, None),
            (SeccompMode::Kill, None)
        );
    }
}
