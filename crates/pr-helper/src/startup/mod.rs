//! Start-up sequence: from a validated [`Config`] to a serving daemon, and
//! the orderly exit.
//!
//! [`run`] is one linear sequence; each step is a small module:
//! 0. termination signals are held pending until their handlers exist;
//! 1. [`activation`]: read (and clear) systemd's variables while we are
//!    still single-threaded;
//! 2. descriptor hygiene: close everything inherited above stderr, except
//!    the activation socket, and put /dev/null on closed standard streams;
//! 3. [`ids`]: resolve user and group names;
//! 4. [`pidfile`]: take the pid file lock (before touching the socket, so a
//!    second instance changes nothing);
//! 5. [`listener`]: the activation socket, or bind our own;
//! 6. [`daemonize`] with `-d`; from here errors reach the waiting parent;
//! 7. [`logging`]; 8. our pid into the pid file;
//! 9. [`janitor`]: fork the process that removes socket and pid file at exit (it
//!    confines itself with its own seccomp filter and Landlock ruleset);
//! 10. the backends (state directory opened as root), then [`privileges`]:
//!     keep CAP_SYS_RAWIO only, switch uid/gid;
//! 11. the sandbox ([`crate::sandbox`]: Landlock, then the seccomp
//!     filter), still single-threaded; [`signals`], readiness ([`notify`],
//!     the `-d` parent), then serve (the serving threads inherit the reduced
//!     privileges and both filters);
//! 12. on shutdown: wait for the janitor so the files are gone at exit.

pub mod activation;
pub mod daemonize;
pub mod ids;
pub mod janitor;
pub mod limits;
pub mod listener;
pub mod logging;
pub mod notify;
pub mod pidfile;
pub mod privileges;
mod signalmask;
pub mod signals;
mod sys;

use std::os::unix::net::UnixListener;

use crate::backend::{BackendError, Backends};
use crate::config::Config;
use crate::serve::{self, ServeError, ServeSettings};

use activation::{ActivationError, Environment};
use daemonize::{DaemonizeError, Readiness};
use ids::IdError;
use janitor::{FileIdentity, Janitor, JanitorConfinement, JanitorError};
use listener::ListenerError;
use logging::LoggingError;
use pidfile::{PidFile, PidFileError};
use privileges::PrivilegeError;

