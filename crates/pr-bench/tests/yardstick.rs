//! The yardstick against Debian's `qemu-pr-helper`: for the requests the
//! benchmark sends (READ KEYS on a loop device) and a few neighbours, the
//! replies are the same bytes. Needs root and the loop driver (the test
//! set-up provides both) and `/usr/bin/qemu-pr-helper` (scripts/setup.sh).

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use pr_testkit::reference::{HelperProcess, LoopDevice};
use pr_testkit::{RawClient, WireResponse, cdb, descriptors};

/// The yardstick process, killed and reaped when the test ends.
struct Yardstick {
    child: Child,
    socket: PathBuf,
}

impl Yardstick {
    /// Starts `pr-bench yardstick` and waits for its "listening" line,
    /// which it prints once the socket accepts connections.
    fn start(dir: &Path) -> Self {
        let socket = dir.join("yardstick.sock");
        let mut child = Command::new(env!("CARGO_BIN_EXE_pr-bench"))
            .arg("yardstick")
            .arg("-k")
            .arg(&socket)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pr-bench yardstick");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut line = String::new();
        BufReader::new(stderr)
            .read_line(&mut line)
            .expect("read the yardstick's first line");
        assert!(line.contains("listening on"), "{line:?}");
        Self { child, socket }
    }
}

impl Drop for Yardstick {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same requests, in order, on one connection to `socket`.
fn replies(
    socket: &Path,
    requests: &[(&str, [u8; 16], BorrowedFd<'_>, Vec<u8>)],
) -> Vec<WireResponse> {
    let mut client = RawClient::connect(socket).expect("connect");
    client.handshake().expect("handshake");
    requests
        .iter()
        .map(|(name, cdb, fd, data)| {
            client
                .call(cdb, *fd, data)
                .unwrap_or_else(|error| panic!("{name}: {error}"))
        })
        .collect()
}

#[test]
fn replies_are_qemu_pr_helpers_bytes() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let yardstick = Yardstick::start(dir.path());
    let reference = HelperProcess::spawn_reference(dir.path()).expect("start qemu-pr-helper");
    let device = LoopDevice::attach(1 << 20).expect("a loop device (root and the loop driver)");
    let loop_rw = OpenOptions::new()
        .read(true)
        .write(true)
        .open(device.path())
        .expect("open the loop device");
    let file = descriptors::regular_file(4096).expect("regular file");
    let (read_only, _backing) = descriptors::read_only_file().expect("read-only file");
    let requests = [
        (
            "READ KEYS on the loop device",
            cdb::read_keys(1024),
            loop_rw.as_fd(),
            Vec::new(),
        ),
        (
            "READ KEYS, 8 bytes",
            cdb::read_keys(8),
            loop_rw.as_fd(),
            Vec::new(),
        ),
        (
            "REGISTER on the loop device",
            cdb::register(24),
            loop_rw.as_fd(),
            cdb::register_params(0x1234),
        ),
        (
            "READ KEYS on a regular file",
            cdb::read_keys(64),
            file.as_file().as_fd(),
            Vec::new(),
        ),
        (
            "REGISTER on a read-only file",
            cdb::register(24),
            read_only.as_fd(),
            cdb::register_params(0x1234),
        ),
    ];
    let theirs = replies(reference.socket(), &requests);
    let ours = replies(&yardstick.socket, &requests);
    for ((name, ..), (mine, reference)) in requests.iter().zip(ours.iter().zip(&theirs)) {
        assert_eq!(mine, reference, "{name}");
    }
    // What the benchmark measures: the loop driver refuses SG_IO (EINVAL),
    // CHECK CONDITION, ILLEGAL REQUEST / INVALID FIELD IN CDB.
    assert_eq!(ours[0].status, 2);
    assert_eq!(ours[0].size, 0);
    assert_eq!(
        &ours[0].sense[..18],
        &[
            0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0
        ]
    );
    assert!(ours[0].sense[18..].iter().all(|&b| b == 0));
}
