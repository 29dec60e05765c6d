//! `pr-sigterm-probe`: starts a helper, keeps several clients sending READ
//! KEYS on a device through it, sends SIGTERM to the helper mid-stream and
//! accounts for every request: those whose CDB was fully sent before the
//! signal must all be answered. Prints one `key=value` line (read by
//! guest/scenario-sigterm.sh).
//!
//! usage: pr-sigterm-probe --socket S --device D [--clients N]
//!            [--replies-before-signal M] [--pidfile P] -- HELPER ARGS...
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use rustix::process::{Pid, Signal, kill_process};
use vm_tests::wire::{self, read_keys_cdb, read_reply, send_request};

#[derive(Debug, Parser)]
struct Args {
    /// The helper's socket (the helper command must listen there).
    #[arg(long)]
    socket: PathBuf,
    /// Device whose descriptor every request carries.
    #[arg(long)]
    device: PathBuf,
    /// Concurrent client connections, one thread each.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Replies to collect (all clients together) before the signal.
    #[arg(long, default_value_t = 400)]
    replies_before_signal: u64,
    /// The helper's pid file, checked for removal at exit.
    #[arg(long)]
    pidfile: Option<PathBuf>,
    /// The helper command line.
    #[arg(last = true, required = true)]
    helper: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error("starting the helper {0:?}")]
    Spawn(String, #[source] std::io::Error),
    #[error("the helper did not create {0} within a minute")]
    NoSocket(PathBuf),
    #[error("opening {0}")]
    OpenDevice(PathBuf, #[source] std::io::Error),
    #[error("the clients collected no {0} replies within a minute before the signal")]
    NoLoad(u64),
    #[error("sending SIGTERM")]
    Kill(#[source] std::io::Error),
    #[error("waiting for the helper")]
    Wait(#[source] std::io::Error),
}

/// Shared counters; "before"/"after" refer to the moment the flag was set,
/// which happens just before kill().
#[derive(Default)]
struct Tally {
    signalled: AtomicBool,
    /// CDB fully sent before the signal.
    sent_before: AtomicU64,
    answered_before: AtomicU64,
    /// Sent before the signal, answered after it: in flight at the signal.
    answered_in_flight: AtomicU64,
    sent_after: AtomicU64,
    answered_after: AtomicU64,
    /// Replies of any kind, for the warm-up.
    replies: AtomicU64,
    /// Replies with a status other than GOOD.
    not_good: AtomicU64,
    /// Transport failures before the signal: a bug either way.
    failures_before: AtomicU64,
}

/// Requests one client may still send after the signal, so that a helper
/// that ignores SIGTERM cannot keep the probe running.
const MAX_AFTER_SIGNAL: u64 = 2000;

fn client(socket: &Path, device: &OwnedFd, tally: &Tally) {
    let Ok(mut stream) = wire::connect(socket) else {
        if !tally.signalled.load(Ordering::SeqCst) {
            tally.failures_before.fetch_add(1, Ordering::SeqCst);
        }
        return;
    };
    let cdb = read_keys_cdb(1024);
    let mut after = 0u64;
    loop {
        if send_request(&mut stream, &cdb, Some(device.as_fd()), &[]).is_err() {
            if !tally.signalled.load(Ordering::SeqCst) {
                tally.failures_before.fetch_add(1, Ordering::SeqCst);
            }
            return;
        }
        // Checked after the send completed: false means the whole CDB was
        // in the helper's socket before the signal was sent.
        let before = !tally.signalled.load(Ordering::SeqCst);
        if before {
            tally.sent_before.fetch_add(1, Ordering::SeqCst);
        } else {
            tally.sent_after.fetch_add(1, Ordering::SeqCst);
            after += 1;
        }
        let Ok(reply) = read_reply(&mut stream) else {
            return;
        };
        tally.replies.fetch_add(1, Ordering::SeqCst);
        if reply.status() != 0 {
            tally.not_good.fetch_add(1, Ordering::SeqCst);
        }
        match (before, tally.signalled.load(Ordering::SeqCst)) {
            (true, false) => tally.answered_before.fetch_add(1, Ordering::SeqCst),
            (true, true) => {
                tally.answered_before.fetch_add(1, Ordering::SeqCst);
                tally.answered_in_flight.fetch_add(1, Ordering::SeqCst)
            }
            (false, _) => tally.answered_after.fetch_add(1, Ordering::SeqCst),
        };
        if after >= MAX_AFTER_SIGNAL {
            return;
        }
    }
}

/// Polls until `done` or a minute passes (a readiness wait, not a measure).
fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}

fn start_helper(args: &Args) -> Result<Child, ProbeError> {
    let (program, rest) = args
        .helper
        .split_first()
        .ok_or_else(|| ProbeError::Spawn(String::new(), std::io::ErrorKind::InvalidInput.into()))?;
    let _ = std::fs::remove_file(&args.socket);
    let child = Command::new(program)
        .args(rest)
        .spawn()
        .map_err(|error| ProbeError::Spawn(args.helper.join(" "), error))?;
    if !wait_until(|| args.socket.exists()) {
        return Err(ProbeError::NoSocket(args.socket.clone()));
    }
    Ok(child)
}

fn run(args: &Args) -> Result<String, ProbeError> {
    let mut helper = start_helper(args)?;
    let tally = Arc::new(Tally::default());
    let mut workers = Vec::new();
    for _ in 0..args.clients {
        let device: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&args.device)
            .map_err(|error| ProbeError::OpenDevice(args.device.clone(), error))?
            .into();
        let tally = Arc::clone(&tally);
        let socket = args.socket.clone();
        workers.push(thread::spawn(move || client(&socket, &device, &tally)));
    }

    let warm = wait_until(|| tally.replies.load(Ordering::SeqCst) >= args.replies_before_signal);
    tally.signalled.store(true, Ordering::SeqCst);
    let pid = i32::try_from(helper.id())
        .ok()
        .and_then(Pid::from_raw)
        .ok_or(ProbeError::Kill(std::io::ErrorKind::InvalidInput.into()))?;
    kill_process(pid, Signal::TERM).map_err(|errno| ProbeError::Kill(errno.into()))?;
    if !warm {
        let _ = helper.wait();
        return Err(ProbeError::NoLoad(args.replies_before_signal));
    }

    for worker in workers {
        let _ = worker.join();
    }
    let status = helper.wait().map_err(ProbeError::Wait)?;
    let exit = status
        .code()
        .map_or_else(|| format!("signal-{status}"), |code| code.to_string());
    let removed = |path: &Path| if path.exists() { "no" } else { "yes" };
    let load = |counter: &AtomicU64| counter.load(Ordering::SeqCst);
    let sent_before = load(&tally.sent_before);
    let answered_before = load(&tally.answered_before);
    Ok(format!(
        "clients={} sent_before={sent_before} answered_before={answered_before} \
         lost_before={} answered_in_flight={} sent_after={} answered_after={} \
         not_good={} failures_before={} exit={exit} socket_removed={} pidfile_removed={}",
        args.clients,
        sent_before.saturating_sub(answered_before),
        load(&tally.answered_in_flight),
        load(&tally.sent_after),
        load(&tally.answered_after),
        load(&tally.not_good),
        load(&tally.failures_before),
        removed(&args.socket),
        args.pidfile.as_deref().map_or("unchecked", removed),
    ))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("pr-sigterm-probe: {}", vm_tests::error_chain(&error));
            ExitCode::FAILURE
        }
    }
}