/// The step of start-up (or the serving) that failed.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("systemd socket activation")]
    Activation(#[from] ActivationError),
    #[error("cannot close inherited descriptors or reopen closed standard streams")]
    CloseDescriptors(#[source] std::io::Error),
    #[error("resolving users and groups")]
    Ids(#[from] IdError),
    #[error("pid file")]
    PidFile(#[from] PidFileError),
    #[error("listening socket")]
    Listener(#[from] ListenerError),
    #[error("cannot identify the socket file {path} we just bound")]
    SocketIdentity {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot identify the pid file")]
    PidFileIdentity(#[source] std::io::Error),
    #[error("detaching (-d)")]
    Daemonize(#[from] DaemonizeError),
    #[error("logging")]
    Logging(#[from] LoggingError),
    #[error("starting the janitor process")]
    Janitor(#[from] JanitorError),
    #[error("preparing the backends")]
    Backends(#[from] BackendError),
    #[error("dropping privileges")]
    Privileges(#[from] PrivilegeError),
    #[error("confining the daemon")]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error("cannot install the signal handlers")]
    Signals(#[source] std::io::Error),
    #[error("serving")]
    Serve(#[from] ServeError),
}

/// Runs the daemon until it is told to stop. `Ok` means an orderly exit.
pub fn run(config: Config) -> Result<(), StartupError> {
    run_with(config, std::convert::identity)
}

/// [`run`], with `adjust` applied to the backends before serving: test harnesses
/// (`src/bin/pr-helper-slow.rs`) inject slow backends this way, so the binary that ships
/// carries no test code.
pub fn run_with(config: Config, adjust: fn(Backends) -> Backends) -> Result<(), StartupError> {
    // 0. Stop requests wait until the handlers exist (see `signals`).
    signalmask::block_termination_signals(true).map_err(StartupError::Signals)?;

    // 1. systemd's variables, read and removed while single-threaded.
    let env = Environment::take(std::process::id())?;
    if env.activated && config.socket_given {
        return Err(ActivationError::SocketOptionWithActivation.into());
    }

    // 2. Descriptors inherited from whoever started us are not ours to
    // keep open (qemu-pr-helper keeps them); fd 3 is systemd's socket.
    let first_to_close = if env.activated {
        activation::LISTEN_FDS_START + 1
    } else {
        activation::LISTEN_FDS_START
    };
    sys::close_from(first_to_close.unsigned_abs()).map_err(StartupError::CloseDescriptors)?;
    // A closed standard stream would be reused by the next open (the
    // socket, say) and later clobbered by `-d` or written to by a log line.
    fill_standard_streams().map_err(StartupError::CloseDescriptors)?;

    // 3. Names to numbers, now, so a typo fails before anything changes.
    let switch = ids::resolve_switch(config.user.as_ref(), config.group.as_ref())?;
    let socket_gid = config
        .socket_group
        .as_ref()
        .map(|g| ids::resolve_group("--socket-group", g))
        .transpose()?;
    let settings = serve_settings(&config)?;
    // Trace files are read and the log file opened now, for the same reason.
    let log_setup = logging::prepare(&config)?;

    // Steps 4 to 12. Whatever fails after we created the pid file or the
    // socket removes them again, and a detached child hands its error to
    // the waiting parent.
    let mut leftovers = Vec::new();
    let mut readiness = None;
    let prepared = Prepared {
        switch,
        socket_gid,
        settings,
        log_setup,
        adjust,
    };
    let result = start_and_serve(&config, &env, prepared, &mut leftovers, &mut readiness);
    if let Err(error) = &result {
        // Once the janitor ran this is already done; removing twice is harmless.
        for file in &leftovers {
            let _ = file.remove_if_ours();
        }
        if let Some(readiness) = readiness.as_mut() {
            readiness.fail(&error_chain(error));
        }
    }
    result
}

/// What steps 1 to 3 worked out.
struct Prepared {
    switch: Option<ids::SwitchTo>,
    socket_gid: Option<u32>,
    settings: ServeSettings,
    log_setup: logging::LogSetup,
    adjust: fn(Backends) -> Backends,
}

fn start_and_serve(
    config: &Config,
    env: &Environment,
    prepared: Prepared,
    leftovers: &mut Vec<FileIdentity>,
    readiness: &mut Option<Readiness>,
) -> Result<(), StartupError> {
    let Prepared {
        switch,
        socket_gid,
        settings,
        log_setup,
        adjust,
    } = prepared;

    // 4. The pid file lock: a second instance stops here (and, not holding
    // the lock, removes nothing).
    let mut pidfile = config.pidfile.as_deref().map(PidFile::lock).transpose()?;
    if let Some(pidfile) = &pidfile {
        leftovers.push(pidfile.identity().map_err(StartupError::PidFileIdentity)?);
    }

    // 5. The listening socket (the one systemd passed is systemd's to remove).
    let (listener, removed_stale) = if env.activated {
        (activation::take_listener()?, false)
    } else {
        let bound = listener::bind_socket(&config.socket, config.socket_mode, socket_gid)?;
        let identity = FileIdentity::of_path(&config.socket).map_err(|source| {
            StartupError::SocketIdentity {
                path: config.socket.clone(),
                source,
            }
        })?;
        leftovers.push(identity);
        (bound.listener, bound.removed_stale)
    };

    // 6. Detach. The parent waits in `detach` for our report and exits.
    if config.daemon {
        *readiness = Some(daemonize::detach()?);
    }

    // 7. Logging (to the journal or syslog when detached).
    log_setup.install(config.daemon)?;
    if env.activated && (config.socket_mode.is_some() || config.socket_group.is_some()) {
        tracing::warn!(
            "--socket-mode and --socket-group do not apply to a socket passed by systemd: \
             use SocketMode= and SocketGroup= in the .socket unit"
        );
    }
    if removed_stale {
        tracing::info!(path = %config.socket.display(), "removed a stale socket left by a previous run");
    }

    // 8. Our pid (the daemon's, after a -d fork).
    if let Some(pidfile) = pidfile.as_mut() {
        pidfile.write_pid(std::process::id())?;
    }

    // 9. The janitor, forked while we may still unlink anything.
    let janitor = if leftovers.is_empty() {
        None
    } else {
        Some(Janitor::spawn(
            leftovers.clone(),
            janitor_confinement(config)?,
        )?)
    };

    let served = serve_with_reduced_privileges(
        config,
        env,
        listener,
        (switch, adjust),
        settings,
        readiness.as_mut(),
    );

    // 12. Files removed before our exit status is visible.
    if let Some(janitor) = janitor {
        match janitor.finish() {
            Ok(0) => {}
            Ok(code) => tracing::warn!(code, "could not remove the socket or pid file"),
            Err(error) => tracing::warn!(error = %error, "lost track of the janitor process"),
        }
    }
    drop(pidfile);
    let summary = served?;
    tracing::info!(?summary, "stopped");
    Ok(())
}

/// Steps 10 and 11: privileges, runtime, signals, readiness, serving.
fn serve_with_reduced_privileges(
    config: &Config,
    env: &Environment,
    listener: UnixListener,
    (switch, adjust): (Option<ids::SwitchTo>, fn(Backends) -> Backends),
    settings: ServeSettings,
    readiness: Option<&mut Readiness>,
) -> Result<serve::ServeSummary, StartupError> {
    // 10. Backends (the emulated target's state directory is opened and
    // locked while we are still root, and before readiness is reported),
    // then privileges.
    let backends = adjust(Backends::new(&config.backends)?);
    // The readiness socket is created now: no socket is created once confined.
    let notifier = env.notify_socket.as_deref().map(notify::Notifier::open);
    let sandbox = sandbox_plan(config, env, backends.multipath_active())?;
    let dropped = privileges::drop_privileges(switch, backends.multipath_active())?;
    if !dropped.has_rawio {
        tracing::warn!(
            "CAP_SYS_RAWIO is not available: PERSISTENT RESERVE commands on SCSI devices will fail; run as root"
        );
    }
    if !dropped.bounding_cleared && bounding_set_exceeds_permitted() {
        tracing::warn!("not privileged: the capability bounding set is left as inherited");
    }

    // 11. Sandbox, signals, readiness, serving.
    match limits::raise_descriptor_limit() {
        Ok(limit) => tracing::debug!(soft = ?limit.soft, hard = ?limit.hard, "descriptor limit"),
        Err(error) => tracing::warn!(error = %error, "cannot raise the descriptor limit"),
    }
    let shutdown = std::sync::Arc::new(serve::Shutdown::new().map_err(StartupError::Signals)?);
    signals::stop_on_signals(&shutdown).map_err(StartupError::Signals)?;
    // Confined before any thread exists: Landlock and the filter then cover all.
    confine(sandbox)?;
    // Handlers are in place: let stop requests in (one that came early is
    // delivered now and starts the shutdown at once).
    signalmask::block_termination_signals(false).map_err(StartupError::Signals)?;
    if let Some(Err(error)) = notifier.map(|notifier| notifier.and_then(|n| n.ready())) {
        tracing::warn!(error = %error, "cannot notify systemd of readiness");
    }
    if let Some(readiness) = readiness {
        readiness.ready();
    }
    tracing::info!(
        socket = %if env.activated { "(systemd)".into() } else { config.socket.display().to_string() },
        pid = std::process::id(),
        "serving"
    );
    let served = serve::serve(listener, &settings, std::sync::Arc::new(backends), shutdown)?;
    Ok(served)
}

/// How the janitor confines itself: `--seccomp` and `--no-landlock`, as for the
/// daemon. Its filter is compiled here, so that a policy error stops the start-up
/// instead of the janitor.
fn janitor_confinement(config: &Config) -> Result<JanitorConfinement, StartupError> {
    use crate::sandbox::{SandboxError, seccomp};
    Ok(JanitorConfinement {
        seccomp: seccomp::compile_janitor(config.seccomp).map_err(SandboxError::from)?,
        landlock: config.landlock,
    })
}

/// What to confine; opens the derive build's report file while still root.
/// `multipath`: the multipath backend is active. It opens device nodes itself
/// after start-up (path nodes, /dev/mapper/control), so Landlock lets the daemon
/// read under /dev and write /dev/mapper/control, and it raises permitted-only
/// capabilities and asks device-mapper for tables, so the seccomp policy adds
/// capset and DM_TABLE_STATUS. Every datagram socket open now (the loggers',
/// the readiness one) is one the filter lets the daemon send on.
fn sandbox_plan(
    config: &Config,
    env: &Environment,
    multipath: bool,
) -> Result<crate::sandbox::SandboxPlan, StartupError> {
    use crate::sandbox::{
        FilterPlan, LandlockPlan, SandboxError, SandboxPlan, SeccompMode, seccomp,
    };
    let abstract_notify = env
        .notify_socket
        .as_ref()
        .is_some_and(|socket| socket.as_encoded_bytes().starts_with(b"@"));
    let seccomp_report = match (config.seccomp, seccomp::DERIVE_REPORT) {
        (SeccompMode::Trap, Some(path)) => {
            seccomp::open_report(Some(std::path::Path::new(path))).map_err(SandboxError::from)?
        }
        _ => None,
    };
    let datagram_sockets = match config.seccomp {
        SeccompMode::None => Vec::new(),
        _ => seccomp::datagram_sockets().map_err(SandboxError::from)?,
    };
    Ok(SandboxPlan {
        seccomp: config.seccomp,
        seccomp_report,
        seccomp_filter: FilterPlan {
            multipath,
            datagram_sockets,
        },
        landlock: config.landlock.then(|| {
            LandlockPlan::for_daemon(
                config.backends.emulated_state_dir.as_deref(),
                multipath,
                abstract_notify,
            )
        }),
    })
}

/// Landlock, then seccomp, while the process is still single-threaded.
fn confine(plan: crate::sandbox::SandboxPlan) -> Result<(), StartupError> {
    use crate::sandbox::{self, LandlockOutcome, SeccompMode};
    let confined = sandbox::confine(plan)?;
    match confined.landlock {
        Some(LandlockOutcome::NotSupported) => tracing::warn!(
            "this kernel has no Landlock: filesystem access is not restricted beyond the \
             privilege drop and seccomp (pass --no-landlock to silence this)"
        ),
        Some(outcome) => tracing::debug!(?outcome, "Landlock"),
        None => tracing::debug!("Landlock off (--no-landlock)"),
    }
    match confined.seccomp {
        SeccompMode::Kill => tracing::debug!(seccomp = confined.seccomp.name(), "seccomp"),
        SeccompMode::None => tracing::warn!(
            seccomp = confined.seccomp.name(),
            "no seccomp filter (--seccomp=none): every syscall is allowed"
        ),
        mode => tracing::warn!(
            seccomp = mode.name(),
            "the seccomp filter does not kill: a syscall outside the allowlist {} \
             (--seccomp={}; the default is kill)",
            match mode {
                SeccompMode::Log => "runs and is logged by the kernel",
                _ => "fails with ENOSYS and is reported",
            },
            mode.name()
        ),
    }
    Ok(())
}

/// Whether the bounding set (which we could not empty: no CAP_SETPCAP) still holds a
/// capability we do not keep. Under a unit whose CapabilityBoundingSet= is already
/// what we keep there is nothing to warn about.
fn bounding_set_exceeds_permitted() -> bool {
    let permitted = rustix::thread::capabilities(None).map_or(0, |sets| sets.permitted.bits());
    let bounding = std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("CapBnd:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        });
    bounding.is_none_or(|bounding| bounding & !permitted != 0)
}

/// Opens /dev/null on any of descriptors 0-2 that is closed. `open`
/// returns the lowest free descriptor, so each open either fills a gap
/// (kept) or lands above 2 (closed again, and we are done).
fn fill_standard_streams() -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, IntoRawFd};
    loop {
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        if null.as_raw_fd() > 2 {
            return Ok(());
        }
        // Deliberately left open for good: it is now a standard stream.
        let _ = null.into_raw_fd();
    }
}

/// The serving settings with the allowlists resolved.
fn serve_settings(config: &Config) -> Result<ServeSettings, IdError> {
    let mut settings = config.serve.clone();
    if !config.allow_uids.is_empty() {
        let uids = config
            .allow_uids
            .iter()
            .map(|u| ids::resolve_uid("--allow-uid", u));
        settings.allowed_uids = Some(uids.collect::<Result<_, _>>()?);
    }
    if !config.allow_gids.is_empty() {
        let gids = config
            .allow_gids
            .iter()
            .map(|g| ids::resolve_group("--allow-gid", g));
        settings.allowed_gids = Some(gids.collect::<Result<_, _>>()?);
    }
    Ok(settings)
}

/// An error and its causes on one line: "step: cause: cause".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // Some errors already print their source in their own message.
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle: inner")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn error_chain_is_one_line_without_repeats() {
        let error = Outer(Middle(std::io::Error::other("inner")));
        assert_eq!(error_chain(&error), "outer: middle: inner");
    }
}
