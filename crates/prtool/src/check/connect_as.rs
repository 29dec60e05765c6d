//! `--as USER`, observed: when the check runs as root, a child process (this
//! same program, re-executed with a clean environment) takes on the user's
//! uid, primary group and supplementary groups and only tries `connect()` on
//! the socket. The kernel's own answer, next to the one computed from the
//! permission bits. No `unsafe`: the child drops its credentials with rustix's
//! per-thread calls while it is still single-threaded (first thing in `main`),
//! so they hold for the whole process.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Gid, Uid};

use super::access::Identity;
use super::facts::Observed;

/// The child's credentials, `UID GID G1,G2,...`; its presence selects the child.
const ENV_IDENTITY: &str = "PRTOOL_INTERNAL_CONNECT_AS";
/// The socket the child connects to.
const ENV_SOCKET: &str = "PRTOOL_INTERNAL_CONNECT_SOCKET";
/// The group of a uid without one (Debian's `nogroup`).
const NOGROUP: u32 = 65534;
/// How long the parent waits for the child (a full backlog blocks connect()).
const CHILD_DEADLINE: Duration = Duration::from_secs(5);

/// In the child (the environment names an identity): switch, connect, report
/// on stdout, exit. `None` in every other process. Must run before any thread
/// is started.
pub fn child_main() -> Option<ExitCode> {
    let identity = std::env::var(ENV_IDENTITY).ok()?;
    let socket = std::env::var_os(ENV_SOCKET)?;
    let code = match switch_to(&identity) {
        Err(why) => {
            println!("switch: {why}");
            3
        }
        Ok(()) => match UnixStream::connect(&socket) {
            Ok(_) => {
                println!("connected");
                0
            }
            Err(e) => {
                println!("connect: {e}");
                1
            }
        },
    };
    Some(ExitCode::from(code))
}

/// Parses `UID GID G1,G2` and takes them on: groups first, then gid, then uid
/// (the last drops the right to change the others).
fn switch_to(spec: &str) -> Result<(), String> {
    let mut fields = spec.split(' ');
    let number = |field: Option<&str>| -> Result<u32, String> {
        field
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("malformed identity {spec:?}"))
    };
    let uid = number(fields.next())?;
    let gid = number(fields.next())?;
    let groups: Vec<Gid> = match fields.next() {
        None | Some("") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|g| number(Some(g)).map(Gid::from_raw))
            .collect::<Result<_, _>>()?,
    };
    rustix::thread::set_thread_groups(&groups).map_err(|e| format!("setgroups: {e}"))?;
    let gid = Gid::from_raw(gid);
    rustix::thread::set_thread_res_gid(gid, gid, gid).map_err(|e| format!("setresgid: {e}"))?;
    let uid = Uid::from_raw(uid);
    rustix::thread::set_thread_res_uid(uid, uid, uid).map_err(|e| format!("setresuid: {e}"))?;
    // Refuse to report anything unless the switch really took.
    if rustix::process::geteuid() != uid || rustix::process::getegid() != gid {
        return Err("the credentials did not change".to_owned());
    }
    Ok(())
}

/// The kernel's answer for `who` on `socket`. `None` when it cannot be
/// observed (not root: only root may take on another user's credentials).
pub fn observe(who: &Identity, socket: &Path) -> Option<Observed> {
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            return Some(Observed::ProbeFailed(format!(
                "cannot find this program to re-run: {e}"
            )));
        }
    };
    // A bare uid the database does not know has no group: nogroup's.
    let primary = who.gids.first().copied().unwrap_or(NOGROUP);
    let supplementary: Vec<String> = who.gids.iter().map(u32::to_string).collect();
    let spec = format!("{} {primary} {}", who.uid, supplementary.join(","));
    let mut child = match Command::new(exe)
        .env_clear()
        .env(ENV_IDENTITY, spec)
        .env(ENV_SOCKET, socket)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            return Some(Observed::ProbeFailed(format!(
                "cannot start the connect probe: {e}"
            )));
        }
    };
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < CHILD_DEADLINE => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Some(Observed::ProbeFailed(format!(
                    "connect() did not return within {} s (the helper's backlog is full?)",
                    CHILD_DEADLINE.as_secs()
                )));
            }
            Err(e) => {
                return Some(Observed::ProbeFailed(format!(
                    "waiting for the connect probe: {e}"
                )));
            }
        }
    };
    let mut said = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut said);
    }
    let said = said.trim().to_owned();
    Some(match status.code() {
        Some(0) => Observed::Connected,
        Some(1) => Observed::Refused(said.trim_start_matches("connect: ").to_owned()),
        _ => Observed::ProbeFailed(format!("the connect probe failed: {said} ({status})")),
    })
}
