//! `pr-helper-probe`: the real daemon (same command line, same start-up, same
//! `sandbox::confine`) whose only backend, once confined, attempts one operation
//! the sandbox must refuse, named by `PR_HELPER_PROBE_CASE`, when the first command
//! arrives. It is how the confinement tests (`tests/confinement.rs`, the VM tier's
//! `scenario-confinement.sh`) check the sandbox from inside the process it confines.
//! Test code only: the Debian package does not ship it.
//!
//! Each attempt appends two lines to the file `PR_HELPER_PROBE_RESULT` (opened
//! before confinement): `attempt CASE`, then `result CASE ok` or
//! `result CASE errno N`. A process killed by the filter writes only the first.
//! The case runs on a thread of its own, started after confinement.
//!
//! | case | operation |
//! |---|---|
//! | `thread` | start and join a thread (must succeed under the sandbox) |
//! | `clone-newuser` | `clone(CLONE_NEWUSER \| SIGCHLD)`: a child in a new user namespace |
//! | `clone3` | `clone3` creating a child process |
//! | `unshare` | `unshare(CLONE_FILES)` |
//! | `socket-unix-stream` | `socket(AF_UNIX, SOCK_STREAM)` |
//! | `socket-inet` | `socket(AF_INET, SOCK_STREAM)` |
//! | `socket-netlink-route` | `socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)` |
//! | `connect` | `connect` of a stream socket (created before confinement) to the listening socket `PR_HELPER_PROBE_TARGET` |
//! | `open-disk-write` | `open(PR_HELPER_PROBE_TARGET, O_RDWR)` of a block device |
//! | `execve` | `execve` of this binary, which appends `executed` to the result file and exits 0 |
//! | `ptrace` | `PTRACE_ATTACH` to a child (started before confinement, with no capabilities) |

mod sys;

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, ExitCode, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use clap::Parser;

use pr_helper::args::Args;
use pr_helper::backend::{Backend, Backends, Command};
use pr_helper::config::Config;
use pr_helper::startup::{self, error_chain};

/// Which operation to attempt.
const CASE_ENV: &str = "PR_HELPER_PROBE_CASE";
/// Where the lines go.
const RESULT_ENV: &str = "PR_HELPER_PROBE_RESULT";
/// The case's target: the listening socket (`connect`), the block device
/// (`open-disk-write`).
const TARGET_ENV: &str = "PR_HELPER_PROBE_TARGET";
/// Set in the processes this binary starts of itself: `exec-marker` (the
/// `execve` case's new image), `ptrace-target` (the `ptrace` case's tracee).
const ROLE_ENV: &str = "PR_HELPER_PROBE_ROLE";

/// What the case needs, prepared before confinement.
#[derive(Debug)]
struct Probe {
    case: String,
    result: Mutex<File>,
    /// `connect`: an unconnected stream socket; `open-disk-write`: the device.
    target: Option<PathBuf>,
    socket: Option<OwnedFd>,
    /// `execve`: this binary.
    exe: Option<PathBuf>,
    /// `ptrace`: the tracee (kept so its stdin, its lifeline, stays open).
    tracee: Option<Child>,
    /// Attempt once: later commands are answered without trying again.
    done: OnceLock<()>,
}

/// What the attempt gave.
type Outcome = Result<(), i32>;

impl Probe {
    fn line(&self, text: &str) {
        let mut file = self.result.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(file, "{text}");
        let _ = file.flush();
    }

    fn attempt(&self) -> Outcome {
        match self.case.as_str() {
            "thread" => std::thread::spawn(|| 7)
                .join()
                .map_err(|_| -1)
                .and_then(|n| if n == 7 { Ok(()) } else { Err(-1) }),
            "clone-newuser" => sys::fork_with(libc::CLONE_NEWUSER),
            "clone3" => sys::clone3_fork(),
            "unshare" => sys::unshare(libc::CLONE_FILES),
            "socket-unix-stream" => socket(
                rustix::net::AddressFamily::UNIX,
                rustix::net::SocketType::STREAM,
                None,
            ),
            "socket-inet" => socket(
                rustix::net::AddressFamily::INET,
                rustix::net::SocketType::STREAM,
                None,
            ),
            "socket-netlink-route" => socket(
                rustix::net::AddressFamily::NETLINK,
                rustix::net::SocketType::RAW,
                // Protocol 0 is NETLINK_ROUTE.
                None,
            ),
            "connect" => {
                let (Some(socket), Some(target)) = (&self.socket, &self.target) else {
                    return Err(-1);
                };
                let address = rustix::net::SocketAddrUnix::new(target).map_err(errno)?;
                rustix::net::connect(socket, &address).map_err(errno)
            }
            "open-disk-write" => {
                let Some(target) = &self.target else {
                    return Err(-1);
                };
                let flags = rustix::fs::OFlags::RDWR
                    | rustix::fs::OFlags::CLOEXEC
                    | rustix::fs::OFlags::NONBLOCK;
                rustix::fs::open(target, flags, rustix::fs::Mode::empty())
                    .map(drop)
                    .map_err(errno)
            }
            "execve" => {
                let Some(exe) = &self.exe else {
                    return Err(-1);
                };
                let result = std::env::var_os(RESULT_ENV).unwrap_or_default();
                sys::execve(
                    exe,
                    &[(ROLE_ENV, "exec-marker".as_ref()), (RESULT_ENV, &result)],
                )
            }
            "ptrace" => {
                let Some(tracee) = &self.tracee else {
                    return Err(-1);
                };
                sys::ptrace_attach_and_detach(tracee.id())
            }
            _ => Err(-1),
        }
    }
}

