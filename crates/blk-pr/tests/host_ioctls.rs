//! The ioctl layer against what this host really has: a regular file and a loop
//! device (a block device whose driver has no PR operations). Every call goes to the
//! kernel; the answers are the clear errors and SCSI refusals callers will see on
//! such descriptors. Loop devices need root (the test machines run as root).
//!
//! The real devices (sd through LIO, NVMe through nvmet) are the VM tier's.

use std::fs::File;
use std::os::fd::AsFd;

use blk_pr::{BlkPrError, BlockDevice, NvmeNamespace, PrPath, PrType, ScsiOutcome};
use pr_target::build;
use pr_testkit::reference::LoopDevice;
use scsi::errno;
use scsi::pr::PrInAction;
use scsi::sense::Sense;
use scsi::status::Status;

/// Whether the running kernel has Linux 6.19's IOC_PR_READ_KEYS / _RESERVATION.
fn kernel_has_read_ioctls() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut numbers = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|part| part.parse::<u32>().ok());
    let major = numbers.next().unwrap_or(0);
    let minor = numbers.next().unwrap_or(0);
    (major, minor) >= (6, 19)
}

fn open_loop() -> (LoopDevice, File) {
    let device = LoopDevice::attach(8 << 20).expect("loop device (needs root and the loop driver)");
    let file = File::options()
        .read(true)
        .write(true)
        .open(device.path())
        .expect("open the loop device read-write");
    (device, file)
}

