//! Up to N connections, each serving one command at a time. A command
//! takes an idle connection, or the right to open one, or waits for one.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::conn::Conn;
use crate::watcher::IdleConn;

#[derive(Debug, Default)]
struct State {
    /// Negotiated connections nobody is using (most recently used last).
    idle: Vec<Arc<Conn>>,
    /// Slots held by commands (with or without a connection yet).
    leased: usize,
}

#[derive(Debug)]
pub(crate) struct Pool {
    max: usize,
    state: Mutex<State>,
    freed: Condvar,
}

/// A slot in the pool, held for the duration of one command. Dropping it
/// gives the slot back; a connection still in it goes back to the idle set.
#[derive(Debug)]
pub(crate) struct Lease<'p> {
    pool: &'p Pool,
    conn: Option<Arc<Conn>>,
    reused: bool,
}

impl Pool {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
        }
    }

    /// Waits for a slot: an idle connection if there is one.
    pub(crate) fn acquire(&self) -> Lease<'_> {
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                state.leased = state.leased.saturating_add(1);
                return Lease {
                    pool: self,
                    conn: Some(conn),
                    reused: true,
                };
            }
            if state.leased < self.max {
                state.leased = state.leased.saturating_add(1);
                return Lease {
                    pool: self,
                    conn: None,
                    reused: false,
                };
            }
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Closes every idle connection (they all went stale together).
    pub(crate) fn purge_idle(&self) {
        let stale = std::mem::take(&mut self.lock().idle);
        for conn in &stale {
            conn.shut_down();
        }
        self.freed.notify_all();
    }

    /// The idle connections right now, for the watcher to poll.
    pub(crate) fn idle_snapshot(&self) -> Vec<Arc<dyn IdleConn>> {
        self.lock()
            .idle
            .iter()
            .map(|conn| Arc::clone(conn) as Arc<dyn IdleConn>)
            .collect()
    }

    /// Removes the idle connections for which `is_dead` says so, checking
    /// under the lock so no command can take one meanwhile. Returns how many.
    pub(crate) fn reap_idle(&self, ids: &[u64], is_dead: impl Fn(&Conn) -> bool) -> usize {
        let mut state = self.lock();
        let before = state.idle.len();
        state.idle.retain(|conn| {
            let dead = ids.contains(&conn.id) && is_dead(conn);
            if dead {
                conn.shut_down();
            }
            !dead
        });
        let reaped = before.saturating_sub(state.idle.len());
        drop(state);
        if reaped > 0 {
            self.freed.notify_all();
        }
        reaped
    }

    /// Open connections (idle + in use): for tests and diagnostics.
    pub(crate) fn idle_count(&self) -> usize {
        self.lock().idle.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Lease<'_> {
    pub(crate) fn conn(&self) -> Option<&Arc<Conn>> {
        self.conn.as_ref()
    }

    /// Whether the connection came from the idle set (it may be stale).
    pub(crate) fn is_reused(&self) -> bool {
        self.reused && self.conn.is_some()
    }

    /// Holds a fresh connection; returns a handle to it.
    pub(crate) fn put(&mut self, conn: Conn) -> Arc<Conn> {
        let conn = Arc::new(conn);
        self.conn = Some(Arc::clone(&conn));
        self.reused = false;
        conn
    }

    /// Drops a broken connection; the slot stays held.
    pub(crate) fn discard(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.shut_down();
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut state = self.pool.lock();
        state.leased = state.leased.saturating_sub(1);
        if let Some(conn) = self.conn.take() {
            state.idle.push(conn);
        }
        drop(state);
        self.pool.freed.notify_one();
    }
}
