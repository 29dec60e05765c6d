//! Linux errno values this workspace needs, defined here so the crate stays free of libc.
//! Values are those of `asm-generic/errno-base.h` and `asm-generic/errno.h`
//! (x86, arm, arm64, riscv, s390 and powerpc all use them).

pub const EPERM: i32 = 1;
pub const ENOENT: i32 = 2;
pub const EINTR: i32 = 4;
pub const EIO: i32 = 5;
pub const ENXIO: i32 = 6;
pub const EBADF: i32 = 9;
pub const EAGAIN: i32 = 11;
pub const ENOMEM: i32 = 12;
pub const EACCES: i32 = 13;
pub const EFAULT: i32 = 14;
pub const EBUSY: i32 = 16;
pub const ENODEV: i32 = 19;
pub const EINVAL: i32 = 22;
pub const ENFILE: i32 = 23;
pub const EMFILE: i32 = 24;
pub const ENOTTY: i32 = 25;
pub const ENOSPC: i32 = 28;
pub const EROFS: i32 = 30;
pub const EPIPE: i32 = 32;
pub const EDOM: i32 = 33;
pub const ERANGE: i32 = 34;
pub const ENOSYS: i32 = 38;
pub const EBADE: i32 = 52;
pub const ENODATA: i32 = 61;
pub const ETIME: i32 = 62;
pub const EPROTO: i32 = 71;
pub const EBADMSG: i32 = 74;
pub const EOVERFLOW: i32 = 75;
pub const EOPNOTSUPP: i32 = 95;
/// Linux defines ENOTSUP as an alias of EOPNOTSUPP.
pub const ENOTSUP: i32 = EOPNOTSUPP;
pub const ECONNRESET: i32 = 104;
pub const ENOTCONN: i32 = 107;
pub const ETIMEDOUT: i32 = 110;
pub const ECONNREFUSED: i32 = 111;
pub const EINPROGRESS: i32 = 115;
pub const EREMOTEIO: i32 = 121;
pub const ENOMEDIUM: i32 = 123;
pub const ECANCELED: i32 = 125;

/// The symbolic name of an errno defined in this module, for logs.
pub const fn name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        EINTR => "EINTR",
        EIO => "EIO",
        ENXIO => "ENXIO",
        EBADF => "EBADF",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EFAULT => "EFAULT",
        EBUSY => "EBUSY",
        ENODEV => "ENODEV",
        EINVAL => "EINVAL",
        ENFILE => "ENFILE",
        EMFILE => "EMFILE",
        ENOTTY => "ENOTTY",
        ENOSPC => "ENOSPC",
        EROFS => "EROFS",
        EPIPE => "EPIPE",
        EDOM => "EDOM",
        ERANGE => "ERANGE",
        ENOSYS => "ENOSYS",
        EBADE => "EBADE",
        ENODATA => "ENODATA",
        ETIME => "ETIME",
        EPROTO => "EPROTO",
        EBADMSG => "EBADMSG",
        EOVERFLOW => "EOVERFLOW",
        EOPNOTSUPP => "EOPNOTSUPP",
        ECONNRESET => "ECONNRESET",
        ENOTCONN => "ENOTCONN",
        ETIMEDOUT => "ETIMEDOUT",
        ECONNREFUSED => "ECONNREFUSED",
        EINPROGRESS => "EINPROGRESS",
        EREMOTEIO => "EREMOTEIO",
        ENOMEDIUM => "ENOMEDIUM",
        ECANCELED => "ECANCELED",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_the_linux_generic_table() {
        assert_eq!(EAGAIN, 11);
        assert_eq!(EINVAL, 22);
        assert_eq!(ENOTTY, 25);
        assert_eq!(ENOSPC, 28);
        assert_eq!(EDOM, 33);
        assert_eq!(EBADE, 52);
        assert_eq!(ENODATA, 61);
        assert_eq!(ENOTSUP, 95);
        assert_eq!(ENOTCONN, 107);
        assert_eq!(EINPROGRESS, 115);
        assert_eq!(EREMOTEIO, 121);
        assert_eq!(ENOMEDIUM, 123);
        assert_eq!(ECANCELED, 125);
    }

    #[test]
    fn names_known_values_only() {
        assert_eq!(name(EBADE), Some("EBADE"));
        assert_eq!(name(ENOTSUP), Some("EOPNOTSUPP"));
        assert_eq!(name(0), None);
        assert_eq!(name(-5), None);
    }
}
