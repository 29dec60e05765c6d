//! Confinement after start-up: a seccomp allowlist and a Landlock ruleset.
//!
//! Both are installed by [`confine`] once start-up is done (listener, pid
//! file, janitor, logging, backends and the privilege drop), while the
//! process is still single-threaded: every thread the runtime starts later
//! inherits both. The seccomp filter is additionally installed with TSYNC,
//! so a thread that exists anyway (none should) is covered too.
//!
//! - [`seccomp`]: the allowlist is data, in `seccomp-policy.json` next to
//!   this file, with one comment per rule naming the code that needs it.
//!   ioctl is allowed only for SG_IO, the NVMe backend's NVME_IOCTL_ID,
//!   NVME_IOCTL_IO_CMD and NVME_IOCTL_ADMIN_CMD, FIONREAD, FIONBIO and
//!   (multipath) DM_TABLE_STATUS; `clone` only with a new thread's flags, `clone3` fails
//!   with ENOSYS; no `socket`, `connect`, `bind` or `listen` at all (every
//!   socket the daemon uses is open before it confines itself), and
//!   `sendmsg` or an addressed `sendto` only on the datagram sockets it holds
//!   then (journald, syslog, readiness).
//! - The janitor (`startup/janitor.rs`), forked before all this, installs its own
//!   small filter ([`seccomp::compile_janitor`]) and ruleset
//!   ([`landlock::restrict_janitor`]).
//! - [`landlock`]: read-only /sys and /proc, the software target's state
//!   directory; for multipath, device nodes under /dev read-only with device
//!   ioctls and /dev/mapper/control read-write; no TCP, no signals or
//!   abstract sockets outside the sandbox. Best effort: a kernel without
//!   Landlock gets one log line.

pub mod landlock;
pub mod seccomp;
mod sys;

pub use self::landlock::{LandlockError, LandlockOutcome, LandlockPlan};
pub use self::seccomp::{FilterPlan, SeccompError, SeccompMode};

/// What to confine, worked out from the configuration.
#[derive(Debug)]
pub struct SandboxPlan {
    /// `--seccomp`.
    pub seccomp: SeccompMode,
    /// Where trap mode reports blocked syscalls besides standard error
    /// (only in the derive build, see [`seccomp::DERIVE_REPORT`]), opened by
    /// [`seccomp::open_report`] while the daemon may still open it.
    pub seccomp_report: Option<std::fs::File>,
    /// What the filter allows beyond the common part: the multipath
    /// backend's rules, and the datagram sockets the daemon may send on.
    pub seccomp_filter: seccomp::FilterPlan,
    /// `None` with `--no-landlock`.
    pub landlock: Option<LandlockPlan>,
}

/// What [`confine`] achieved, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confined {
    pub seccomp: SeccompMode,
    /// `None` with `--no-landlock`.
    pub landlock: Option<LandlockOutcome>,
}

/// A confinement step that failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("Landlock")]
    Landlock(#[from] LandlockError),
    #[error("seccomp")]
    Seccomp(#[from] SeccompError),
}

/// Applies Landlock, then seccomp (the Landlock syscalls themselves are
/// not in the allowlist).
pub fn confine(plan: SandboxPlan) -> Result<Confined, SandboxError> {
    let landlock = plan
        .landlock
        .as_ref()
        .map(self::landlock::restrict)
        .transpose()?;
    seccomp::install(plan.seccomp, &plan.seccomp_filter, plan.seccomp_report)?;
    Ok(Confined {
        seccomp: plan.seccomp,
        landlock,
    })
}