#[test]
fn a_regular_file_is_named_as_no_block_device_by_every_pr_ioctl() {
    let file = tempfile::tempfile().expect("temporary file");
    let device = BlockDevice::new(file.as_fd());
    let results = [
        device.register(0, 0xA1, false),
        device.reserve(0xA1, PrType::WriteExclusive),
        device.release(0xA1, PrType::WriteExclusive),
        device.preempt(0xA1, 0xB2, PrType::ExclusiveAccess, true),
        device.clear(0xA1),
    ];
    for result in results {
        let error = result.expect_err("a regular file has no PR ioctls");
        assert!(
            matches!(error, BlkPrError::NotABlockDevice { .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("give the disk's block device"),
            "{error}"
        );
    }
    let keys = device.read_keys().expect_err("no keys from a regular file");
    assert!(
        matches!(
            keys,
            BlkPrError::NotABlockDevice {
                op: "IOC_PR_READ_KEYS"
            }
        ),
        "{keys}"
    );
    let reservation = device
        .read_reservation()
        .expect_err("no reservation either");
    assert!(
        matches!(reservation, BlkPrError::NotABlockDevice { .. }),
        "{reservation}"
    );
    assert_eq!(blk_pr::probe(file.as_fd()), PrPath::BlockIoctls);
    let nvme = NvmeNamespace::open(file.as_fd()).expect_err("not NVMe");
    assert!(matches!(nvme, BlkPrError::NotNvme { .. }), "{nvme}");
    assert!(nvme.to_string().contains("/dev/nvmeXnY"), "{nvme}");
}

#[test]
fn a_regular_file_gets_the_failed_ioctl_answer_for_scsi_commands() {
    let file = tempfile::tempfile().expect("temporary file");
    let (cdb, list) = build::register(0, 0xA1, false);
    let answer = blk_pr::execute_scsi_pr(file.as_fd(), &cdb, &list);
    assert_eq!(answer, ScsiOutcome::transport_failure(errno::ENOTTY));
    assert_eq!(
        answer.sense_fixed().unwrap()[..14],
        Sense::IO_PROCESS_TERMINATED.fixed_bytes()[..14]
    );
    let answer = blk_pr::execute_scsi_pr(file.as_fd(), &build::read_keys(64), &[]);
    assert!(answer.is_transport_failure());
}

#[test]
fn a_loop_device_has_no_pr_operations_and_says_so() {
    let (_device, file) = open_loop();
    let device = BlockDevice::new(file.as_fd());
    let results = [
        device.register(0, 0xA1, false),
        device.register(0, 0xA1, true),
        device.reserve(0xA1, PrType::WriteExclusiveRegOnly),
        device.release(0xA1, PrType::WriteExclusiveRegOnly),
        device.preempt(0xA1, 0xB2, PrType::ExclusiveAccess, false),
        device.preempt(0xA1, 0xB2, PrType::ExclusiveAccess, true),
        device.clear(0xA1),
    ];
    for result in results {
        let error = result.expect_err("the loop driver has no pr_ops");
        assert!(matches!(error, BlkPrError::NotSupported { .. }), "{error}");
        assert!(error.to_string().contains("EOPNOTSUPP"), "{error}");
    }
    for read in [
        device.read_keys().map(|_| ()),
        device.read_reservation().map(|_| ()),
    ] {
        let error = read.expect_err("nothing to read on a loop device");
        if kernel_has_read_ioctls() {
            assert!(matches!(error, BlkPrError::NotSupported { .. }), "{error}");
        } else {
            // The kernel predates the read ioctls (the loop driver answers an ioctl
            // it does not know with EINVAL, others with ENOTTY), and a loop device is
            // no NVMe namespace: neither read path exists, and the message says which.
            assert!(
                matches!(
                    error,
                    BlkPrError::NoReadPath {
                        errno: errno::ENOTTY | errno::EINVAL,
                        ..
                    }
                ),
                "{error}"
            );
            assert!(error.to_string().contains("Linux 6.19"), "{error}");
        }
    }
    // The fallback of the combined readers: not NVMe either.
    let combined = blk_pr::read_keys(file.as_fd()).expect_err("no read path");
    assert!(
        matches!(
            combined,
            BlkPrError::NoReadPath { .. } | BlkPrError::NotSupported { .. }
        ),
        "{combined}"
    );
    assert!(blk_pr::read_reservation(file.as_fd()).is_err());
}

#[test]
fn a_loop_device_is_no_nvme_namespace() {
    let (_device, file) = open_loop();
    assert_eq!(blk_pr::probe(file.as_fd()), PrPath::BlockIoctls);
    let error = NvmeNamespace::open(file.as_fd()).expect_err("NVME_IOCTL_ID on a loop device");
    match &error {
        BlkPrError::NotNvme { source, .. } => {
            // The loop driver answers ioctls it does not know with EINVAL.
            let code = source.raw_os_error();
            assert!(
                matches!(code, Some(errno::ENOTTY | errno::EINVAL)),
                "{error}"
            );
        }
        other => panic!("{other}"),
    }
}

#[test]
fn scsi_commands_on_a_loop_device_are_refused_as_a_device_without_them() {
    let (_device, file) = open_loop();
    let fd = file.as_fd();
    let no_pr = ScsiOutcome::check(Sense::INVALID_COMMAND_OPERATION_CODE);
    let (cdb, list) = build::register(0, 0xA1, false);
    assert_eq!(blk_pr::execute_scsi_pr(fd, &cdb, &list), no_pr);
    let (cdb, list) = build::reserve(0xA1, 0x5);
    assert_eq!(blk_pr::execute_scsi_pr(fd, &cdb, &list), no_pr);
    let read = blk_pr::execute_scsi_pr(fd, &build::read_keys(64), &[]);
    if kernel_has_read_ioctls() {
        assert_eq!(read, no_pr);
    } else {
        // No IOC_PR_READ_KEYS: the service action is not there.
        assert_eq!(read, ScsiOutcome::check(Sense::INVALID_FIELD_IN_CDB));
    }
    // What the kernel's operations cannot carry never reaches them.
    let caps = blk_pr::execute_scsi_pr(fd, &build::pr_in(PrInAction::ReportCapabilities, 8), &[]);
    assert_eq!(caps, ScsiOutcome::check(Sense::INVALID_FIELD_IN_CDB));
    let flags = build::Flags {
        all_tg_pt: true,
        ..build::Flags::default()
    };
    let (cdb, list) = build::out_command(pr_target::PrOutAction::Register, 0, 0, 0xA1, flags);
    let refused = blk_pr::execute_scsi_pr(fd, &cdb, &list);
    assert_eq!(
        refused,
        ScsiOutcome::check(Sense::INVALID_FIELD_IN_PARAMETER_LIST)
    );
    assert_eq!(refused.status, Status::CHECK_CONDITION);
}

#[test]
fn nvme_passthrough_on_a_loop_device_fails_cleanly() {
    let (_device, file) = open_loop();
    // Forced onto the NVMe path anyway (a stale cached probe): the block path answers.
    let path = PrPath::Nvme { nsid: 1 };
    let (cdb, list) = build::register(0, 0xA1, false);
    let answer = blk_pr::execute_scsi_pr_on(file.as_fd(), path, &cdb, &list);
    assert_eq!(
        answer,
        ScsiOutcome::check(Sense::INVALID_COMMAND_OPERATION_CODE)
    );
}

#[test]
fn a_partition_is_refused_by_the_kernel_even_for_root() {
    let device = LoopDevice::attach_partitioned(16 << 20).expect("partitioned loop device");
    let partition = File::options()
        .read(true)
        .write(true)
        .open(device.partition())
        .expect("open the partition read-write");
    let error = BlockDevice::new(partition.as_fd())
        .register(0, 0xA1, false)
        .expect_err("no reservations on a partition");
    assert!(
        matches!(
            error,
            BlkPrError::PermissionDenied {
                errno: errno::EPERM,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("not partitions"), "{error}");
}
