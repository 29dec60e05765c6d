//! The blocking client: `Send + Sync`, shared by any number of threads,
//! with a pool of connections so commands do not queue behind one mutex.

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use crate::command::{DataTransfer, Reply, prepare};
use crate::conn::Conn;
use crate::error::{ConnectError, Error, InvalidCommand, TransportError};
use crate::pool::Pool;
use crate::status::{StatusEvent, StatusHub};
use crate::watcher::{self, IdleConn, IdleSource};

/// The daemon's (and QEMU's) default socket path.
pub const DEFAULT_SOCKET: &str = "/var/run/qemu-pr-helper.sock";

/// How a [`Client`] connects and retries.
#[derive(Debug, Clone)]
pub struct Config {
    /// Helper socket path.
    pub socket_path: PathBuf,
    /// Most connections open at once (commands in flight at once).
    pub max_connections: usize,
    /// Connection attempts before a command fails (QEMU: 5).
    pub connect_attempts: u32,
    /// Pause between attempts (QEMU: 1 s).
    pub retry_interval: Duration,
    /// Read/write timeout on the socket; `None` waits forever (as QEMU).
    pub io_timeout: Option<Duration>,
    /// How often the idle watcher refreshes its set; `None`: no watcher.
    pub idle_watch_interval: Option<Duration>,
    /// Feature bits to request in the handshake (upstream defines none).
    pub requested_features: u32,
}

impl Config {
    /// Defaults for `socket_path`: QEMU's retry policy, a pool of 4.
    pub fn new(socket_path: impl Into<PathBuf>) -> Self {
        Self {
            socket_path: socket_path.into(),
            max_connections: 4,
            connect_attempts: 5,
            retry_interval: Duration::from_secs(1),
            io_timeout: None,
            idle_watch_interval: Some(Duration::from_millis(200)),
            requested_features: 0,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new(DEFAULT_SOCKET)
    }
}

/// State shared by the client handles and the idle watcher.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) pool: Pool,
    pub(crate) status: StatusHub,
}

impl IdleSource for Shared {
    fn idle(&self) -> Vec<Arc<dyn IdleConn>> {
        self.pool.idle_snapshot()
    }

    fn reap(&self, flagged: &[u64]) {
        if self
            .pool
            .reap_idle(flagged, |conn| !conn.idle_check_alive())
            > 0
        {
            report_probe(&self.config, &self.status);
        }
    }
}

