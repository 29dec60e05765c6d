//! What the daemon does with each kind of descriptor a peer may send: no ioctl on
//! anything but a whole block device or an sg device, PR OUT refused on a read-only
//! descriptor, the descriptor's flags never changed, every descriptor closed after its
//! response.

use std::os::fd::{AsFd, BorrowedFd};

use pr_testkit::checks::{idle_fd_baseline, wait_for_fd_count};
use pr_testkit::{Daemon, DaemonOptions, WireResponse, cdb, descriptors};
use rustix::fs::OFlags;

fn start() -> (Daemon, usize) {
    let daemon = Daemon::start_with(DaemonOptions::new(env!("CARGO_BIN_EXE_pr-helper")))
        .expect("daemon starts");
    let baseline = idle_fd_baseline(&daemon).expect("baseline");
    (daemon, baseline)
}

/// PR IN READ KEYS and PR OUT REGISTER on `fd`, on one connection.
fn in_and_out(daemon: &Daemon, fd: BorrowedFd<'_>) -> (WireResponse, WireResponse) {
    let mut client = daemon.client().expect("client");
    let pr_in = client.call(&cdb::read_keys(256), fd, &[]).expect("PR IN");
    let pr_out = client
        .call(&cdb::register(24), fd, &cdb::register_params(0x1234))
        .expect("PR OUT");
    (pr_in, pr_out)
}

fn assert_aborted(response: &WireResponse) {
    assert!(
        response.is_check_condition(0x0b, 0x00, 0x06),
        "{response:?}"
    );
}

