//! The async front end (feature `async`): the same commands, retries,
//! status and idle watching as [`Client`](crate::Client), on tokio.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use rustix::net::{RecvFlags, SendFlags, Shutdown, recv, send};
use tokio::io::Interest;
use tokio::net::UnixStream;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::client::{Config, ConnectAttempts, error_chain};
use crate::command::{DataTransfer, Reply, prepare};
use crate::conn::{CHUNK, ReplyHeader, ReplyReader, idle_alive, next_id, send_with_fd};
use crate::error::{ConnectError, Error, InvalidCommand, TransportError};
use crate::status::{StatusEvent, StatusHub};
use crate::watcher::{self, IdleConn, IdleSource};

/// An async client for one helper socket. Cheap to clone; all clones share
/// the pool and the status. Create and use it inside a tokio runtime.
#[derive(Debug, Clone)]
pub struct AsyncClient {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: Config,
    status: StatusHub,
    idle: Mutex<Vec<Arc<AsyncConn>>>,
    slots: Semaphore,
}

#[derive(Debug)]
struct AsyncConn {
    id: u64,
    stream: UnixStream,
}

impl AsyncClient {
    /// A client that connects on its first command.
    pub fn new(config: Config) -> Self {
        let interval = config.idle_watch_interval;
        let shared = Arc::new(Shared {
            slots: Semaphore::new(config.max_connections.max(1)),
            config,
            status: StatusHub::default(),
            idle: Mutex::new(Vec::new()),
        });
        if let Some(interval) = interval {
            let weak: Weak<dyn IdleSource> = Arc::downgrade(&shared) as Weak<dyn IdleSource>;
            watcher::spawn(weak, interval);
        }
        Self { shared }
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

    /// Sends one command and waits for its reply; see
    /// [`Client::execute`](crate::Client::execute). Dropping the future
    /// mid-command closes that connection (its stream is out of step).
    pub async fn execute(
        &self,
        cdb: &[u8],
        fd: BorrowedFd<'_>,
        mut data: DataTransfer<'_>,
    ) -> Result<Reply, InvalidCommand> {
        let prepared = prepare(cdb, &data)?;
        let buffer_len = data.len();
        let request = prepared.encode(&data)?;

        let Ok(permit) = self.shared.slots.acquire().await else {
            // The semaphore is never closed; answer like a lost link anyway.
            let failure = TransportError::Send(io::ErrorKind::NotConnected.into());
            return Ok(Reply::communication_failure(failure.into(), buffer_len));
        };
        let mut lease = Lease {
            shared: &self.shared,
            _permit: permit,
            conn: self.shared.lock_idle().pop(),
            clean: false,
        };
        let conn = match self.send(&mut lease, &request, fd).await {
            Ok(conn) => conn,
            Err(failure) => return Ok(Reply::communication_failure(failure, buffer_len)),
        };
        let data_in: &mut [u8] = match &mut data {
            DataTransfer::FromDevice(b) => b,
            DataTransfer::ToDevice(_) => &mut [],
        };
        match conn.read_reply(&prepared.cdb, data_in).await {
            Ok(header) => {
                lease.clean = true;
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
                self.shared
                    .status
                    .mark_disconnected(|| error_chain(&failure));
                Ok(Reply::communication_failure(failure, buffer_len))
            }
        }
    }

    async fn send(
        &self,
        lease: &mut Lease<'_>,
        request: &[u8],
        fd: BorrowedFd<'_>,
    ) -> Result<Arc<AsyncConn>, Error> {
        loop {
            let (conn, reused) = match lease.conn.clone() {
                Some(conn) => (conn, true),
                None => {
                    let conn = Arc::new(self.connect_with_retries().await?);
                    lease.conn = Some(Arc::clone(&conn));
                    (conn, false)
                }
            };
            match conn.write_all(request, Some(fd)).await {
                Ok(()) => return Ok(conn),
                Err(e) => {
                    lease.discard();
                    let failure = Error::Transport(TransportError::Send(e));
                    self.shared
                        .status
                        .mark_disconnected(|| error_chain(&failure));
                    if !reused {
                        return Err(failure);
                    }
                    // The other idle connections went stale with this one.
                    for stale in std::mem::take(&mut *self.shared.lock_idle()) {
                        stale.shut_down();
                    }
                }
            }
        }
    }

    async fn connect_with_retries(&self) -> Result<AsyncConn, TransportError> {
        let config = &self.shared.config;
        let mut attempts = ConnectAttempts::new(config, &self.shared.status);
        loop {
            match AsyncConn::connect(&config.socket_path, config.requested_features).await {
                Ok(conn) => {
                    attempts.succeeded();
                    return Ok(conn);
                }
                Err(source) => {
                    attempts.failed(source)?;
                    tokio::time::sleep(config.retry_interval).await;
                }
            }
        }
    }
}

impl Shared {
    fn lock_idle(&self) -> MutexGuard<'_, Vec<Arc<AsyncConn>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl IdleSource for Shared {
    fn idle(&self) -> Vec<Arc<dyn IdleConn>> {
        self.lock_idle()
            .iter()
            .map(|conn| Arc::clone(conn) as Arc<dyn IdleConn>)
            .collect()
    }

