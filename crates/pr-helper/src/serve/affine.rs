//! A busy connection served by one blocking thread of its own.
//!
//! When a command needs a blocking call and a seat is free, the connection task lends
//! its socket to a thread of the blocking pool. That thread executes the command, writes
//! the response, and goes on reading, executing and answering that connection's next
//! requests with plain blocking calls: no hand-off between threads per request. It gives
//! the socket back to the task when the connection has been idle for [`IDLE_HAND_BACK`]
//! or when a command's device or pool slot is not free at once (the task then queues
//! that command in the pool, holding no thread while it waits). While it waits for
//! input it polls the shutdown [`Bell`] too, so a shutdown is noticed at once; it then
//! answers what was already waiting and closes the connection itself (`drain.rs`).
//! A hung device therefore holds only the threads of the connections whose commands
//! are stuck on it; other connections keep their own.
//!
//! Every rule of the task's serving path holds here too: the request deadline from a
//! request's first byte, the reply deadline, reads no larger than the decoder's stage,
//! `MSG_CMSG_CLOEXEC`, the descriptor closed only after its response went out.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pr_protocol::{Decoded, Request, RequestDecoder};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::SendFlags;

use super::ShutdownSignal;
use super::connection::{
    CloseReason, Context, IDLE_BUFFER, buffer_for, encode_answer, feed_read, io_failure,
};
use super::drain::{Bell, Drain, next_drained};
use super::pool::{CallSlots, DeviceKey};
use super::recv::recv_now;
use crate::backend::{Execution, Job, PeerInfo, Plan};

/// How long a connection may stay idle before its thread hands it back to the task.
/// Long against the gap between a closed-loop peer's requests (tens of microseconds),
/// short against how long an idle connection should keep a thread.
pub(super) const IDLE_HAND_BACK: Duration = Duration::from_millis(20);

/// A command whose blocking call the thread runs, with the slots already taken for it.
pub(super) struct Command {
    pub job: Job,
    pub request: Request<OwnedFd>,
    pub started: Instant,
    pub slots: CallSlots,
}

/// A command the thread could not run at once: the task runs it in the pool.
pub(super) struct Pending {
    pub job: Job,
    pub request: Request<OwnedFd>,
    pub started: Instant,
}

/// How the thread ended.
pub(super) enum Returned {
    /// The task serves the connection again (first `pending`, if any).
    HandBack {
        buffer: Vec<u8>,
        /// Boxed: rare, and it would make every hand-back as large as a request.
        pending: Option<Box<Pending>>,
        /// Set if the thread had observed the shutdown: the task goes on draining.
        drain: Option<Drain>,
    },
    /// The connection is over.
    Closed(CloseReason),
}

/// The socket while a thread has it. Dropping the task's handle while the thread
/// still holds the other one (forced shutdown) shuts the socket down, so the peer
/// sees the connection end at once even if the thread is stuck in an ioctl.
pub(super) struct Lent {
    /// `None` only once taken back.
    stream: Option<Arc<StdUnixStream>>,
}

impl Lent {
    pub(super) fn new(stream: StdUnixStream) -> Self {
        Self {
            stream: Some(Arc::new(stream)),
        }
    }

    pub(super) fn share(&self) -> Option<Arc<StdUnixStream>> {
        self.stream.as_ref().map(Arc::clone)
    }

