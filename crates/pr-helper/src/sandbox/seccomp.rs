//! The seccomp allowlist: compiled from `seccomp-policy.json` (data, one
//! comment per rule) with rust-vmm's `seccompiler`, installed on every
//! thread with TSYNC.
//!
//! The file holds seccompiler filters: `common`, plus one per architecture
//! for the syscalls only that architecture has (`poll`, `open`, ... on
//! x86_64), `multipath` for the multipath backend, and two parts that are
//! not plain rules:
//! - `per_datagram_socket`: rules instantiated once per Unix datagram socket
//!   the daemon holds when it confines itself (the journal's, syslog's, the
//!   readiness one), each with `arg0 == that descriptor`: `sendmsg` and
//!   `sendto` with an address reach nothing else;
//! - `answered_enosys`: syscalls that fail with ENOSYS in every mode instead
//!   of being judged by the allowlist (`clone3`, so the C library falls back
//!   to `clone`, whose flags a filter can check: seccomp cannot look into
//!   `clone3`'s argument structure).
//!
//! [`compile`] joins them and sets what a syscall outside the list gets,
//! from `--seccomp`:
//!
//! | mode | a syscall not in the list |
//! |---|---|
//! | `kill` (default) | the whole process is killed with SIGSYS (SECCOMP_RET_KILL_PROCESS) |
//! | `trap` | fails with ENOSYS; a SIGSYS handler reports it once per syscall number on standard error |
//! | `log` | runs, and the kernel logs it (SECCOMP_RET_LOG: the audit log or `dmesg`) |
//! | `none` | no filter |
//!
//! Only the command line chooses the mode; the start-up log has a warning
//! whenever it is not `kill`. `scripts/seccomp-derive.sh` builds its own
//! daemon, with `PR_HELPER_SECCOMP_DERIVE_REPORT` set at compile time, whose
//! default is `trap` and whose handler also appends its lines to that file
//! (see [`DERIVE_REPORT`]); the binaries built without it (every other build,
//! the package's) have no such file and default to `kill`.

use std::os::fd::RawFd;
use std::path::Path;

use seccompiler::{BpfProgram, TargetArch, sock_filter};

/// The policy, as data.
pub const POLICY_JSON: &str = include_str!("seccomp-policy.json");

/// Set only in the daemon `scripts/seccomp-derive.sh` builds (from the
/// compile-time variable `PR_HELPER_SECCOMP_DERIVE_REPORT`): the file where trap
/// mode appends one line per blocked syscall number (standard error is
/// /dev/null with `-d`, and test harnesses keep it in per-test files). In
/// that build the default mode is `trap`, so a whole test suite runs in trap
/// mode without changing any command line.
pub const DERIVE_REPORT: Option<&str> = option_env!("PR_HELPER_SECCOMP_DERIVE_REPORT");