    fn reap(&self, flagged: &[u64]) {
        let mut idle = self.lock_idle();
        let before = idle.len();
        idle.retain(|conn| {
            let dead = flagged.contains(&conn.id) && !idle_alive(conn.stream.as_fd());
            if dead {
                conn.shut_down();
            }
            !dead
        });
        let reaped = before != idle.len();
        drop(idle);
        if reaped {
            crate::client::report_probe(&self.config, &self.status);
        }
    }
}

/// One pool slot for one command; the connection goes back to the idle set
/// only if the command completed (a cancelled one leaves it out of step).
struct Lease<'s> {
    shared: &'s Shared,
    _permit: SemaphorePermit<'s>,
    conn: Option<Arc<AsyncConn>>,
    clean: bool,
}

impl Lease<'_> {
    fn discard(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.shut_down();
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if !self.clean {
            self.discard();
        }
        if let Some(conn) = self.conn.take() {
            self.shared.lock_idle().push(conn);
        }
    }
}

impl AsyncConn {
    async fn connect(path: &Path, requested_features: u32) -> Result<Self, ConnectError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(ConnectError::Socket)?;
        let conn = Self {
            id: next_id(),
            stream,
        };
        let mut greeting = [0u8; pr_protocol::HANDSHAKE_SIZE];
        let mut filled = 0usize;
        while let Some(rest) = greeting.get_mut(filled..).filter(|r| !r.is_empty()) {
            match conn.recv_some(rest).await {
                Ok(0) => {
                    return Err(ConnectError::ReadFeatures(
                        io::ErrorKind::UnexpectedEof.into(),
                    ));
                }
                Ok(n) => filled = filled.saturating_add(n),
                Err(e) => return Err(ConnectError::ReadFeatures(e)),
            }
        }
        let negotiation = pr_protocol::client_handshake(greeting, requested_features);
        conn.write_all(&negotiation.reply, None)
            .await
            .map_err(ConnectError::WriteFeatures)?;
        Ok(conn)
    }

    async fn read_reply(
        &self,
        cdb: &[u8; pr_protocol::CDB_SIZE],
        data_in: &mut [u8],
    ) -> Result<ReplyHeader, Error> {
        let mut reader = ReplyReader::new(cdb);
        let mut chunk = Box::new([0u8; CHUNK]);
        loop {
            let buf = reader.next_buffer(&mut chunk);
            let n = self.recv_some(buf).await.map_err(TransportError::Receive)?;
            if let Some(header) = reader.received(&chunk, n, data_in)? {
                return Ok(header);
            }
        }
    }

    async fn recv_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream
            .async_io(Interest::READABLE, || {
                recv(&self.stream, &mut *buf, RecvFlags::DONTWAIT)
                    .map(|(n, _)| n)
                    .map_err(io::Error::from)
            })
            .await
    }

    async fn write_all(&self, bytes: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
        let mut sent = 0usize;
        let mut fd = fd;
        while let Some(rest) = bytes.get(sent..).filter(|r| !r.is_empty()) {
            let n = self
                .stream
                .async_io(Interest::WRITABLE, || {
                    let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
                    match fd {
                        Some(fd) => send_with_fd(&self.stream, rest, fd),
                        None => send(&self.stream, rest, flags),
                    }
                    .map_err(io::Error::from)
                })
                .await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            sent = sent.saturating_add(n);
            // The descriptor went with the first chunk.
            fd = None;
        }
        Ok(())
    }

    fn shut_down(&self) {
        // Failure means it is already shut or closed.
        let _ = rustix::net::shutdown(&self.stream, Shutdown::Both);
    }
}

impl AsFd for AsyncConn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl IdleConn for AsyncConn {
    fn id(&self) -> u64 {
        self.id
    }
}
