//! Serving: the accept loop, connections, shutdown.
//!
//! The request path: the listening socket and every idle connection sit in one epoll
//! set (`hub.rs`). A serving thread woken by a new connection admits it (credentials,
//! allowlist, cap), sends the greeting and puts it back in the set. A thread woken by a
//! readable connection serves it itself (`connection.rs`): it receives the CDB with its
//! descriptor (`recvmsg`, `MSG_CMSG_CLOEXEC`), the connection's [`session`] decodes and
//! validates it, the router in [`crate::backend`] classifies the descriptor and runs
//! the backend (an `SG_IO` ioctl, or the software target), the session encodes the
//! reply and the thread writes it, then closes the descriptor (a device node at once;
//! anything else on a closer thread, `descriptor.rs`). It goes on with the
//! connection's next requests with plain blocking calls. While fewer than half of the
//! thread cap (`--blocking-threads`) are kept that way, the thread then waits for the
//! connection's next command as long as it takes; otherwise it puts the connection
//! back in the set once it has been idle for [`IDLE_PARK`]. A connection stalled
//! mid-request or with an unread reply is always set aside after [`IDLE_PARK`].
//!
//! One connection's whole protocol (handshake, request assembly, deadlines, the
//! shutdown drain, close reasons, reply encoding and its fallback, the per-command log
//! line) is the sans-I/O [`session::Session`]; `connection.rs` is the only driver.
//!
//! Shutdown ([`Shutdown`], triggered from the signal handlers): the listening socket
//! closes; every connection's reading side is shut (`shutdown(SHUT_RD)`), so its peer
//! can add nothing and any blocked read returns; each connection answers the command it
//! is executing and the requests already waiting in its socket, then closes with one
//! log line (`daemon shutting down`). An idle connection therefore closes at once.
//! Connections still open when the grace period ends are cut off.
//!
//! A peer's descriptor never holds a serving thread (`descriptor.rs`): the descriptor
//! check is one `statx` with `AT_STATX_DONT_SYNC`, which never asks a FUSE or NFS
//! server (a plain `fstat` would wait for one that does not answer), anything that is
//! not a device node is closed on a closer thread (`close` runs the file system's
//! flush, which on FUSE or NFS waits for the server), and nothing that drops a
//! connection (and so may close a descriptor) runs under the hub's lock.
//! `tests/stuck_descriptors.rs` sends descriptors of a FUSE file system whose server
//! stopped answering while other connections are served.
//!
//! Why this model, and what was measured (`scripts/bench.sh`, README "Performance"):
//! the protocol is one command at a time per connection, so a thread that owns a busy
//! connection and blocks in `recvmsg` does the least work per request the protocol
//! allows: `recvmsg`, `statx` (the descriptor check), the ioctl, `send`, `close`,
//! i.e. the yardstick's calls plus the check, with no hand-off between threads (with
//! `strace -c -f`: 5 calls per READ KEYS, the yardstick with `--identity-check`
//! the same 5). The
//! route a descriptor takes is remembered per connection (one `statx` proves a repeat
//! is the same file; no shared lock), and a kept thread's wait arms no timer: each cut
//! the server's CPU per command measurably (together about 1.5 us of 11.7, 11-13% more
//! throughput at 4 and 16 connections). Nothing shared is written per command: a
//! counter bumped with every reply moved its cache line between the CPUs and cost
//! 3-8% at 4 connections, so answered commands are added once per turn on a thread.
//! Idle connections that were never answered, or
//! beyond the kept half of the cap, hold no thread, only their session (about 2.8 KiB
//! each, RSS included), so thousands of idle VMs cost little. The numbers against
//! qemu-pr-helper and the yardstick at 1, 4 and 16 connections are in the README.
//!
//! Where the variance between runs comes from (issue 20; 4 connections, a loop
//! device, each connection opening it itself, per-thread CPU and context switches
//! from `/proc/PID/task/*/stat` and `status` sampled over 1.5 s of 3 s runs, while
//! five other sessions compiled on the 2 CPUs, load average 7-10): in steady state
//! the hub is thread-per-connection, like the yardstick: each connection keeps one
//! thread (4 kept, 1 spare in `epoll_wait` with 0 CPU, no other thread runs), and
//! each thread's system calls per request are the yardstick's. A slow run is one
//! where client-server pairs are split across the CPUs: every round trip then needs
//! a cross-CPU wake-up. A fast connection is a pair on one CPU; its serving thread
//! shows about twice the CPU of the others and five times their involuntary context
//! switches (45-86k against 5-25k per 1.5 s: it is preempted by its client's
//! wake-up instead of blocking), exactly what the issue saw, and the yardstick's
//! threads show the same pattern in its slow rounds (one thread 56 ticks and 57k
//! involuntary switches against 30 and 11k; its throughput alone ranged 49-98k
//! ops/s over five rounds). The serving thread's CPU per request is about 91%
//! kernel (`perf record -e cpu-clock`, 20 kHz, 3 s): half of the samples land in
//! context-switch completion, so context switches, not work in the hub, set the
//! cost; user space is 9% (3 237 instructions per request under callgrind against
//! the yardstick's 1 952, both with the identity check, about 0.3 us). So no change
//! to thread count, hand-back or wake-ups in the hub removes the placement effect
//! on this machine; the benchmark compares interleaved rounds (same noise for
//! every server), reports the median and the worst round of each ratio, and the
//! lead's quiet-machine run is the one the targets are judged by.
//!
//! A connection a thread serves is out of the epoll set (`EPOLL_CTL_DEL` when a
//! thread takes it, `EPOLL_CTL_ADD` when it is set aside), not merely disarmed: a
//! registered socket keeps the set's callback on its wait queue even while its
//! one-shot registration is disarmed, so every request the peer sent ran that
//! callback under the set's lock, one lock for all connections, on both CPUs.
//! Measured with 15 interleaved rounds (4 connections, file per connection, quiet
//! machine, `pr-bench load -r 15 -d 2`, the builds before and after side by side
//! with the yardstick): throughput against the yardstick median 0.87x (worst round
//! 0.69x) before, 0.94x (0.86x) after; the daemon's CPU per request 12.3 against
//! 11.8 us. Context switches, not system calls, set the rest: with `perf stat` on
//! the scheduler's trace points, no migrations and almost no IPIs occur (client and
//! server of a connection share a CPU), every request costs 2.0-2.6 switches, and
//! each server's throughput in a round follows its switches per request. The
//! seccomp filter is not the gap: `ioctl` and `sendto` (the only request-path
//! calls with argument checks) take 36 and 64 filter instructions, `recvmsg`,
//! `statx` and `close` are allowed by the kernel's constant-action cache, and a
//! tight loop of the request's calls took 4.6-5.1 us with and without the filter.
//!
//! The fixed cost the yardstick does not pay: the seccomp filter (about 60 ns on
//! every system call, more on `ioctl`; 0.92x against 0.89x without and with it, 4
//! connections, 20 interleaved rounds). At 1 connection every server pays for waking halted virtual CPUs
//! (about 55 us per round trip on this machine); busy polling (`--busy-poll-us`, off
//! by default) made it worse on two CPUs. The previous design (tokio tasks for idle
//! connections, a busy connection lent to a blocking thread, a pool for queued
//! commands) had three readers of requests, three shutdown signals and a runtime's
//! threads besides, for 89-98k ops/s at 4 and 16 connections.