fn errno(error: rustix::io::Errno) -> i32 {
    error.raw_os_error()
}

fn socket(
    family: rustix::net::AddressFamily,
    kind: rustix::net::SocketType,
    protocol: Option<rustix::net::Protocol>,
) -> Outcome {
    rustix::net::socket_with(family, kind, rustix::net::SocketFlags::CLOEXEC, protocol)
        .map(drop)
        .map_err(errno)
}

impl Backend for Probe {
    fn execute(&self, _command: &Command<'_>) -> pr_protocol::Response {
        if self.done.set(()).is_ok() {
            self.line(&format!("attempt {}", self.case));
            // On a thread started now: thread creation under the filter is part of
            // every case, and `unshare` changes that thread only.
            let outcome = std::thread::scope(|scope| {
                scope.spawn(|| self.attempt()).join().unwrap_or(Err(-1))
            });
            match outcome {
                Ok(()) => self.line(&format!("result {} ok", self.case)),
                Err(errno) => self.line(&format!("result {} errno {errno}", self.case)),
            }
        }
        pr_protocol::Response {
            status: 0,
            sense: [0; 96],
            data: Vec::new(),
        }
    }
}

/// Builds the probe backend (called by the start-up sequence while still root and
/// single-threaded, before the privilege drop and the sandbox).
fn probe(backends: Backends) -> Backends {
    let fail = |what: &str| -> ! {
        eprintln!("pr-helper-probe: {what}");
        std::process::exit(2)
    };
    let case = std::env::var(CASE_ENV).unwrap_or_else(|_| fail(&format!("{CASE_ENV} is not set")));
    let result_path =
        std::env::var_os(RESULT_ENV).unwrap_or_else(|| fail(&format!("{RESULT_ENV} is not set")));
    let result = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&result_path)
        .unwrap_or_else(|e| fail(&format!("cannot open {RESULT_ENV}: {e}")));
    let target = std::env::var_os(TARGET_ENV).map(PathBuf::from);
    let socket = (case == "connect").then(|| {
        rustix::net::socket_with(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap_or_else(|e| fail(&format!("cannot create the connect case's socket: {e}")))
    });
    let exe = (case == "execve").then(|| {
        std::env::current_exe().unwrap_or_else(|e| fail(&format!("cannot find this binary: {e}")))
    });
    let tracee = (case == "ptrace").then(|| {
        let exe = std::env::current_exe()
            .unwrap_or_else(|e| fail(&format!("cannot find this binary: {e}")));
        let mut tracee = std::process::Command::new(exe)
            .env(ROLE_ENV, "ptrace-target")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| fail(&format!("cannot start the ptrace target: {e}")));
        // One line once it has no capabilities left: attaching before that fails.
        let mut line = String::new();
        let ready = tracee
            .stdout
            .take()
            .map(|out| std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line));
        if !matches!(ready, Some(Ok(n)) if n > 0) {
            fail("the ptrace target did not start");
        }
        tracee
    });
    backends.replace_all_with(Arc::new(Probe {
        case,
        result: Mutex::new(result),
        target,
        socket,
        exe,
        tracee,
        done: OnceLock::new(),
    }))
}

/// The `ptrace` case's tracee: gives up every capability (so a daemon holding only
/// CAP_SYS_RAWIO may attach to it), then waits for its stdin to close.
fn ptrace_target() -> ExitCode {
    let none = rustix::thread::CapabilitySets {
        effective: rustix::thread::CapabilitySet::empty(),
        permitted: rustix::thread::CapabilitySet::empty(),
        inheritable: rustix::thread::CapabilitySet::empty(),
    };
    if let Err(error) = rustix::thread::set_capabilities(None, none) {
        eprintln!("pr-helper-probe: ptrace target: cannot drop capabilities: {error}");
        return ExitCode::FAILURE;
    }
    println!("ready");
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    ExitCode::SUCCESS
}

/// The `execve` case's new image: proof that the exec happened.
fn exec_marker() -> ExitCode {
    let Some(path) = std::env::var_os(RESULT_ENV) else {
        return ExitCode::FAILURE;
    };
    let written = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| writeln!(file, "executed"));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn main() -> ExitCode {
    match std::env::var(ROLE_ENV).as_deref() {
        Ok("ptrace-target") => return ptrace_target(),
        Ok("exec-marker") => return exec_marker(),
        _ => {}
    }
    let args = Args::parse();
    let config = match Config::try_from(args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("pr-helper-probe: {}", error_chain(&error));
            return ExitCode::from(2);
        }
    };
    match startup::run_with(config, probe) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pr-helper-probe: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}
