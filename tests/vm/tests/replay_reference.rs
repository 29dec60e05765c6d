//! pr-replay against Debian's qemu-pr-helper on the host, with descriptors
//! that need no SCSI device: the tool the VM tier's differential scenario
//! relies on must frame requests and read replies exactly.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const REFERENCE: &str = "/usr/bin/qemu-pr-helper";

struct Helper {
    child: Child,
    dir: PathBuf,
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_reference(name: &str) -> (Helper, PathBuf) {
    let dir = std::env::temp_dir().join(format!("pr-replay-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("helper.sock");
    let child = Command::new(REFERENCE)
        .arg("-k")
        .arg(&socket)
        .arg("-f")
        .arg(dir.join("helper.pid"))
        .spawn()
        .expect("Debian's qemu-pr-helper (package qemu-system-common; scripts/setup.sh)");
    // Readiness wait, not a measurement.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "qemu-pr-helper did not create its socket"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (Helper { child, dir }, socket)
}

fn replay(socket: &Path, stream: &str, dir: &Path) -> String {
    let stream_file = dir.join("stream");
    std::fs::write(&stream_file, stream).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_pr-replay"))
        .arg(socket)
        .arg(&stream_file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pr-replay failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// status, size, and the fixed-format sense of `key/asc/ascq` padded to 96 bytes.
fn check_condition(key: &str, asc: &str, ascq: &str) -> String {
    let sense = format!("7000{key}000000000a00000000{asc}{ascq}");
    format!("00000002 00000000 {sense:0<192} ")
}

#[test]
fn replies_and_closes_match_the_reference_byte_for_byte() {
    let (helper, socket) = start_reference("bytes");
    let dir = helper.dir.clone();
    let read_only = dir.join("read-only");
    std::fs::write(&read_only, b"").unwrap();
    let stream = format!(
        "in-dev-null rw /dev/null 5e000000000000200000\n\
         out-read-only ro {} 5f000000000000001800 000000000000000000000000000000110000000000000000\n\
         no-descriptor none /dev/null 5e000000000000200000\n\
         after-reconnect rw /dev/null 5e000000000000200000\n\
         bad-opcode rw /dev/null 12000000600000000000\n",
        read_only.display()
    );
    let output = replay(&socket, &stream, &dir);
    let lines: Vec<&str> = output.lines().collect();
    let aborted = check_condition("0b", "00", "06");
    let invalid_opcode = check_condition("05", "20", "00");
    assert_eq!(
        lines,
        vec![
            format!("in-dev-null reply {aborted}"),
            format!("out-read-only reply {invalid_opcode}"),
            "no-descriptor closed".to_owned(),
            format!("after-reconnect reply {aborted}"),
            "bad-opcode closed".to_owned(),
        ]
    );
}