/// `--seccomp`'s default: `kill`, except in the derive build.
pub const DEFAULT_MODE: &str = if DERIVE_REPORT.is_some() {
    "trap"
} else {
    "kill"
};

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
    #[error("the seccomp policy answers {0:?} with ENOSYS, a syscall this build cannot name")]
    UnknownEnosysSyscall(String),
    #[error("this architecture ({0}) has no seccomp policy: run with --seccomp=none")]
    UnsupportedArch(&'static str),
    #[error("cannot compile the seccomp policy")]
    Compile(#[source] seccompiler::Error),
    #[error("cannot install the SIGSYS handler for --seccomp=trap")]
    TrapHandler(#[source] std::io::Error),
    #[error("cannot open the seccomp report file {path} (the derive build's)")]
    ReportFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot list the daemon's datagram sockets")]
    Sockets(#[source] std::io::Error),
    #[error("cannot install the seccomp filter")]
    Install(#[source] seccompiler::Error),
}

/// The filter name under which [`compile`] joins the policy's parts.
const JOINED: &str = "pr-helper";

/// What the filter is built for, besides the mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterPlan {
    /// The multipath backend is on: its part of the policy is added.
    pub multipath: bool,
    /// The Unix datagram sockets open at confinement (see
    /// [`datagram_sockets`]): `per_datagram_socket` is instantiated for each.
    pub datagram_sockets: Vec<RawFd>,
}

/// The policy for the running architecture with `mode`'s action for
/// syscalls outside it; `None` for [`SeccompMode::None`].
pub fn compile(mode: SeccompMode, plan: &FilterPlan) -> Result<Option<BpfProgram>, SeccompError> {
    let Some(action) = mode.mismatch_action() else {
        return Ok(None);
    };
    let arch_name = std::env::consts::ARCH;
    let extras: &[&str] = if plan.multipath { &["multipath"] } else { &[] };
    let joined = joined_policy("common", arch_name, extras, &plan.datagram_sockets, action)?;
    let Some(allowlist) = build(&joined)? else {
        return Ok(None);
    };
    let mut program = enosys_prefix(&enosys_syscalls()?);
    program.extend(allowlist);
    Ok(Some(program))
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
    build(&joined_policy("janitor", &arch, &[], &[], action)?)
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
/// architecture's, which must exist), of each of `extras` and of
/// `per_datagram_socket` once per descriptor of `sockets`, as one seccompiler
/// filter named [`JOINED`] whose syscalls outside it get `action`.
fn joined_policy(
    base: &'static str,
    arch_part: &str,
    extras: &[&'static str],
    sockets: &[RawFd],
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
    if !sockets.is_empty() {
        let template = rules_of("per_datagram_socket")
            .ok_or(SeccompError::MissingFilter("per_datagram_socket"))?;
        extra_rules.push(per_socket_rules(&template, sockets));
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

/// Each rule of `template` once per descriptor, with `arg0 == descriptor`
/// added to its conditions.
fn per_socket_rules(template: &serde_json::Value, sockets: &[RawFd]) -> serde_json::Value {
    let mut rules = Vec::new();
    for rule in template.as_array().into_iter().flatten() {
        for &fd in sockets {
            let mut rule = rule.clone();
            let condition = serde_json::json!({
                "index": 0,
                "type": "dword",
                "op": "eq",
                "val": fd,
                "comment": "one of the datagram sockets open at confinement",
            });
            match rule
                .get_mut("args")
                .and_then(serde_json::Value::as_array_mut)
            {
                Some(args) => args.push(condition),
                None => rule["args"] = serde_json::Value::Array(vec![condition]),
            }
            rules.push(rule);
        }
    }
    serde_json::Value::Array(rules)
}

/// The numbers of the policy's `answered_enosys` syscalls on this architecture.
fn enosys_syscalls() -> Result<Vec<u32>, SeccompError> {
    let policy: serde_json::Value =
        serde_json::from_str(POLICY_JSON).map_err(SeccompError::PolicyJson)?;
    let rules = policy["answered_enosys"]["filter"]
        .as_array()
        .ok_or(SeccompError::MissingFilter("answered_enosys"))?;
    rules
        .iter()
        .map(|rule| {
            let name = rule["syscall"].as_str().unwrap_or_default();
            let number = match name {
                "clone3" => libc::SYS_clone3,
                _ => return Err(SeccompError::UnknownEnosysSyscall(name.to_owned())),
            };
            u32::try_from(number).map_err(|_| SeccompError::UnknownEnosysSyscall(name.to_owned()))
        })
        .collect()
}

/// Classic BPF opcodes (linux/bpf_common.h) for the ENOSYS prefix.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
/// `SECCOMP_RET_ERRNO` (linux/seccomp.h).
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;

/// Instructions that answer each of `numbers` with ENOSYS and fall through to
/// the allowlist for every other syscall (which checks the architecture
/// itself). Loaded before the architecture check: a syscall of another ABI that
/// happens to carry one of these numbers fails with ENOSYS too, which refuses
/// more, never less.
fn enosys_prefix(numbers: &[u32]) -> BpfProgram {
    let mut program = vec![sock_filter {
        code: BPF_LD_W_ABS,
        jt: 0,
        jf: 0,
        // seccomp_data.nr
        k: 0,
    }];
    for &number in numbers {
        program.push(sock_filter {
            code: BPF_JEQ_K,
            jt: 0,
            jf: 1,
            k: number,
        });
        program.push(sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ERRNO | libc::ENOSYS.unsigned_abs(),
        });
    }
    program
}

/// The syscall names the policy allows on this architecture, with or without the
/// multipath backend's part (for the documentation and tests).
pub fn allowed_syscalls(multipath: bool) -> Result<Vec<String>, SeccompError> {
    let mut names: Vec<String> = allowed_rules(multipath, &[])?
        .iter()
        .filter_map(|rule| rule["syscall"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// The rules of the joined policy (tests look at their conditions).
fn allowed_rules(
    multipath: bool,
    sockets: &[RawFd],
) -> Result<Vec<serde_json::Value>, SeccompError> {
    let extras: &[&str] = if multipath { &["multipath"] } else { &[] };
    let joined: serde_json::Value = serde_json::from_str(&joined_policy(
        "common",
        std::env::consts::ARCH,
        extras,
        sockets,
        "kill_process",
    )?)
    .map_err(SeccompError::PolicyJson)?;
    Ok(joined[JOINED]["filter"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// Opens the derive build's report file (before Landlock, which would refuse it).
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

/// The Unix datagram sockets among this process's descriptors: what the
/// journal's and syslog's loggers and the readiness notification send with.
/// Read from /proc (each descriptor's `socket:[INODE]` link, each socket's type
/// in /proc/self/net/unix), so it needs no descriptor borrowed by number.
pub fn datagram_sockets() -> Result<Vec<RawFd>, SeccompError> {
    let unix = std::fs::read_to_string("/proc/self/net/unix").map_err(SeccompError::Sockets)?;
    let datagram_inodes = datagram_inodes(&unix);
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").map_err(SeccompError::Sockets)? {
        let entry = entry.map_err(SeccompError::Sockets)?;
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        // The directory's own descriptor is gone by now: no link.
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let inode = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse::<u64>().ok());
        if inode.is_some_and(|inode| datagram_inodes.contains(&inode)) {
            fds.push(fd);
        }
    }
    fds.sort_unstable();
    Ok(fds)
}

/// The inodes of the SOCK_DGRAM sockets listed in /proc/net/unix (columns:
/// Num RefCount Protocol Flags Type St Inode Path; Type 0002 is SOCK_DGRAM).
fn datagram_inodes(table: &str) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            let kind = columns.get(4)?;
            let inode = columns.get(6)?.parse().ok()?;
            (u32::from_str_radix(kind, 16).ok()? == 2).then_some(inode)
        })
        .collect()
}

/// Installs the filter on every thread of the process (TSYNC). In trap
/// mode the SIGSYS handler goes in first, reporting also to `report`.
pub fn install(
    mode: SeccompMode,
    plan: &FilterPlan,
    report: Option<std::fs::File>,
) -> Result<(), SeccompError> {
    let Some(program) = compile(mode, plan)? else {
        return Ok(());
    };
    if mode == SeccompMode::Trap {
        super::sys::install_sigsys_reporter(report.map(std::os::fd::OwnedFd::from))
            .map_err(SeccompError::TrapHandler)?;
    }
    seccompiler::apply_filter_all_threads(&program).map_err(SeccompError::Install)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_compiles_on_this_architecture() {
        for mode in [SeccompMode::Kill, SeccompMode::Log, SeccompMode::Trap] {
            for multipath in [false, true] {
                let plan = FilterPlan {
                    multipath,
                    datagram_sockets: vec![5, 7],
                };
                let program = compile(mode, &plan).unwrap().unwrap();
                assert!(!program.is_empty(), "{mode:?}");
            }
        }
        assert!(
            compile(SeccompMode::None, &FilterPlan::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_list_has_what_serving_needs_and_not_what_an_attacker_wants() {
        let allowed = allowed_syscalls(false).unwrap();
        // capset only for the multipath backend's permitted-only capabilities.
        let with_multipath = allowed_syscalls(true).unwrap();
        assert!(with_multipath.iter().any(|name| name == "capset"));
        // sendmsg only on the datagram sockets open at confinement (none here).
        let with_a_log_socket: Vec<String> = allowed_rules(false, &[3])
            .unwrap()
            .iter()
            .filter_map(|rule| rule["syscall"].as_str().map(str::to_owned))
            .collect();
        assert!(with_a_log_socket.iter().any(|name| name == "sendmsg"));
        for needed in ["recvmsg", "sendto", "ioctl", "epoll_ctl", "futex", "openat"] {
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
            "clone3",
            "unshare",
            "setns",
            "socket",
            "socketpair",
            "connect",
            "bind",
            "listen",
            "sendmmsg",
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

    /// The conditions of every rule for `syscall` in the joined policy.
    fn conditions_of(syscall: &str, multipath: bool, sockets: &[RawFd]) -> Vec<serde_json::Value> {
        allowed_rules(multipath, sockets)
            .unwrap()
            .into_iter()
            .filter(|rule| rule["syscall"] == syscall)
            .map(|rule| rule["args"].clone())
            .collect()
    }

    #[test]
    fn clone_is_allowed_only_with_the_flags_of_a_new_thread() {
        let thread_flags = libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_SETTLS
            | libc::CLONE_PARENT_SETTID
            | libc::CLONE_CHILD_CLEARTID;
        let rules = conditions_of("clone", true, &[]);
        assert_eq!(rules.len(), 1, "{rules:?}");
        let condition = &rules[0][0];
        assert_eq!(condition["index"], 0);
        assert_eq!(condition["op"], "eq");
        assert_eq!(condition["type"], "qword");
        assert_eq!(condition["val"], i64::from(thread_flags));
    }

    #[test]
    fn the_nvme_backends_ioctls_are_allowed_and_the_block_pr_ioctls_are_not() {
        use blk_pr::ioctl_numbers as numbers;
        let requests: Vec<i64> = conditions_of("ioctl", false, &[])
            .iter()
            .filter_map(|args| args[0]["val"].as_i64())
            .collect();
        for needed in [
            numbers::NVME_IOCTL_ID,
            numbers::NVME_IOCTL_IO_CMD,
            numbers::NVME_IOCTL_ADMIN_CMD,
        ] {
            assert!(requests.contains(&i64::from(needed)), "{needed:#x}");
        }
        // The daemon never sends the block layer's PR ioctls (backend/nvme.rs).
        for refused in [
            numbers::IOC_PR_REGISTER,
            numbers::IOC_PR_RESERVE,
            numbers::IOC_PR_RELEASE,
            numbers::IOC_PR_PREEMPT,
            numbers::IOC_PR_PREEMPT_ABORT,
            numbers::IOC_PR_CLEAR,
            numbers::IOC_PR_READ_KEYS,
            numbers::IOC_PR_READ_RESERVATION,
        ] {
            assert!(!requests.contains(&i64::from(refused)), "{refused:#x}");
        }
    }

    #[test]
    fn clone3_is_answered_enosys_before_the_allowlist() {
        assert_eq!(
            enosys_syscalls().unwrap(),
            [u32::try_from(libc::SYS_clone3).unwrap()]
        );
        let program = compile(SeccompMode::Kill, &FilterPlan::default())
            .unwrap()
            .unwrap();
        let prefix = enosys_prefix(&enosys_syscalls().unwrap());
        assert_eq!(program.get(..prefix.len()), Some(&prefix[..]));
        let answer = prefix.last().unwrap();
        assert_eq!(answer.code, BPF_RET_K);
        assert_eq!(answer.k, 0x0005_0000 | 38);
    }

    #[test]
    fn sendmsg_and_addressed_sendto_only_on_the_datagram_sockets() {
        assert!(conditions_of("sendmsg", false, &[]).is_empty());
        let sendmsg = conditions_of("sendmsg", false, &[4, 9]);
        let fds: Vec<&serde_json::Value> = sendmsg
            .iter()
            .map(|args| {
                let args = args.as_array().unwrap();
                assert_eq!(args.len(), 1, "{args:?}");
                &args[0]["val"]
            })
            .collect();
        assert_eq!(fds, [4, 9]);
        // sendto: without an address on any socket (responses), with one only
        // on those sockets.
        let sendto = conditions_of("sendto", false, &[4]);
        assert_eq!(sendto.len(), 2, "{sendto:?}");
        assert!(
            sendto
                .iter()
                .any(|args| args[0]["index"] == 4 && args[0]["val"] == 0)
        );
        assert!(
            sendto
                .iter()
                .any(|args| args[0]["index"] == 0 && args[0]["val"] == 4)
        );
    }

    #[test]
    fn datagram_sockets_are_found_by_descriptor() {
        use std::os::fd::AsRawFd;
        let datagram = std::os::unix::net::UnixDatagram::unbound().unwrap();
        let (stream, _other) = std::os::unix::net::UnixStream::pair().unwrap();
        let found = datagram_sockets().unwrap();
        assert!(found.contains(&datagram.as_raw_fd()), "{found:?}");
        assert!(!found.contains(&stream.as_raw_fd()), "{found:?}");
    }

    #[test]
    fn the_unix_socket_table_is_read_by_type() {
        let table = "Num       RefCount Protocol Flags    Type St Inode Path\n\
                     0000000000000000: 00000002 00000000 00010000 0001 01 1234 /run/x\n\
                     0000000000000000: 00000002 00000000 00000000 0002 01 5678 /dev/log\n\
                     0000000000000000: 00000002 00000000 00000000 0005 01 91011\n";
        assert_eq!(datagram_inodes(table), [5678]);
    }
}
