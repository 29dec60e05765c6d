//! SIGTERM, SIGINT and SIGHUP all mean "shut down gracefully".

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Installs the handlers (inside the runtime) and spawns the task that
/// turns the first signal into a shutdown request. Later signals are only
/// logged: the grace period is enforced by the serving code.
pub fn spawn_shutdown_on_signals(shutdown: watch::Sender<bool>) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                _ = hup.recv() => "SIGHUP",
            };
            if first {
                tracing::info!(signal = name, "shutting down: finishing commands in flight");
                // No receiver left means serving already ended.
                let _ = shutdown.send(true);
                first = false;
            } else {
                tracing::info!(signal = name, "already shutting down");
            }
        }
    });
    Ok(())
}
