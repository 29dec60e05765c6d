//! The hub: one epoll set shared by the serving threads, holding the listening socket
//! and every connection that is set aside (idle, or waiting on a slow peer).
//!
//! Threads take turns waiting on the set (leader/followers): the thread that an event
//! wakes handles it itself. A new connection is admitted, sent its greeting and set
//! aside; a connection that becomes readable is served by the thread that saw it, with
//! plain blocking calls (`connection.rs`), until it has been idle for a while; then it
//! goes back into the set. No request is handed between threads. Before a thread starts
//! serving, it makes sure another one is left waiting (up to the thread cap), so a
//! busy or hung connection never holds up the others; spare threads beyond two exit.
//!
//! Every registration is one-shot: an event goes to exactly one thread. The thread
//! that takes a connection removes it from the set, and it is added again only when
//! it is set aside (a disarmed registration would still run the set's callback on
//! every request its peer sends).

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{EventfdFlags, Timespec, eventfd};
use rustix::net::{Shutdown as How, SocketFlags};

use super::accept::{AcceptFailure, FIRST_BACKOFF, MAX_BACKOFF, RefusalLog, classify_accept_error};
use super::connection::{Connection, Drive, Interest, Left};
use super::log;
use super::peer::{Allowlist, credentials};
use super::session::{Limits, Session};
use super::settings::{ServeError, ServeSettings, ServeSummary};

/// Event tokens below this are not connections.
const LISTENER: u64 = 0;
const STOPPED: u64 = 1;
const REARM: u64 = 2;
const FIRST_CONNECTION: u64 = 3;

/// Spare threads kept waiting; a thread that finds this many others waiting exits.
const SPARE_THREADS: usize = 2;

/// Stack of a serving thread: the request path is shallow.
const THREAD_STACK: usize = 256 * 1024;

