//! The few start-up operations with no safe wrapper. All of `startup`'s
//! `unsafe` lives here; each function documents what its caller promises.

use std::ffi::{CString, OsStr};
use std::io;
use std::mem::MaybeUninit;
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

/// A user database entry: uid and primary gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserEntry {
    pub uid: u32,
    pub gid: u32,
}

/// Looks a user up by name (`getpwnam_r`, so NSS sources count).
pub fn user_by_name(name: &OsStr) -> io::Result<Option<UserEntry>> {
    let name = c_string(name)?;
    lookup_user(|pwd, buf, result| {
        // SAFETY: `name` is a valid C string; `pwd`, `buf` (with its true
        // length) and `result` point to live, writable memory owned by
        // `lookup_user` for the duration of the call.
        unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                result,
            )
        }
    })
}

/// Looks a user up by uid (`getpwuid_r`).
pub fn user_by_uid(uid: u32) -> io::Result<Option<UserEntry>> {
    lookup_user(|pwd, buf, result| {
        // SAFETY: as in `user_by_name`, every pointer is to live memory
        // owned by `lookup_user` for the duration of the call.
        unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr().cast(), buf.len(), result) }
    })
}

/// Looks a group up by name (`getgrnam_r`); returns its gid.
pub fn group_by_name(name: &OsStr) -> io::Result<Option<u32>> {
    let name = c_string(name)?;
    let mut buf = vec![0u8; 4096];
    loop {
        let mut grp = MaybeUninit::<libc::group>::uninit();
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: `name` is a valid C string; `grp`, `buf` (with its true
        // length) and `result` are live, writable and outlive the call.
        let rc = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                grp.as_mut_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        match rc {
            0 if result.is_null() => return Ok(None),
            0 => {
                // SAFETY: rc 0 with a non-null result means `grp` was filled in.
                let grp = unsafe { grp.assume_init() };
                return Ok(Some(grp.gr_gid));
            }
            libc::ERANGE if buf.len() < MAX_NSS_BUFFER => buf.resize(buf.len() * 4, 0),
            errno => return Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

/// Group entries with thousands of members need large buffers; stop
/// growing somewhere sane.
const MAX_NSS_BUFFER: usize = 16 << 20;

fn lookup_user(
    call: impl Fn(*mut libc::passwd, &mut [u8], *mut *mut libc::passwd) -> libc::c_int,
) -> io::Result<Option<UserEntry>> {
    let mut buf = vec![0u8; 4096];
    loop {
        let mut pwd = MaybeUninit::<libc::passwd>::uninit();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        match call(pwd.as_mut_ptr(), &mut buf, &mut result) {
            0 if result.is_null() => return Ok(None),
            0 => {
                // SAFETY: rc 0 with a non-null result means `pwd` was filled in.
                let pwd = unsafe { pwd.assume_init() };
                return Ok(Some(UserEntry {
                    uid: pwd.pw_uid,
                    gid: pwd.pw_gid,
                }));
            }
            libc::ERANGE if buf.len() < MAX_NSS_BUFFER => buf.resize(buf.len() * 4, 0),
            errno => return Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

fn c_string(name: &OsStr) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

/// Makes the process ignore `signal` (the janitor must outlive a SIGTERM
/// sent to the whole process group).
pub fn ignore_signal(signal: i32) -> io::Result<()> {
    // SAFETY: installing SIG_IGN runs no code of ours in signal context.
    let previous = unsafe { libc::signal(signal, libc::SIG_IGN) };
    if previous == libc::SIG_ERR {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Closes every descriptor above 2 except `keep` (in a freshly forked
/// helper process that will only ever use `keep`).
pub fn close_all_except(keep: i32) -> io::Result<()> {
    let keep = u32::try_from(keep).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    let ranges = [
        (3, keep.checked_sub(1)),
        (keep.saturating_add(1), Some(u32::MAX)),
    ];
    for (first, last) in ranges {
        let Some(last) = last else { continue };
        if first > last || first < 3 {
            continue;
        }
        // SAFETY: called only in a forked child that never returns to the
        // code owning these descriptors (it exits from its own loop), so
        // no owner uses a closed descriptor afterwards.
        let rc = unsafe { libc::close_range(first, last, 0) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The signals that ask the daemon to stop.
const TERMINATION_SIGNALS: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Blocks (holds pending) or unblocks the termination signals for the
/// calling thread; threads created afterwards inherit the mask. Start-up
/// blocks them so that a stop request arriving before the handlers exist
/// is handled as a graceful shutdown once they do, instead of killing the
/// process half-started.
pub fn block_termination_signals(block: bool) -> io::Result<()> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given, which is ours.
    unsafe { libc::sigemptyset(set.as_mut_ptr()) };
    for signal in TERMINATION_SIGNALS {
        // SAFETY: the set was initialised by sigemptyset above; the signal
        // numbers are valid constants.
        unsafe { libc::sigaddset(set.as_mut_ptr(), signal) };
    }
    let how = if block {
        libc::SIG_BLOCK
    } else {
        libc::SIG_UNBLOCK
    };
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(how, set.as_ptr(), std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}
