//! The few start-up operations with no safe wrapper. All of `startup`'s
//! `unsafe` lives here; each function documents what its caller promises.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// Whether the process has exactly one thread (`/proc/self/status`).
/// Forking and changing the environment are only sound then.
pub fn is_single_threaded() -> io::Result<bool> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read /proc/self/status (is /proc mounted?): {e}"),
        )
    })?;
    let threads = status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse::<u32>().ok());
    Ok(threads == Some(1))
}

fn require_single_thread(what: &str) -> io::Result<()> {
    if is_single_threaded()? {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{what} needs a single-threaded process"
        )))
    }
}

/// What `fork` returned.
pub enum Forked {
    /// We are the parent; the child has this pid.
    Parent(i32),
    /// We are the child.
    Child,
}

/// Forks the process. Refuses unless the process is single-threaded, so
/// the child cannot inherit a lock held by a thread that no longer exists.
pub fn fork() -> io::Result<Forked> {
    require_single_thread("fork")?;
    // SAFETY: the process has a single thread (checked just above), so the
    // child gets a consistent copy of every lock and allocator state and
    // may go on running ordinary Rust code.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        child => Ok(Forked::Parent(child)),
    }
}

/// Removes environment variables, refusing unless the process is
/// single-threaded (no other thread can be reading the environment).
pub fn remove_env_vars(names: &[&str]) -> io::Result<()> {
    require_single_thread("changing the environment")?;
    for name in names {
        // SAFETY: single-threaded (checked above): nothing reads or writes
        // the environment concurrently.
        unsafe { std::env::remove_var(name) };
    }
    Ok(())
}

/// Closes every descriptor from `first` up, without touching lower ones.
pub fn close_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range only closes descriptors; the caller runs this at
    // the very start of `main`, before any object owning a descriptor at or
    // above `first` exists, so no owner is left with a dangling descriptor.
    let rc = unsafe { libc::close_range(first, u32::MAX, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes ownership of a descriptor inherited from the parent (systemd's
/// socket-activation descriptor). Call at most once per descriptor.
pub fn take_inherited_fd(fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only reads the descriptor's flags; it fails with
    // EBADF if the descriptor is not open.
    let rc = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open (checked above) and was inherited, not
    // opened by any object of this process; the start-up sequence calls
    // this once, so the returned `OwnedFd` is its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Closes every descriptor above 2 except those in `keep` (in a freshly forked
/// helper process that will only ever use those).
pub fn close_all_except(keep: &[i32]) -> io::Result<()> {
    let mut kept = keep
        .iter()
        .map(|&fd| u32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF)))
        .collect::<io::Result<Vec<u32>>>()?;
    kept.sort_unstable();
    kept.dedup();
    let mut first = 3u32;
    for fd in kept.into_iter().chain(std::iter::once(u32::MAX)) {
        // Close first..fd-1 (all of first.. when fd is the u32::MAX sentinel).
        let last = if fd == u32::MAX {
            u32::MAX
        } else {
            fd.saturating_sub(1)
        };
        if fd >= first && last >= first {
            // SAFETY: called only in a forked child that never returns to the
            // code owning these descriptors (it exits from its own loop), so
            // no owner uses a closed descriptor afterwards.
            let rc = unsafe { libc::close_range(first, last, 0) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        first = first.max(fd.saturating_add(1));
    }
    Ok(())
}