/// What the threads share.
pub(super) struct Hub {
    epoll: OwnedFd,
    /// `None` once shutdown began (closed at once, so new peers are refused).
    listener: RwLock<Option<UnixListener>>,
    /// Readable once every thread should exit (never read, so it stays readable).
    stopped: OwnedFd,
    finished: AtomicBool,
    /// Written when a deadline earlier than any other appears, so that a waiting
    /// thread wakes and waits again with the right timeout.
    rearm: OwnedFd,
    drive: Drive,
    limits: Limits,
    allowlist: Allowlist,
    max_connections: usize,
    max_threads: usize,
    state: Mutex<State>,
    /// Signalled whenever a connection closes (the shutdown waits on it).
    closed: Condvar,
    refusals: Mutex<RefusalLog>,
    accepted: AtomicU64,
    over_cap: AtomicU64,
    refused: AtomicU64,
    next_id: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Connections set aside, by id (boxed: the map's spare capacity then costs a
    /// pointer per slot, not a whole connection).
    parked: HashMap<u64, Box<Connection>>,
    /// Deadlines of parked connections (handshake, a half-read request, an unread
    /// reply).
    deadlines: BTreeSet<(Instant, u64)>,
    /// Every open connection's socket, to shut them at shutdown.
    live: HashMap<u64, Arc<UnixStream>>,
    threads: usize,
    waiting: usize,
    stopping: bool,
}

impl Hub {
    pub(super) fn new(
        listener: UnixListener,
        settings: &ServeSettings,
        drive: Drive,
    ) -> Result<Self, ServeError> {
        let setup = |error: io::Error| ServeError::Setup(error);
        listener.set_nonblocking(true).map_err(setup)?;
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| setup(e.into()))?;
        let stopped = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| setup(e.into()))?;
        epoll::add(
            &epoll,
            &listener,
            EventData::new_u64(LISTENER),
            EventFlags::IN | EventFlags::ONESHOT,
        )
        .map_err(|e| setup(e.into()))?;
        epoll::add(
            &epoll,
            &stopped,
            EventData::new_u64(STOPPED),
            EventFlags::IN,
        )
        .map_err(|e| setup(e.into()))?;
        let rearm = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| setup(e.into()))?;
        epoll::add(
            &epoll,
            &rearm,
            EventData::new_u64(REARM),
            EventFlags::IN | EventFlags::ET,
        )
        .map_err(|e| setup(e.into()))?;
        Ok(Self {
            epoll,
            listener: RwLock::new(Some(listener)),
            stopped,
            finished: AtomicBool::new(false),
            rearm,
            drive,
            limits: Limits {
                handshake: settings.handshake_timeout,
                request: settings.request_timeout,
            },
            allowlist: Allowlist::new(settings.allowed_uids.clone(), settings.allowed_gids.clone()),
            max_connections: settings.max_connections,
            max_threads: settings.blocking_threads.max(1),
            state: Mutex::new(State::default()),
            closed: Condvar::new(),
            refusals: Mutex::new(RefusalLog::default()),
            accepted: AtomicU64::new(0),
            over_cap: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent maps behind: go on.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the first serving thread.
    pub(super) fn start(self: &Arc<Self>) -> Result<(), ServeError> {
        self.state().threads = 1;
        spawn_thread(self).map_err(ServeError::Setup)
    }

    /// The shutdown, once it was asked for: close the listener, shut the reading side
    /// of every connection (the peer can add nothing; what is waiting is answered),
    /// wait up to `grace` for them to close, then cut the rest off.
    pub(super) fn stop(&self, grace: Duration) -> ServeSummary {
        if let Some(listener) = self
            .listener
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = epoll::delete(&self.epoll, &listener);
        }
        let mut state = self.state();
        state.stopping = true;
        for stream in state.live.values() {
            let _ = rustix::net::shutdown(&**stream, How::Read);
        }
        if !state.live.is_empty() {
            tracing::info!(connections = state.live.len(), grace = ?grace, "draining connections");
        }
        let until = Instant::now() + grace;
        while !state.live.is_empty() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .closed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let forced = state.live.len();
        if forced > 0 {
            tracing::warn!(
                connections = forced,
                "grace period over: closing the remaining connections"
            );
            for stream in state.live.values() {
                let _ = rustix::net::shutdown(&**stream, How::Both);
            }
        }
        // Dropped after the lock is released: a connection may hold a descriptor,
        // and nothing that closes one runs under the hub's lock.
        let parked = std::mem::take(&mut state.parked);
        drop(state);
        drop(parked);
        // Every thread waiting on the set wakes and exits; busy ones on their next turn.
        self.finished.store(true, Ordering::Release);
        let _ = rustix::io::write(&self.stopped, &1u64.to_ne_bytes());
        ServeSummary {
            connections_accepted: self.accepted.load(Ordering::Relaxed),
            connections_over_cap: self.over_cap.load(Ordering::Relaxed),
            connections_refused: self.refused.load(Ordering::Relaxed),
            commands: self.drive.commands.load(Ordering::Relaxed),
            forced_connections: u64::try_from(forced).unwrap_or(u64::MAX),
        }
    }

    /// One serving thread: wait on the set, handle what woke it, until told to stop.
    fn serve_thread(self: &Arc<Self>) {
        let mut events = Vec::with_capacity(1);
        loop {
            let timeout = {
                let mut state = self.state();
                state.waiting += 1;
                state.deadlines.first().map(|&(deadline, _)| deadline)
            };
            let timeout = timeout
                .map(|deadline| timespec(deadline.saturating_duration_since(Instant::now())));
            events.clear();
            let waited = epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                timeout.as_ref(),
            );
            let expired = {
                let mut state = self.state();
                state.waiting = state.waiting.saturating_sub(1);
                state.take_expired(Instant::now())
            };
            for connection in expired {
                self.close_expired(connection);
            }
            match waited {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(error) => {
                    tracing::error!(error = %error, "waiting for connections failed");
                    std::thread::sleep(FIRST_BACKOFF);
                }
            }
            for event in events.drain(..) {
                match event.data.u64() {
                    LISTENER => self.accept_all(),
                    STOPPED => {}
                    REARM => {
                        let mut count = [0u8; 8];
                        let _ = rustix::io::read(&self.rearm, &mut count);
                    }
                    token => self.serve_parked(token - FIRST_CONNECTION),
                }
            }
            let mut state = self.state();
            let stop = state.stopping && state.live.is_empty() || self.is_stopped();
            if stop || state.waiting >= SPARE_THREADS {
                state.threads = state.threads.saturating_sub(1);
                return;
            }
        }
    }

    fn is_stopped(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Accepts every waiting connection, then re-arms the listener.
    fn accept_all(self: &Arc<Self>) {
        let mut backoff: Option<Duration> = None;
        loop {
            let listener = self.listener.read().unwrap_or_else(PoisonError::into_inner);
            let Some(listening) = listener.as_ref() else {
                return;
            };
            match rustix::net::accept_with(listening, SocketFlags::CLOEXEC) {
                Ok(fd) => {
                    drop(listener);
                    if backoff.take().is_some() {
                        tracing::info!("accepting connections again");
                    }
                    self.admit(UnixStream::from(fd));
                }
                Err(error) => {
                    let error = io::Error::from(error);
                    match classify_accept_error(&error) {
                        AcceptFailure::Transient if error.kind() == io::ErrorKind::WouldBlock => {
                            let _ = epoll::modify(
                                &self.epoll,
                                listening,
                                EventData::new_u64(LISTENER),
                                EventFlags::IN | EventFlags::ONESHOT,
                            );
                            return;
                        }
                        AcceptFailure::Transient => {}
                        AcceptFailure::Fatal => {
                            tracing::error!(error = %error, "accepting connections failed; stopping");
                            drop(listener);
                            self.drive.shutdown.trigger();
                            return;
                        }
                        AcceptFailure::Exhausted => {
                            drop(listener);
                            let pause = match backoff {
                                None => {
                                    // One line per episode, not one per attempt.
                                    tracing::warn!(
                                        error = %error,
                                        "cannot accept connections (out of descriptors or memory); \
                                         retrying with back-off until some close"
                                    );
                                    FIRST_BACKOFF
                                }
                                Some(previous) => (previous * 2).min(MAX_BACKOFF),
                            };
                            backoff = Some(pause);
                            self.ensure_spare();
                            std::thread::sleep(pause);
                            if self.drive.shutdown.is_triggered() {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Decides whether `stream` is served; if so, greets it and sets it aside.
    fn admit(self: &Arc<Self>, stream: UnixStream) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let peer = match credentials(&stream) {
            Ok(peer) => peer,
            Err(error) => {
                if let Some(suppressed) = self.refusals().no_credentials.line_at(now) {
                    tracing::warn!(conn = id, error = %error, suppressed, "connection closed: cannot read peer credentials");
                }
                return;
            }
        };
        if !self.allowlist.admits(&peer) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = self.refusals().not_allowed.line_at(now) {
                refusal_line(id, &peer, suppressed, "peer not in the uid/gid allowlist");
            }
            return;
        }
        if self.state().live.len() >= self.max_connections {
            self.over_cap.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = self.refusals().over_cap.line_at(now) {
                refusal_line(id, &peer, suppressed, "connection limit reached");
            }
            return;
        }
        let session = Session::new(id, peer, self.limits, now);
        let connection = match Connection::new(session, stream, self.drive.idle) {
            Ok(connection) => connection,
            Err(error) => {
                tracing::warn!(conn = id, peer_pid = peer.pid, peer_uid = peer.uid, peer_gid = peer.gid, error = %error, "connection closed: cannot set its socket up");
                return;
            }
        };
        tracing::info!(
            conn = id,
            peer_pid = peer.pid,
            peer_uid = peer.uid,
            peer_gid = peer.gid,
            "connection opened"
        );
        {
            let mut state = self.state();
            // Accepted just before the listener closed: shut like the others were.
            if state.stopping {
                let _ = rustix::net::shutdown(&*connection.stream, How::Read);
            }
            state.live.insert(id, Arc::clone(&connection.stream));
        }
        self.left(connection.greet());
    }

    /// Serves the parked connection `id`, which is readable, on this thread.
    fn serve_parked(self: &Arc<Self>, id: u64) {
        let connection = {
            let mut state = self.state();
            let Some(connection) = state.parked.remove(&id) else {
                return;
            };
            if let Some(deadline) = connection.session.deadline() {
                state.deadlines.remove(&(deadline, id));
            }
            *connection
        };
        // Out of the set while a thread serves it: a registered socket, even
        // disarmed, has the set's callback on its wait queue, and every request
        // the peer sends would run it (under the set's lock, shared by all
        // connections) besides waking the serving thread.
        let _ = epoll::delete(&self.epoll, &*connection.stream);
        self.ensure_spare();
        self.left(connection.run(&self.drive));
    }

    /// Sets the connection aside, or closes it.
    fn left(&self, left: Left) {
        match left {
            Left::Waiting(connection, interest) => self.park(connection, interest),
            Left::Closed(connection, reason) => {
                log::closed(
                    connection.session.id(),
                    connection.session.peer(),
                    &reason,
                    reason.is_peer_fault(),
                );
                self.forget(connection);
            }
        }
    }

    fn park(&self, connection: Connection, interest: Interest) {
        let id = connection.session.id();
        let stream = Arc::clone(&connection.stream);
        {
            let mut state = self.state();
            if let Some(deadline) = connection.session.deadline() {
                let earliest = state
                    .deadlines
                    .first()
                    .is_none_or(|&(first, _)| deadline < first);
                state.deadlines.insert((deadline, id));
                if earliest {
                    let _ = rustix::io::write(&self.rearm, &1u64.to_ne_bytes());
                }
            }
            state.parked.insert(id, Box::new(connection));
        }
        let data = EventData::new_u64(id + FIRST_CONNECTION);
        let flags = match interest {
            Interest::Readable => EventFlags::IN | EventFlags::RDHUP | EventFlags::ONESHOT,
            Interest::Writable => EventFlags::OUT | EventFlags::ONESHOT,
        };
        // Served connections are not in the set (serve_parked); one whose removal
        // failed is still there and is re-armed instead.
        let armed = match epoll::add(&self.epoll, &*stream, data, flags) {
            Err(rustix::io::Errno::EXIST) => epoll::modify(&self.epoll, &*stream, data, flags),
            other => other,
        };
        if let Err(error) = armed {
            tracing::error!(conn = id, error = %error, "cannot watch the connection; closing it");
            let taken = self.state().parked.remove(&id);
            if let Some(connection) = taken {
                self.forget(*connection);
            }
        }
        // Set aside during shutdown: its socket was already shut, so it is readable
        // now and the drain goes on at once.
    }

    /// A parked connection whose deadline passed.
    fn close_expired(&self, mut connection: Connection) {
        connection.session.expired(Instant::now());
        let left = connection.run(&self.drive);
        self.left(left);
    }

    fn forget(&self, connection: Connection) {
        let mut state = self.state();
        state.live.remove(&connection.session.id());
        drop(state);
        drop(connection);
        self.closed.notify_all();
    }

    /// Makes sure a thread is left waiting on the set (within the cap).
    fn ensure_spare(self: &Arc<Self>) {
        let mut state = self.state();
        if state.waiting > 0
            || state.threads >= self.max_threads
            || state.stopping && state.live.is_empty()
        {
            return;
        }
        state.threads += 1;
        drop(state);
        if let Err(error) = spawn_thread(self) {
            tracing::warn!(error = %error, "cannot start another serving thread");
            let mut state = self.state();
            state.threads = state.threads.saturating_sub(1);
        }
    }

    fn refusals(&self) -> MutexGuard<'_, RefusalLog> {
        self.refusals.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Removes the parked connections whose deadline passed.
    fn take_expired(&mut self, now: Instant) -> Vec<Connection> {
        let mut expired = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(connection) = self.parked.remove(&id) {
                expired.push(*connection);
            }
        }
        expired
    }
}

/// The (rate-limited) line of a refused connection.
fn refusal_line(id: u64, peer: &crate::backend::PeerInfo, suppressed: u64, why: &str) {
    tracing::warn!(
        conn = id,
        peer_pid = peer.pid,
        peer_uid = peer.uid,
        peer_gid = peer.gid,
        suppressed,
        "connection refused: {why}"
    );
}

fn spawn_thread(hub: &Arc<Hub>) -> io::Result<()> {
    let hub = Arc::clone(hub);
    std::thread::Builder::new()
        .name("pr-helper".into())
        .stack_size(THREAD_STACK)
        .spawn(move || hub.serve_thread())
        .map(drop)
}

fn timespec(duration: Duration) -> Timespec {
    Timespec::try_from(duration).unwrap_or(Timespec {
        tv_sec: i64::MAX,
        tv_nsec: 0,
    })
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}
