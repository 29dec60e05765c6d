//! The probe's raw syscalls (no safe wrapper exists for a fork-like `clone`, for
//! `clone3`, `unshare`, `ptrace` or `execve`). Each child created here calls
//! `_exit` at once, so it runs no Rust code of the multi-threaded parent.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

/// Reaps `pid`; Ok if it exited 0.
fn reap(pid: libc::pid_t) -> Result<(), i32> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or(-1)?;
    match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
        Ok(Some((_, status))) if status.exit_status() == Some(0) => Ok(()),
        Ok(_) => Err(-1),
        Err(error) => Err(error.raw_os_error()),
    }
}

/// `clone(flags | SIGCHLD)` with fork semantics (no new stack: the child runs on a
/// copy of ours); the child exits 0 at once.
pub fn fork_with(flags: libc::c_int) -> Result<(), i32> {
    let flags = libc::c_ulong::try_from(flags | libc::SIGCHLD).map_err(|_| -1)?;
    // SAFETY: without CLONE_VM the child gets a copy of the address space and
    // returns here on its own copy of the stack, like fork; it only calls `_exit`
    // (async-signal-safe), so no lock held by another thread of ours matters.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match pid {
        -1 => Err(last_errno()),
        0 => {
            // SAFETY: `_exit` ends the child without running any of the parent's
            // code (no atexit handlers, no destructors).
            unsafe { libc::_exit(0) }
        }
        pid => reap(libc::pid_t::try_from(pid).map_err(|_| -1)?),
    }
}

/// `struct clone_args` of linux/sched.h, its first version (64 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

const _: () = assert!(std::mem::size_of::<CloneArgs>() == 64);

/// `clone3` with fork semantics; the child exits 0 at once.
pub fn clone3_fork() -> Result<(), i32> {
    let args = CloneArgs {
        exit_signal: u64::try_from(libc::SIGCHLD).map_err(|_| -1)?,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed, live for the call;
    // with no CLONE_VM and no stack the child continues on a copy of our memory,
    // like fork, and only calls `_exit`.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match pid {
        -1 => Err(last_errno()),
        0 => {
            // SAFETY: as in `fork_with`.
            unsafe { libc::_exit(0) }
        }
        pid => reap(libc::pid_t::try_from(pid).map_err(|_| -1)?),
    }
}

/// `unshare(flags)` on the calling thread.
pub fn unshare(flags: libc::c_int) -> Result<(), i32> {
    // SAFETY: unshare takes no pointers; the probe calls it on a thread of its own
    // that ends right after.
    match unsafe { libc::unshare(flags) } {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}

/// `PTRACE_ATTACH` to `pid`, wait for its stop, `PTRACE_DETACH`.
pub fn ptrace_attach_and_detach(pid: u32) -> Result<(), i32> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| -1)?;
    let null = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: PTRACE_ATTACH reads no memory of ours (addr and data are ignored).
    if unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, null, null) } == -1 {
        return Err(last_errno());
    }
    let mut status = 0;
    // SAFETY: `status` is a live int the kernel writes the stop status to.
    let waited = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    // SAFETY: as for PTRACE_ATTACH; the tracee is stopped (or gone).
    let detached = unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, null, null) };
    if waited == -1 || detached == -1 {
        return Err(last_errno());
    }
    Ok(())
}

/// Replaces the process with `program`, with only `env` as its environment.
/// Returns only if the exec failed.
pub fn execve(program: &Path, env: &[(&str, &OsStr)]) -> Result<(), i32> {
    let path = CString::new(program.as_os_str().as_bytes()).map_err(|_| -1)?;
    let argv0 = CString::new("pr-helper-probe").map_err(|_| -1)?;
    let env: Vec<CString> = env
        .iter()
        .map(|(name, value)| {
            let mut entry = name.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            CString::new(entry).map_err(|_| -1)
        })
        .collect::<Result<_, _>>()?;
    let argv = [argv0.as_ptr(), std::ptr::null()];
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|entry| entry.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: `path`, `argv` and `envp` are NUL-terminated strings and
    // null-terminated arrays that live across the call; on success the process
    // image is replaced and nothing of ours runs again.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Err(last_errno())
}
