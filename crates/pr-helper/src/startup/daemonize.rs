//! `-d`: detaching from the terminal.
//!
//! We fork before any thread exists. The parent stays in the foreground
//! until the child reports over a pipe: "ready" (the parent exits 0, so a
//! service manager or script that waits for it knows the socket is
//! served) or the start-up error (the parent prints it and exits 1). If the
//! child dies silently, the parent sees end-of-file and exits 1.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;

use rustix::pipe::{PipeFlags, pipe_with};
use rustix::process::{Pid, WaitOptions, setsid, waitpid};

use super::signalmask;
use super::sys::{self, Forked};

const READY: u8 = b'R';
const FAILED: u8 = b'E';

/// Why detaching failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonizeError {
    #[error("cannot create the start-up pipe")]
    Pipe(#[source] io::Error),
    #[error("cannot fork the daemon process")]
    Fork(#[source] io::Error),
    #[error("cannot start a new session (setsid)")]
    Setsid(#[source] io::Error),
    #[error("cannot point the standard streams at /dev/null")]
    StdStreams(#[source] io::Error),
    #[error("cannot change directory to /")]
    Chdir(#[source] io::Error),
}

/// The child's end of the start-up pipe.
#[derive(Debug)]
pub struct Readiness {
    pipe: Option<File>,
}

impl Readiness {
    /// Tells the waiting parent that we serve; it exits 0.
    pub fn ready(&mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            // If the parent is gone there is nobody left to tell.
            let _ = pipe.write_all(&[READY]);
        }
    }

    /// Hands the start-up error to the parent, which prints it and exits 1.
    pub fn fail(&mut self, message: &str) {
        if let Some(mut pipe) = self.pipe.take() {
            let mut bytes = vec![FAILED];
            bytes.extend_from_slice(message.as_bytes());
            let _ = pipe.write_all(&bytes);
        }
    }
}

/// Forks; returns in the child, detached. The parent never returns: it
/// waits for the child's report and exits.
pub fn detach() -> Result<Readiness, DaemonizeError> {
    let (read_end, write_end) =
        pipe_with(PipeFlags::CLOEXEC).map_err(|e| DaemonizeError::Pipe(e.into()))?;
    match sys::fork().map_err(DaemonizeError::Fork)? {
        Forked::Parent(child) => {
            drop(write_end);
            parent_waits(read_end, child)
        }
        Forked::Child => {
            drop(read_end);
            setsid().map_err(|e| DaemonizeError::Setsid(e.into()))?;
            std::env::set_current_dir("/").map_err(DaemonizeError::Chdir)?;
            redirect_std_streams().map_err(DaemonizeError::StdStreams)?;
            Ok(Readiness {
                pipe: Some(File::from(write_end)),
            })
        }
    }
}

fn redirect_std_streams() -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    rustix::stdio::dup2_stdin(&null)?;
    rustix::stdio::dup2_stdout(&null)?;
    rustix::stdio::dup2_stderr(&null)?;
    Ok(())
}

fn parent_waits(read_end: OwnedFd, child: i32) -> ! {
    // The waiting parent may be interrupted like any foreground command;
    // the daemon, in its own session, is not affected.
    let _ = signalmask::block_termination_signals(false);
    let mut report = Vec::new();
    let _ = File::from(read_end).read_to_end(&mut report);
    match report.split_first() {
        Some((&READY, _)) => std::process::exit(0),
        Some((&FAILED, message)) => {
            eprintln!("pr-helper: {}", String::from_utf8_lossy(message));
            std::process::exit(1)
        }
        _ => {
            let status = Pid::from_raw(child)
                .and_then(|pid| waitpid(Some(pid), WaitOptions::empty()).ok().flatten())
                .map(|(_, status)| format!("{status:?}"))
                .unwrap_or_else(|| "unknown status".to_owned());
            eprintln!("pr-helper: the daemon process exited during start-up ({status})");
            std::process::exit(1)
        }
    }
}
