//! Classification, access mode and SG_IO on real descriptors of this host:
//! regular files, pipes, sockets, /dev/null, loop devices and a partition
//! of a loop device. Loop devices need root (the test machine runs as root).

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sg_io::{
    AccessMode, DescriptorKind, Direction, OtherKind, SendError, SgIoOutcome, SgIoReport,
    access_mode, classify, send,
};

/// A loop device attached to an image file, detached on drop.
struct Loop {
    dev: PathBuf,
}

impl Loop {
    fn attach(image: &Path, scan_partitions: bool) -> Loop {
        let mut cmd = Command::new("losetup");
        if scan_partitions {
            cmd.arg("-P");
        }
        let out = cmd
            .args(["-f", "--show"])
            .arg(image)
            .output()
            .expect("run losetup");
        assert!(
            out.status.success(),
            "losetup failed (needs root and loop support): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = String::from_utf8(out.stdout).expect("losetup prints a path");
        Loop {
            dev: PathBuf::from(dev.trim()),
        }
    }

    fn name(&self) -> String {
        self.dev.file_name().unwrap().to_string_lossy().into_owned()
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

fn image(dir: &Path, bytes: usize) -> PathBuf {
    let path = dir.join("disk.img");
    let file = File::create(&path).unwrap();
    file.set_len(bytes as u64).unwrap();
    path
}

fn read_pr_in_cdb() -> [u8; 10] {
    // PERSISTENT RESERVE IN, READ KEYS, allocation length 8192.
    [0x5E, 0x00, 0, 0, 0, 0, 0, 0x20, 0x00, 0]
}

fn open_read_write(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

/// [`read_pr_in_cdb`] through SG_IO on `fd`: the report, and the sense buffer.
fn read_keys_through_sg_io(fd: BorrowedFd<'_>) -> (SgIoReport, [u8; 96]) {
    let mut buf = [0u8; 8192];
    let mut sense = [0u8; 96];
    let report = send(
        fd,
        &read_pr_in_cdb(),
        Direction::FromDevice,
        &mut buf,
        &mut sense,
        Duration::from_secs(30),
    )
    .unwrap();
    (report, sense)
}

#[test]
fn regular_file_is_regular_and_sg_io_fails_with_enotty() {
    let dir = tempfile::tempdir().unwrap();
    let path = image(dir.path(), 4096);
    let file = open_read_write(&path);
    assert_eq!(classify(file.as_fd()).unwrap(), DescriptorKind::RegularFile);
    assert_eq!(access_mode(file.as_fd()).unwrap(), AccessMode::ReadWrite);

    let (report, _) = read_keys_through_sg_io(file.as_fd());
    assert_eq!(report.outcome.errno, Some(libc::ENOTTY));
    assert_eq!(report.sense_len, 0);
}

#[test]
fn access_modes_follow_open_flags() {
    let dir = tempfile::tempdir().unwrap();
    let path = image(dir.path(), 512);
    let ro = File::open(&path).unwrap();
    let wo = OpenOptions::new().write(true).open(&path).unwrap();
    assert_eq!(access_mode(ro.as_fd()).unwrap(), AccessMode::ReadOnly);
    assert!(!AccessMode::ReadOnly.can_write());
    assert_eq!(access_mode(wo.as_fd()).unwrap(), AccessMode::WriteOnly);
    assert!(AccessMode::WriteOnly.can_write());
}

#[test]
fn access_mode_does_not_change_flags() {
    let (a, _b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let before = rustix::fs::fcntl_getfl(a.as_fd()).unwrap();
    access_mode(a.as_fd()).unwrap();
    classify(a.as_fd()).unwrap();
    let after = rustix::fs::fcntl_getfl(a.as_fd()).unwrap();
    assert_eq!(before, after);
    assert!(after.contains(rustix::fs::OFlags::NONBLOCK));
}

#[test]
fn pipes_sockets_null_and_directories_are_other() {
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    assert_eq!(
        classify(reader.as_fd()).unwrap(),
        DescriptorKind::Other(OtherKind::Pipe)
    );
    assert_eq!(access_mode(writer.as_fd()).unwrap(), AccessMode::WriteOnly);

    let (sock, _peer) = UnixStream::pair().unwrap();
    assert_eq!(
        classify(sock.as_fd()).unwrap(),
        DescriptorKind::Other(OtherKind::Socket)
    );

    let null = File::open("/dev/null").unwrap();
    let kind = classify(null.as_fd()).unwrap();
    assert_eq!(
        kind,
        DescriptorKind::Other(OtherKind::CharDevice { major: 1, minor: 3 })
    );
    assert!(!kind.accepts_sg_io());
    assert_eq!(kind.to_string(), "char device 1:3");

    let dir = File::open("/").unwrap();
    assert_eq!(
        classify(dir.as_fd()).unwrap(),
        DescriptorKind::Other(OtherKind::Directory)
    );
}

#[test]
fn loop_device_is_whole_block_device_and_fails_sg_io() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), 1 << 20);
    let lo = Loop::attach(&img, false);
    let dev = open_read_write(&lo.dev);
    let kind = classify(dev.as_fd()).unwrap();
    assert_eq!(
        kind,
        DescriptorKind::WholeBlockDevice,
        "{}",
        lo.dev.display()
    );
    assert!(kind.accepts_sg_io());

    // The loop driver is not SCSI: the ioctl fails, and the failure is an
    // outcome, not an error.
    let (report, sense) = read_keys_through_sg_io(dev.as_fd());
    assert!(report.outcome.errno.is_some(), "{report:?}");
    // Written out: EINVAL, no statuses, no sense, nothing transferred (the
    // daemon's tests expect the 05/24/00 reply that this errno maps to).
    assert_eq!(
        report,
        SgIoReport {
            outcome: SgIoOutcome {
                errno: Some(libc::EINVAL),
                host_status: 0,
                driver_status: 0,
                scsi_status: 0,
            },
            resid: 0,
            sense_len: 0,
        }
    );
    assert!(sense.iter().all(|&b| b == 0));
}

#[test]
fn partition_of_loop_device_is_partition() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), 4 << 20);
    let lo = Loop::attach(&img, true);
    // This kernel may have no partition-table parsers; BLKPG (through
    // util-linux's addpart) adds a partition without one: sectors 2048..4095.
    let status = Command::new("addpart")
        .arg(&lo.dev)
        .args(["1", "2048", "2048"])
        .status();
    assert!(
        status.expect("run addpart").success(),
        "addpart failed on {}",
        lo.dev.display()
    );

    // Make our own device node from sysfs rather than waiting for udev.
    let part_name = format!("{}p1", lo.name());
    let sys_dev = format!("/sys/class/block/{part_name}/dev");
    let numbers = std::fs::read_to_string(&sys_dev).unwrap_or_else(|e| {
        panic!(
            "adding a partition to {} produced no {sys_dev}: {e}",
            lo.name()
        )
    });
    let (major, minor) = numbers.trim().split_once(':').unwrap();
    let node = dir.path().join(&part_name);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &node,
        rustix::fs::FileType::BlockDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(major.parse().unwrap(), minor.parse().unwrap()),
    )
    .unwrap();
    let part = File::open(&node).unwrap();
    let kind = classify(part.as_fd()).unwrap();
    assert_eq!(kind, DescriptorKind::Partition);
    assert!(!kind.accepts_sg_io());

    let whole = File::open(&lo.dev).unwrap();
    assert_eq!(
        classify(whole.as_fd()).unwrap(),
        DescriptorKind::WholeBlockDevice
    );
}