mod accept;
mod connection;
mod descriptor;
mod hub;
mod log;
mod peer;
pub(crate) mod session;
mod settings;
mod shutdown;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Duration;

use crate::backend::Backends;

pub use peer::Allowlist;
pub use settings::{ServeError, ServeSettings, ServeSummary};
pub use shutdown::Shutdown;

/// How long an idle connection keeps its thread before it goes back to the epoll set.
/// Long against the gap between a closed-loop peer's requests (tens of microseconds),
/// short against how long an idle connection should hold a thread.
pub const IDLE_PARK: Duration = Duration::from_millis(20);

/// Serves `listener` with `backends` until `shutdown` is triggered, then drains the
/// connections for at most `settings.shutdown_grace`. Blocks the calling thread.
pub fn serve(
    listener: std::os::unix::net::UnixListener,
    settings: &ServeSettings,
    backends: Arc<Backends>,
    shutdown: Arc<Shutdown>,
) -> Result<ServeSummary, ServeError> {
    let drive = connection::Drive {
        backends,
        shutdown: Arc::clone(&shutdown),
        idle: IDLE_PARK,
        busy_poll: settings.busy_poll,
        commands: AtomicU64::new(0),
        kept_threads_left: AtomicUsize::new(settings.blocking_threads / 2),
    };
    let hub = Arc::new(hub::Hub::new(listener, settings, drive)?);
    hub.start()?;
    shutdown.wait();
    match shutdown.signal_name() {
        Some(signal) => tracing::info!(signal, "shutting down: finishing commands in flight"),
        None => tracing::info!("shutting down: finishing commands in flight"),
    }
    Ok(hub.stop(settings.shutdown_grace))
}
