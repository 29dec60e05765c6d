//! What kind of file a received descriptor refers to.
//!
//! The daemon only sends `SG_IO` to whole block devices and SCSI generic
//! character devices; everything else is answered without an ioctl. A
//! partition is told apart from a whole disk through sysfs: the kernel
//! publishes a `partition` attribute only for partitions. A device-mapper
//! device (sysfs `dm/`) counts as whole only if it maps the whole of the
//! devices under it (`slaves/`, `size`).

use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, StatxFlags, fstat, major, makedev, minor, statx};

/// Major number the kernel reserves for `/dev/sg*` (`Documentation/admin-guide/devices.txt`).
pub const SG_MAJOR: u32 = 21;

/// The kind of file behind a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DescriptorKind {
    /// A block device that is a whole disk (or a device without partitions,
    /// such as a loop device or a device-mapper target).
    WholeBlockDevice,
    /// A partition of a block device.
    Partition,
    /// A device-mapper device that does not map the whole of every device under it
    /// (an LVM volume, a dm-linear slice, a stack of dm devices). The kernel passes
    /// SG_IO down to the device below, reaching the whole LUN, and checks that only for
    /// callers without CAP_SYS_RAWIO: the same risk as a partition.
    PartialDeviceMapper,
    /// A SCSI generic character device (`/dev/sg*`).
    SgCharDevice,
    /// A regular file (for example a disk image).
    RegularFile,
    /// Anything else: never sent an ioctl.
    Other(OtherKind),
}

/// The kinds of file that are neither block devices, sg devices nor regular files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherKind {
    /// A character device other than sg (for example `/dev/null`).
    CharDevice { major: u32, minor: u32 },
    /// A pipe or FIFO.
    Pipe,
    /// A socket.
    Socket,
    /// A directory.
    Directory,
    /// A symbolic link (only reachable through an `O_PATH` descriptor).
    Symlink,
    /// A file type the kernel reported that we do not recognise.
    Unknown,
}

impl DescriptorKind {
    /// Whether an `SG_IO` ioctl may be issued on this kind (partitions are
    /// the caller's policy decision and are not included).
    pub fn accepts_sg_io(self) -> bool {
        matches!(
            self,
            DescriptorKind::WholeBlockDevice | DescriptorKind::SgCharDevice
        )
    }
}

impl fmt::Display for DescriptorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DescriptorKind::WholeBlockDevice => f.write_str("block device"),
            DescriptorKind::Partition => f.write_str("partition"),
            DescriptorKind::PartialDeviceMapper => {
                f.write_str("device-mapper device mapping part of a device")
            }
            DescriptorKind::SgCharDevice => f.write_str("sg device"),
            DescriptorKind::RegularFile => f.write_str("regular file"),
            DescriptorKind::Other(other) => other.fmt(f),
        }
    }
}

impl fmt::Display for OtherKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OtherKind::CharDevice { major, minor } => write!(f, "char device {major}:{minor}"),
            OtherKind::Pipe => f.write_str("pipe"),
            OtherKind::Socket => f.write_str("socket"),
            OtherKind::Directory => f.write_str("directory"),
            OtherKind::Symlink => f.write_str("symlink"),
            OtherKind::Unknown => f.write_str("unknown file type"),
        }
    }
}

/// Why a descriptor could not be classified.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    /// `statx` (or `fstat`) on the descriptor failed.
    #[error("statx on the descriptor failed")]
    Fstat(#[source] io::Error),
    /// The block device has no entry in sysfs, so whole disk and partition
    /// cannot be told apart (is `/sys` mounted?).
    #[error("cannot read sysfs entry {path} of block device {major}:{minor} (is /sys mounted?)")]
    BlockSysfs {
        path: PathBuf,
        major: u32,
        minor: u32,
        #[source]
        source: io::Error,
    },
}

/// What the kernel says about the file behind a descriptor: enough to tell
/// its kind and to compare it with another descriptor's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Node {
    pub dev: u64,
    pub ino: u64,
    pub rdev: u64,
    pub mode: u32,
}

impl Node {
    /// One `statx` of `fd` with `AT_STATX_DONT_SYNC`: the attributes the kernel
    /// has at hand, never asking a file system's server. A peer's descriptor may
    /// be a file of a FUSE or NFS file system whose server never answers; a plain
    /// `fstat` would then wait with it (FUSE's GETATTR, NFS's revalidation),
    /// while type, inode and device numbers never need a fresh look. Where the
    /// kernel or a filter refuses `statx` (ENOSYS), falls back to `fstat`.
    pub(crate) fn of(fd: BorrowedFd<'_>) -> Result<Self, ClassifyError> {
        let wanted = StatxFlags::TYPE | StatxFlags::MODE | StatxFlags::INO;
        match statx(
            fd,
            c"",
            AtFlags::EMPTY_PATH | AtFlags::STATX_DONT_SYNC,
            wanted,
        ) {
            Ok(x) => Ok(Self {
                dev: makedev(x.stx_dev_major, x.stx_dev_minor),
                ino: x.stx_ino,
                rdev: makedev(x.stx_rdev_major, x.stx_rdev_minor),
                mode: u32::from(x.stx_mode),
            }),
            Err(rustix::io::Errno::NOSYS) => {
                let stat = fstat(fd).map_err(|e| ClassifyError::Fstat(e.into()))?;
                Ok(Self {
                    dev: stat.st_dev,
                    ino: stat.st_ino,
                    rdev: stat.st_rdev,
                    mode: stat.st_mode,
                })
            }
            Err(e) => Err(ClassifyError::Fstat(e.into())),
        }
    }
}