#[test]
fn block_device_without_sysfs_entry_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), 1 << 20);
    let lo = Loop::attach(&img, false);
    let dev = File::open(&lo.dev).unwrap();
    let empty_sysfs = tempfile::tempdir().unwrap();
    let err = sg_io::classify_with_sysfs(dev.as_fd(), empty_sysfs.path()).unwrap_err();
    assert!(
        matches!(err, sg_io::ClassifyError::BlockSysfs { .. }),
        "{err}"
    );
}

#[test]
fn sg_char_device_is_recognised_by_major() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("sg-fake");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &node,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(sg_io::SG_MAJOR, 200),
    )
    .unwrap();
    // Opening a missing sg minor fails with ENXIO; O_PATH gives a
    // descriptor on the node itself, which is what classify looks at.
    let fd = rustix::fs::open(&node, rustix::fs::OFlags::PATH, rustix::fs::Mode::empty()).unwrap();
    assert_eq!(classify(fd.as_fd()).unwrap(), DescriptorKind::SgCharDevice);
}

#[test]
fn misuse_is_refused_before_the_ioctl() {
    let null = File::open("/dev/null").unwrap();
    let mut sense = [0u8; 96];
    let mut refused = |cdb: &[u8]| {
        send(
            null.as_fd(),
            cdb,
            Direction::None,
            &mut [],
            &mut sense,
            Duration::from_secs(1),
        )
        .unwrap_err()
    };
    assert_eq!(refused(&[0u8; 17]), SendError::CdbLength(17));
    assert_eq!(refused(&[]), SendError::CdbLength(0));
}