    /// The socket, once the thread has let go of it.
    pub(super) fn take_back(mut self) -> Option<StdUnixStream> {
        self.stream.take().and_then(Arc::into_inner)
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(stream) = &self.stream
            && Arc::strong_count(stream) > 1
        {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// What one connection's thread works with.
pub(super) struct Worker {
    pub context: Arc<Context>,
    pub stream: Arc<StdUnixStream>,
    pub peer: PeerInfo,
    pub id: u64,
    pub shutdown: ShutdownSignal,
    pub buffer: Vec<u8>,
    pub drain: Option<Drain>,
}

/// The next step after a response went out.
enum Next {
    Run(Command),
    Answer(Request<OwnedFd>, Execution, Instant),
    Return(Returned),
}

impl Worker {
    /// Serves the connection, starting with `first`, until it is handed back or over.
    pub(super) fn serve(mut self, first: Command) -> Returned {
        let mut next = Next::Run(first);
        loop {
            let (request, execution, started) = match next {
                Next::Run(command) => self.run(command),
                Next::Answer(request, execution, started) => (request, execution, started),
                Next::Return(returned) => return returned,
            };
            if let Err(reason) = self.respond(request, execution, started) {
                return Returned::Closed(reason);
            }
            next = self.next_command();
        }
    }

    fn run(&self, command: Command) -> (Request<OwnedFd>, Execution, Instant) {
        let Command {
            job,
            request,
            started,
            slots,
        } = command;
        let descriptor = job.descriptor;
        let response = self.context.backends.run(job, &request, &self.peer);
        self.context.pool.release(slots);
        let execution = Execution {
            response,
            descriptor,
        };
        (request, execution, started)
    }

    /// Writes the response within the reply deadline, then closes the descriptor.
    fn respond(
        &self,
        request: Request<OwnedFd>,
        execution: Execution,
        started: Instant,
    ) -> Result<(), CloseReason> {
        let wire = encode_answer(self.id, &self.peer, &request, execution, started);
        let deadline = Instant::now() + self.context.request_timeout;
        let written = write_all(&self.stream, &wire, deadline, self.context.request_timeout);
        self.context.commands.fetch_add(1, Ordering::Relaxed);
        // The descriptor closes here, after the response went out (or failed to).
        drop(request);
        written
    }

    /// Reads the next request and decides where it runs.
    fn next_command(&mut self) -> Next {
        let request = match self.read_request() {
            Ok(Some(request)) => request,
            Ok(None) => return Next::Return(self.hand_back(None)),
            Err(reason) => return Next::Return(Returned::Closed(reason)),
        };
        // Back to CDB size once a parameter list has been read (idle threads stay small).
        if self.buffer.len() > IDLE_BUFFER {
            self.buffer = vec![0; IDLE_BUFFER];
        }
        let started = Instant::now();
        match self.context.backends.plan(&request, &self.peer) {
            Plan::Answered(execution) => Next::Answer(request, execution, started),
            Plan::Blocking(job) => {
                let key = DeviceKey::for_job(&job, request.fd.as_fd());
                match self.context.pool.try_slots(key) {
                    Some(slots) => Next::Run(Command {
                        job,
                        request,
                        started,
                        slots,
                    }),
                    None => Next::Return(self.hand_back(Some(Box::new(Pending {
                        job,
                        request,
                        started,
                    })))),
                }
            }
        }
    }

    fn hand_back(&mut self, pending: Option<Box<Pending>>) -> Returned {
        Returned::HandBack {
            buffer: std::mem::take(&mut self.buffer),
            pending,
            drain: self.drain,
        }
    }

    /// Whether the task gave up the connection (forced shutdown): nothing to serve.
    fn task_gone(&self) -> bool {
        Arc::strong_count(&self.stream) < 2
    }

    fn shutting_down(&self) -> bool {
        // A dropped sender also means stop: nobody can tell us to go on.
        self.context.bell.is_rung()
            || *self.shutdown.borrow()
            || self.shutdown.has_changed().is_err()
    }

    /// One complete request, or `None` when the connection should go back to its task
    /// (idle). Once a request has begun, the request deadline runs. After the shutdown
    /// it reads only what was waiting when it was observed (`drain.rs`).
    fn read_request(&mut self) -> Result<Option<Request<OwnedFd>>, CloseReason> {
        let mut decoder = RequestDecoder::<OwnedFd>::new();
        let mut deadline: Option<Instant> = None;
        loop {
            if deadline.is_none() && self.task_gone() {
                return Ok(None);
            }
            if self.drain.is_none() && self.shutting_down() {
                self.drain = Some(Drain::begin(self.stream.as_fd()));
            }
            if let Some(drain) = self.drain.as_mut() {
                return next_drained(self.stream.as_fd(), &mut decoder, &mut self.buffer, drain)
                    .map(Some);
            }
            let until = deadline.unwrap_or_else(|| Instant::now() + IDLE_HAND_BACK);
            match wait_for_input(&self.stream, &self.context.bell, until) {
                Ok(Wake::Input) => {}
                Ok(Wake::Shutdown) => continue,
                Ok(Wake::Deadline) if deadline.is_none() => return Ok(None),
                Ok(Wake::Deadline) => {
                    return Err(CloseReason::RequestTimeout {
                        deadline: self.context.request_timeout,
                        stage_wanted: decoder.bytes_wanted(),
                    });
                }
                Err(error) => return Err(io_failure("waiting for the socket", error)),
            }
            let wanted = decoder.bytes_wanted();
            let Some(buffer) = buffer_for(&mut self.buffer, wanted) else {
                return Err(CloseReason::Violation(
                    pr_protocol::Violation::AlreadyFailed,
                ));
            };
            let received = match recv_now(self.stream.as_fd(), buffer) {
                Ok(received) => received,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Err(io_failure("reading the socket", error)),
            };
            match feed_read(&mut decoder, &self.buffer, received)? {
                Decoded::NeedMore => {
                    // The request deadline runs from the request's first byte.
                    deadline.get_or_insert_with(|| Instant::now() + self.context.request_timeout);
                }
                Decoded::Request(request) => return Ok(Some(request)),
            }
        }
    }
}

/// What ended a wait for the next input.
enum Wake {
    /// The socket is readable (or hung up / failed, which the read reports).
    Input,
    /// The shutdown bell rang.
    Shutdown,
    Deadline,
}

/// Waits for input on `stream` or the shutdown `bell`, until `deadline`. The bell wins
/// when both are ready: the drain then counts the waiting input.
fn wait_for_input(stream: &StdUnixStream, bell: &Bell, deadline: Instant) -> io::Result<Wake> {
    loop {
        let (timeout, passed) = timeout_until(deadline);
        let mut fds = [
            PollFd::new(stream, PollFlags::IN),
            PollFd::from_borrowed_fd(bell.as_fd(), PollFlags::IN),
        ];
        let ready = rustix::event::poll(&mut fds, Some(&timeout));
        let [_, rung] = &fds;
        match ready {
            Ok(0) if passed => return Ok(Wake::Deadline),
            // Woken early by rounding: look at the clock again.
            Ok(0) => continue,
            Ok(_) if !rung.revents().is_empty() => return Ok(Wake::Shutdown),
            Ok(_) => return Ok(Wake::Input),
            Err(Errno::INTR) => continue,
            Err(error) => return Err(error.into()),
        }
    }
}

/// The poll timeout left until `deadline`, and whether it is zero (the deadline passed).
fn timeout_until(deadline: Instant) -> (Timespec, bool) {
    let left = deadline.saturating_duration_since(Instant::now());
    let timeout = Timespec::try_from(left).unwrap_or(Timespec {
        tv_sec: i64::MAX,
        tv_nsec: 0,
    });
    (timeout, left.is_zero())
}

/// Sends all of `bytes` before `deadline`.
fn write_all(
    stream: &StdUnixStream,
    mut bytes: &[u8],
    deadline: Instant,
    limit: Duration,
) -> Result<(), CloseReason> {
    while !bytes.is_empty() {
        match rustix::net::send(stream, bytes, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
            Ok(0) => {
                return Err(io_failure(
                    "writing the response",
                    io::ErrorKind::WriteZero.into(),
                ));
            }
            Ok(sent) => bytes = bytes.get(sent..).unwrap_or_default(),
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => match wait_for(stream, PollFlags::OUT, deadline) {
                Ok(true) => {}
                Ok(false) => return Err(CloseReason::ReplyTimeout(limit)),
                Err(error) => return Err(io_failure("writing the response", error)),
            },
            Err(error) => return Err(io_failure("writing the response", error.into())),
        }
    }
    Ok(())
}

/// Waits until `stream` is ready for `events` (or has hung up / failed, which the
/// next read or write reports) or `deadline` passes: `false` on the deadline.
fn wait_for(stream: &StdUnixStream, events: PollFlags, deadline: Instant) -> io::Result<bool> {
    loop {
        let (timeout, passed) = timeout_until(deadline);
        let mut fds = [PollFd::new(stream, events)];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) if passed => return Ok(false),
            // Woken early by rounding: look at the clock again.
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(Errno::INTR) => continue,
            Err(error) => return Err(error.into()),
        }
    }
}
