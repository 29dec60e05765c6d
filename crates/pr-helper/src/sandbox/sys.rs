//! The SIGSYS handler of `--seccomp=trap`: the only `unsafe` of the
//! sandbox. It runs in signal context, so it only uses atomics, a stack
//! buffer and write(2).

use std::io;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

/// Where the handler also writes its lines (-1: standard error only).
static REPORT_FD: AtomicI32 = AtomicI32::new(-1);

/// One bit per syscall number already reported (numbers above are
/// reported every time; no architecture has that many).
static REPORTED: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];

/// The `_sigsys` member of `siginfo_t` on 64-bit Linux (libc exposes no
/// accessor): after signo, errno, code and padding come the address of
/// the call, the syscall number and the audit architecture.
#[repr(C)]
struct SigsysInfo {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    pad: libc::c_int,
    call_addr: *mut libc::c_void,
    syscall: libc::c_int,
    arch: libc::c_uint,
}

/// Installs the handler for SIGSYS. `report`, if given, stays open for
/// the life of the process (the handler may run at any time).
pub fn install_sigsys_reporter(report: Option<OwnedFd>) -> io::Result<()> {
    if let Some(fd) = report {
        REPORT_FD.store(fd.into_raw_fd(), Ordering::SeqCst);
    }
    // SAFETY: an all-zero sigaction is a valid value (no flags, empty
    // mask, null handler) that is filled in below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = on_sigsys;
    action.sa_sigaction = handler as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO;
    // SAFETY: `action.sa_mask` is ours and live; sigemptyset only writes it.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is fully initialised and its handler has the
    // three-argument signature that SA_SIGINFO promises the kernel; a null
    // old-action pointer is allowed.
    let rc = unsafe { libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The first two syscall arguments (for ioctl: descriptor and request),
/// and the syscall's result set to -ENOSYS.
fn arguments_and_fail(context: *mut libc::c_void) -> (u64, u64) {
    let context = context.cast::<libc::ucontext_t>();
    if context.is_null() {
        return (0, 0);
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the kernel passes the interrupted thread's saved context
        // to an SA_SIGINFO handler; it is live and ours to change until the
        // handler returns, and rt_sigreturn restores from it.
        let gregs = unsafe { &mut (*context).uc_mcontext.gregs };
        let index = |register: libc::c_int| usize::try_from(register).unwrap_or(usize::MAX);
        let read = |gregs: &[libc::greg_t; 23], register| {
            gregs.get(index(register)).map_or(0, |value| *value as u64)
        };
        let args = (read(gregs, libc::REG_RDI), read(gregs, libc::REG_RSI));
        if let Some(result) = gregs.get_mut(index(libc::REG_RAX)) {
            *result = -libc::greg_t::from(libc::ENOSYS);
        }
        args
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: as above: the saved context is live and ours to change
        // until the handler returns.
        let regs = unsafe { &mut (*context).uc_mcontext.regs };
        let args = (regs[0], regs[1]);
        regs[0] = (-i64::from(libc::ENOSYS)) as u64;
        args
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        (0, 0)
    }
}

extern "C" fn on_sigsys(
    _signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let (syscall, arch) = if info.is_null() {
        (-1, 0)
    } else {
        // SAFETY: for SIGSYS raised by seccomp the kernel fills in the
        // `_sigsys` member, whose layout `SigsysInfo` mirrors; the pointer
        // is valid for the duration of the handler.
        let sigsys = unsafe { &*info.cast::<SigsysInfo>() };
        (sigsys.syscall, sigsys.arch)
    };
    let (arg0, arg1) = arguments_and_fail(context);
    // Every ioctl is reported (one line per request matters); any other
    // syscall once.
    if i64::from(syscall) != libc::SYS_ioctl && !first_report(syscall) {
        return;
    }
    let mut line = Line::default();
    line.push(b"pr-helper: seccomp: blocked syscall ");
    line.push_decimal(i64::from(syscall));
    line.push(b" (arch 0x");
    line.push_hex(u64::from(arch));
    line.push(b") arg0 0x");
    line.push_hex(arg0);
    line.push(b" arg1 0x");
    line.push_hex(arg1);
    line.push(b"; failed with ENOSYS\n");
    let bytes = line.bytes();
    for fd in [libc::STDERR_FILENO, REPORT_FD.load(Ordering::SeqCst)] {
        if fd >= 0 {
            // SAFETY: write(2) is async-signal-safe; `bytes` is a live
            // buffer of the given length. A failed write is ignored.
            let _ = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        }
    }
}

/// Whether `syscall` was not reported before (and marks it reported).
fn first_report(syscall: libc::c_int) -> bool {
    let Ok(number) = usize::try_from(syscall) else {
        return true;
    };
    let Some(word) = REPORTED.get(number / 64) else {
        return true;
    };
    let bit = 1u64 << (number % 64);
    word.fetch_or(bit, Ordering::SeqCst) & bit == 0
}

/// A line built without allocating (signal context).
struct Line {
    buffer: [u8; 192],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Line {
            buffer: [0; 192],
            len: 0,
        }
    }
}

impl Line {
    fn push(&mut self, bytes: &[u8]) {
        for byte in bytes {
            if let Some(slot) = self.buffer.get_mut(self.len) {
                *slot = *byte;
                self.len += 1;
            }
        }
    }

    fn push_decimal(&mut self, value: i64) {
        if value < 0 {
            self.push(b"-");
        }
        let mut digits = [0u8; 20];
        let mut rest = value.unsigned_abs();
        let mut count = 0;
        loop {
            if let Some(slot) = digits.get_mut(count) {
                *slot = b'0' + (rest % 10) as u8;
            }
            count += 1;
            rest /= 10;
            if rest == 0 || count == digits.len() {
                break;
            }
        }
        for index in (0..count).rev() {
            if let Some(digit) = digits.get(index) {
                self.push(&[*digit]);
            }
        }
    }

    fn push_hex(&mut self, value: u64) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut started = false;
        for shift in (0..16).rev() {
            let nibble = ((value >> (shift * 4)) & 0xf) as usize;
            if nibble != 0 || started || shift == 0 {
                started = true;
                if let Some(digit) = HEX.get(nibble) {
                    self.push(&[*digit]);
                }
            }
        }
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.get(..self.len).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_format_numbers_without_allocating() {
        let mut line = Line::default();
        line.push_decimal(16);
        line.push(b" ");
        line.push_hex(0xc138fd0c);
        line.push(b" ");
        line.push_decimal(-1);
        line.push(b" ");
        line.push_hex(0);
        assert_eq!(line.bytes(), b"16 c138fd0c -1 0");
    }

    #[test]
    fn each_number_is_reported_once() {
        assert!(first_report(500));
        assert!(!first_report(500));
        assert!(first_report(-3));
        assert!(first_report(100_000));
    }
}