/// A fake sysfs in which the loop device `lo` is a device-mapper device of
/// `size` sectors over `slaves` (name, size in sectors, is a partition).
fn dm_sysfs(lo: &Loop, size: u64, slaves: &[(&str, u64, bool)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let dev = File::open(&lo.dev).unwrap();
    let stat = rustix::fs::fstat(dev.as_fd()).unwrap();
    let number = format!(
        "{}:{}",
        rustix::fs::major(stat.st_rdev),
        rustix::fs::minor(stat.st_rdev)
    );
    let node = root.path().join("dev/block").join(number);
    std::fs::create_dir_all(node.join("dm")).unwrap();
    std::fs::create_dir_all(node.join("slaves")).unwrap();
    std::fs::write(node.join("size"), format!("{size}\n")).unwrap();
    for &(name, sectors, partition) in slaves {
        let below = root.path().join("devices").join(name);
        std::fs::create_dir_all(&below).unwrap();
        std::fs::write(below.join("size"), format!("{sectors}\n")).unwrap();
        if partition {
            std::fs::write(below.join("partition"), "1\n").unwrap();
        }
        std::os::unix::fs::symlink(&below, node.join("slaves").join(name)).unwrap();
    }
    root
}

/// With CAP_SYS_RAWIO the kernel passes SG_IO through any device-mapper
/// device to the disk below: only a map of whole disks is a whole device.
#[test]
fn device_mapper_is_whole_only_when_it_maps_whole_disks() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), 1 << 20);
    let lo = Loop::attach(&img, false);
    let dev = File::open(&lo.dev).unwrap();
    let kind =
        |sysfs: &tempfile::TempDir| sg_io::classify_with_sysfs(dev.as_fd(), sysfs.path()).unwrap();
    let whole = DescriptorKind::WholeBlockDevice;
    let partial = DescriptorKind::PartialDeviceMapper;

    // dm-linear over all of one disk, and a multipath map of two paths.
    assert_eq!(kind(&dm_sysfs(&lo, 2048, &[("sdb", 2048, false)])), whole);
    let paths = [("sdb", 2048, false), ("sdc", 2048, false)];
    assert_eq!(kind(&dm_sysfs(&lo, 2048, &paths)), whole);
    // An LVM volume: part of a disk.
    assert_eq!(kind(&dm_sysfs(&lo, 1024, &[("sdb", 2048, false)])), partial);
    // A concatenation, a map over a partition, a map with nothing below.
    let concat = [("sdb", 2048, false), ("sdc", 1024, false)];
    assert_eq!(kind(&dm_sysfs(&lo, 3072, &concat)), partial);
    assert_eq!(kind(&dm_sysfs(&lo, 2048, &[("sdb1", 2048, true)])), partial);
    assert_eq!(kind(&dm_sysfs(&lo, 2048, &[])), partial);
    assert_eq!(
        partial.to_string(),
        "device-mapper device mapping part of a device"
    );
    assert!(!partial.accepts_sg_io());
}