/// Classifies the file behind `fd` (one `statx` that never waits on a file
/// system's server, plus a sysfs lookup for block and character devices).
/// Never changes the descriptor.
pub fn classify(fd: BorrowedFd<'_>) -> Result<DescriptorKind, ClassifyError> {
    classify_with_sysfs(fd, Path::new("/sys"))
}

/// [`classify`] with a different sysfs root (for tests).
pub fn classify_with_sysfs(
    fd: BorrowedFd<'_>,
    sysfs: &Path,
) -> Result<DescriptorKind, ClassifyError> {
    classify_node(&Node::of(fd)?, sysfs)
}

/// Whether telling this file's kind apart needs sysfs (devices only).
pub(crate) fn needs_sysfs(node: &Node) -> bool {
    matches!(
        FileType::from_raw_mode(node.mode),
        FileType::BlockDevice | FileType::CharacterDevice
    )
}

/// Classifies a file from what [`Node::of`] said (sysfs for block and character
/// devices).
pub(crate) fn classify_node(node: &Node, sysfs: &Path) -> Result<DescriptorKind, ClassifyError> {
    let kind = match FileType::from_raw_mode(node.mode) {
        FileType::RegularFile => DescriptorKind::RegularFile,
        FileType::BlockDevice => {
            let (major, minor) = (major(node.rdev), minor(node.rdev));
            block_kind(sysfs, major, minor)?
        }
        FileType::CharacterDevice => {
            let (major, minor) = (major(node.rdev), minor(node.rdev));
            if is_sg_char(sysfs, major, minor) {
                DescriptorKind::SgCharDevice
            } else {
                DescriptorKind::Other(OtherKind::CharDevice { major, minor })
            }
        }
        FileType::Fifo => DescriptorKind::Other(OtherKind::Pipe),
        FileType::Socket => DescriptorKind::Other(OtherKind::Socket),
        FileType::Directory => DescriptorKind::Other(OtherKind::Directory),
        FileType::Symlink => DescriptorKind::Other(OtherKind::Symlink),
        FileType::Unknown => DescriptorKind::Other(OtherKind::Unknown),
    };
    Ok(kind)
}

/// Whole disk or partition: `/sys/dev/block/MAJ:MIN/partition` exists only
/// for partitions. The device directory itself must exist, otherwise we
/// cannot tell and refuse to guess.
fn block_kind(sysfs: &Path, major: u32, minor: u32) -> Result<DescriptorKind, ClassifyError> {
    let dir = sysfs.join("dev/block").join(format!("{major}:{minor}"));
    let sysfs_error = |path: PathBuf, source| ClassifyError::BlockSysfs {
        path,
        major,
        minor,
        source,
    };
    std::fs::metadata(&dir).map_err(|e| sysfs_error(dir.clone(), e))?;
    let partition = dir.join("partition");
    match std::fs::metadata(&partition) {
        Ok(_) => Ok(DescriptorKind::Partition),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if !dir.join("dm").exists() || dm_maps_whole_devices(&dir) {
                Ok(DescriptorKind::WholeBlockDevice)
            } else {
                Ok(DescriptorKind::PartialDeviceMapper)
            }
        }
        Err(e) => Err(sysfs_error(partition, e)),
    }
}

/// The rule the kernel applies to a device-mapper SG_IO from a caller without
/// CAP_SYS_RAWIO, which we hold and so must apply ourselves: the device maps the
/// whole of what is under it. Every device in its `slaves/` must be a whole disk
/// (neither a partition nor another dm device) of exactly its size; a multipath map
/// has several such paths, a dm-linear slice or an LVM volume fails. Whatever cannot
/// be read counts as partial.
fn dm_maps_whole_devices(dir: &Path) -> bool {
    let Some(size) = sectors(dir) else {
        return false;
    };
    let Ok(slaves) = std::fs::read_dir(dir.join("slaves")) else {
        return false;
    };
    let mut any = false;
    for slave in slaves {
        let Ok(slave) = slave else {
            return false;
        };
        // A link into /sys/devices/.../block/NAME: attributes are read through it.
        let below = slave.path();
        let whole_disk = !below.join("partition").exists() && !below.join("dm").exists();
        if !whole_disk || sectors(&below) != Some(size) {
            return false;
        }
        any = true;
    }
    any
}

/// A block device's size in 512-byte sectors, from its sysfs `size` attribute.
fn sectors(dir: &Path) -> Option<u64> {
    std::fs::read_to_string(dir.join("size"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// An sg device has major 21; sysfs confirms it through the device's
/// `subsystem` link, which names `scsi_generic` (also covers a kernel that
/// numbers sg differently).
fn is_sg_char(sysfs: &Path, major: u32, minor: u32) -> bool {
    if major == SG_MAJOR {
        return true;
    }
    let link = sysfs
        .join("dev/char")
        .join(format!("{major}:{minor}"))
        .join("subsystem");
    std::fs::read_link(link)
        .ok()
        .and_then(|target| target.file_name().map(|name| name == "scsi_generic"))
        .unwrap_or(false)
}