/// A blocking client for one helper socket. Cheap to clone; all clones
/// share the pool and the status.
#[derive(Debug, Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl Client {
    /// A client that connects on its first command.
    pub fn new(config: Config) -> Self {
        let interval = config.idle_watch_interval;
        let shared = Arc::new(Shared {
            pool: Pool::new(config.max_connections),
            config,
            status: StatusHub::default(),
        });
        if let Some(interval) = interval {
            let weak: Weak<dyn IdleSource> = Arc::downgrade(&shared) as Weak<dyn IdleSource>;
            watcher::spawn(weak, interval);
        }
        Self { shared }
    }

    /// A client with one connection established now (as QEMU does at object
    /// creation), using the configured attempts.
    pub fn connect(config: Config) -> Result<Self, TransportError> {
        let client = Self::new(config);
        let mut lease = client.shared.pool.acquire();
        let conn = client.connect_with_retries()?;
        lease.put(conn);
        drop(lease);
        Ok(client)
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.shared.config.socket_path
    }

    /// Whether the last thing observed about the helper was a success.
    pub fn is_connected(&self) -> bool {
        self.shared.status.is_connected()
    }

    /// A receiver of connect/disconnect transitions from now on.
    pub fn subscribe(&self) -> Receiver<StatusEvent> {
        self.shared.status.subscribe()
    }

    /// Idle connections currently open in the pool.
    pub fn idle_connections(&self) -> usize {
        self.shared.pool.idle_count()
    }

    /// Sends one command (CDB of 1 to 16 bytes, the device descriptor, the
    /// data buffer) and waits for its reply.
    ///
    /// `Err` only for a command refused before sending. A link failure is a
    /// [`Reply`] with CHECK CONDITION 0B/08/00 and [`Reply::failure`] set;
    /// the next command reconnects.
    pub fn execute(
        &self,
        cdb: &[u8],
        fd: BorrowedFd<'_>,
        mut data: DataTransfer<'_>,
    ) -> Result<Reply, InvalidCommand> {
        let prepared = prepare(cdb, &data)?;
        let buffer_len = data.len();
        let request = prepared.encode(&data)?;

        let mut lease = self.shared.pool.acquire();
        let conn = match self.send(&mut lease, &request, fd) {
            Ok(conn) => conn,
            Err(failure) => return Ok(Reply::communication_failure(failure, buffer_len)),
        };
        let data_in: &mut [u8] = match &mut data {
            DataTransfer::FromDevice(b) => b,
            DataTransfer::ToDevice(_) => &mut [],
        };
        match conn.read_reply(&prepared.cdb, data_in) {
            Ok(header) => {
                self.shared.status.mark_connected();
                Ok(Reply {
                    status: header.status,
                    sense: header.sense,
                    data_len: header.data_len,
                    residual: buffer_len.saturating_sub(header.data_len),
                    failure: None,
                })
            }
            Err(failure) => {
                lease.discard();
                self.lost(&failure);
                Ok(Reply::communication_failure(failure, buffer_len))
            }
        }
    }

    /// Gets the request onto a connection: QEMU's retry loop. A stale idle
    /// connection (helper restarted) is retried at once without counting.
    fn send(
        &self,
        lease: &mut crate::pool::Lease<'_>,
        request: &[u8],
        fd: BorrowedFd<'_>,
    ) -> Result<Arc<Conn>, Error> {
        loop {
            let (conn, reused) = match lease.conn() {
                Some(conn) => (Arc::clone(conn), lease.is_reused()),
                None => (lease.put(self.connect_with_retries()?), false),
            };
            match conn.send_request(request, fd) {
                Ok(()) => return Ok(conn),
                Err(e) => {
                    lease.discard();
                    let failure = Error::Transport(TransportError::Send(e));
                    self.lost(&failure);
                    if !reused {
                        return Err(failure);
                    }
                    self.shared.pool.purge_idle();
                }
            }
        }
    }

    fn connect_with_retries(&self) -> Result<Conn, TransportError> {
        let config = &self.shared.config;
        let mut attempts = ConnectAttempts::new(config, &self.shared.status);
        loop {
            match Conn::connect(
                &config.socket_path,
                config.requested_features,
                config.io_timeout,
            ) {
                Ok(conn) => {
                    attempts.succeeded();
                    return Ok(conn);
                }
                Err(source) => {
                    attempts.failed(source)?;
                    thread::sleep(config.retry_interval);
                }
            }
        }
    }

    fn lost(&self, failure: &Error) {
        self.shared
            .status
            .mark_disconnected(|| error_chain(failure));
    }
}

/// An idle connection was closed by the helper: report the helper gone
/// unless a fresh connection shows it is still there.
pub(crate) fn report_probe(config: &Config, status: &StatusHub) {
    match crate::conn::probe(&config.socket_path, config.requested_features) {
        Ok(()) => status.mark_connected(),
        Err(e) => status.mark_disconnected(|| {
            format!(
                "the helper closed an idle connection and cannot be reached: {}",
                error_chain(&e)
            )
        }),
    }
}

/// The connection attempts of one command, counted against
/// [`Config::connect_attempts`] (the blocking and the async client share it):
/// each outcome goes to the status hub, and the last failure becomes the
/// command's error.
pub(crate) struct ConnectAttempts<'a> {
    config: &'a Config,
    status: &'a StatusHub,
    made: u32,
}

impl<'a> ConnectAttempts<'a> {
    pub(crate) fn new(config: &'a Config, status: &'a StatusHub) -> Self {
        Self {
            config,
            status,
            made: 0,
        }
    }

    /// An attempt connected.
    pub(crate) fn succeeded(&self) {
        self.status.mark_connected();
    }

    /// An attempt failed with `source`: `Ok` if another one may be made (after
    /// [`Config::retry_interval`]), the error to return once none may.
    pub(crate) fn failed(&mut self, source: ConnectError) -> Result<(), TransportError> {
        self.made = self.made.saturating_add(1);
        self.status.mark_disconnected(|| error_chain(&source));
        if self.made >= self.config.connect_attempts.max(1) {
            return Err(TransportError::Connect {
                path: self.config.socket_path.clone(),
                attempts: self.made,
                source,
            });
        }
        Ok(())
    }
}

/// An error and its sources on one line (`outer: inner: root cause`).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Client>();
    }
}