#[test]
fn non_scsi_descriptors_get_aborted_command_without_an_ioctl() {
    let (daemon, baseline) = start();
    let file = descriptors::regular_file(1 << 20).expect("file");
    let null = descriptors::dev_null().expect("/dev/null");
    let (socket, _peer) = descriptors::socket_pair().expect("socket");
    let (pipe_read, pipe_write) = descriptors::pipe().expect("pipe");
    let kinds: [(&str, BorrowedFd<'_>); 5] = [
        ("regular file", file.as_file().as_fd()),
        ("/dev/null", null.as_fd()),
        ("socket", socket.as_fd()),
        ("pipe read end", pipe_read.as_fd()),
        ("pipe write end", pipe_write.as_fd()),
    ];
    for (name, fd) in kinds {
        let (pr_in, pr_out) = in_and_out(&daemon, fd);
        assert_aborted(&pr_in);
        // The pipe's read end is read-only: PR OUT is refused before anything else.
        if name == "pipe read end" {
            assert!(
                pr_out.is_check_condition(0x05, 0x20, 0x00),
                "{name}: {pr_out:?}"
            );
        } else {
            assert_aborted(&pr_out);
        }
    }
    // The regular file was not written to (no ioctl, no emulation).
    let contents = std::fs::read(file.path()).expect("read back");
    assert!(contents.iter().all(|&b| b == 0));
    wait_for_fd_count(daemon.pid(), baseline).expect("every descriptor closed");
}

#[test]
fn pr_out_on_a_read_only_descriptor_is_refused_but_pr_in_is_not() {
    let (daemon, baseline) = start();
    let (read_only, _backing) = descriptors::read_only_file().expect("read-only file");
    let (pr_in, pr_out) = in_and_out(&daemon, read_only.as_fd());
    assert_aborted(&pr_in);
    assert!(pr_out.is_check_condition(0x05, 0x20, 0x00), "{pr_out:?}");
    // Same reply bytes as Debian's qemu-pr-helper 7.2 (protocol.md, observed replies).
    assert_eq!(
        &pr_out.sense[..18],
        &[
            0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0
        ]
    );
    assert!(pr_out.sense[18..].iter().all(|&b| b == 0));
    assert_eq!(
        &pr_in.sense[..18],
        &[
            0x70, 0, 0x0b, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x00, 0x06, 0, 0, 0, 0
        ]
    );
    wait_for_fd_count(daemon.pid(), baseline).expect("baseline");
}

#[test]
fn the_descriptor_flags_are_never_changed() {
    let (daemon, baseline) = start();
    let (pipe_read, pipe_write) = descriptors::pipe().expect("pipe");
    for fd in [pipe_read.as_fd(), pipe_write.as_fd()] {
        let flags = rustix::fs::fcntl_getfl(fd).expect("getfl") | OFlags::NONBLOCK;
        rustix::fs::fcntl_setfl(fd, flags).expect("setfl");
        let _ = in_and_out(&daemon, fd);
        let after = rustix::fs::fcntl_getfl(fd).expect("getfl");
        assert!(after.contains(OFlags::NONBLOCK), "O_NONBLOCK was cleared");
        assert_eq!(after, flags);
    }
    wait_for_fd_count(daemon.pid(), baseline).expect("baseline");
}

/// What a helper answers when SG_IO fails with EINVAL, as the loop driver fails it:
/// CHECK CONDITION, fixed-format sense ILLEGAL REQUEST / INVALID FIELD IN CDB
/// (05/24/00), the bytes Debian's qemu-pr-helper 7.2 sends (protocol.md's errno table).
const SG_IO_EINVAL_SENSE: [u8; 18] = [
    0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x24, 0x00, 0, 0, 0, 0,
];

#[test]
fn a_loop_device_gets_its_sg_io_and_the_failure_is_mapped() {
    let (daemon, baseline) = start();
    let device = pr_testkit::reference::LoopDevice::attach(1 << 20).expect(
        "a loop device: the tests run as root with the loop driver (scripts/setup.sh loads it)",
    );
    let fd = pr_testkit::descriptors::open_read_write(device.path()).expect("open loop device");
    // The loop driver does not implement SG_IO; the daemon must send it anyway (a whole
    // block device) and map the errno as protocol.md says.
    assert_sg_io_fails_with_einval(fd.as_fd());
    let (pr_in, pr_out) = in_and_out(&daemon, fd.as_fd());
    for response in [&pr_in, &pr_out] {
        assert_eq!(response.status, 2, "{response:?}");
        assert_eq!(response.size, 0);
        assert_eq!(
            &response.sense[..18],
            &SG_IO_EINVAL_SENSE[..],
            "{response:?}"
        );
        assert!(response.sense[18..].iter().all(|&b| b == 0), "{response:?}");
    }
    drop(fd);
    wait_for_fd_count(daemon.pid(), baseline).expect("baseline");
}

/// The premise of the expected bytes: on this kernel SG_IO on `fd` (a loop device or
/// its partition) fails with EINVAL. Asked of the kernel directly, without the daemon.
fn assert_sg_io_fails_with_einval(fd: BorrowedFd<'_>) {
    let cdb = cdb::read_keys(8);
    let mut buffer = [0u8; 8];
    let mut sense = [0u8; 96];
    let report = sg_io::send(
        fd,
        &cdb[..10],
        sg_io::Direction::FromDevice,
        &mut buffer,
        &mut sense,
        std::time::Duration::from_secs(30),
    )
    .expect("SG_IO issued");
    assert_eq!(
        report.outcome.errno,
        Some(libc::EINVAL),
        "the loop driver no longer refuses SG_IO with EINVAL: the expected sense bytes \
         (SG_IO_EINVAL_SENSE) must follow the new errno"
    );
}

/// PR IN and PR OUT on the partition of a partitioned loop device, through a daemon
/// started with `args`.
fn on_a_partition(args: &[&str]) -> (WireResponse, WireResponse) {
    let device = descriptors::PartitionedLoop::attach().expect(
        "a partitioned loop device: the tests run as root with the loop driver \
         (scripts/setup.sh loads it)",
    );
    let daemon = Daemon::start_with(DaemonOptions::new(env!("CARGO_BIN_EXE_pr-helper")).args(args))
        .expect("daemon starts");
    let baseline = idle_fd_baseline(&daemon).expect("baseline");
    let fd = pr_testkit::descriptors::open_read_write(device.partition()).expect("open partition");
    assert_sg_io_fails_with_einval(fd.as_fd());
    let (pr_in, pr_out) = in_and_out(&daemon, fd.as_fd());
    drop(fd);
    wait_for_fd_count(daemon.pid(), baseline).expect("baseline");
    (pr_in, pr_out)
}

#[test]
fn a_partition_is_refused_without_an_ioctl_by_default() {
    let (pr_in, pr_out) = on_a_partition(&[]);
    // The refusal is 0B/00/06; the ioctl would have failed differently (EINVAL on a
    // loop partition: 05/24/00), which shows no ioctl was sent.
    assert_aborted(&pr_in);
    assert_aborted(&pr_out);
    assert_ne!(&pr_in.sense[..18], &SG_IO_EINVAL_SENSE[..]);
}

#[test]
fn allow_partitions_sends_the_sg_io() {
    let (pr_in, pr_out) = on_a_partition(&["--allow-partitions"]);
    for response in [&pr_in, &pr_out] {
        assert_eq!(response.status, 2, "{response:?}");
        assert_eq!(
            &response.sense[..18],
            &SG_IO_EINVAL_SENSE[..],
            "{response:?}"
        );
    }
}
