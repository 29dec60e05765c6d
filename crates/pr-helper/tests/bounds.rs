//! The software target's registration bound through the real daemon: peers
//! that keep registering on one image (each a process of its own, so each a
//! new initiator) fill the unit's table, then get INSUFFICIENT REGISTRATION
//! RESOURCES (05/55/04), and the daemon's memory stays flat while they go on.
//!
//! The children are this test binary again, running only the ignored
//! [`child_registers_once`] with socket, image and key in its environment.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};

use pr_target::{MAX_REGISTRATIONS, build};
use pr_testkit::cdb::padded;
use pr_testkit::descriptors::open_read_write;
use pr_testkit::{Daemon, DaemonOptions, RawClient};

const CHILD_SOCKET: &str = "PR_BOUNDS_TEST_SOCKET";
const CHILD_IMAGE: &str = "PR_BOUNDS_TEST_IMAGE";
const CHILD_KEY: &str = "PR_BOUNDS_TEST_KEY";

#[test]
#[ignore = "run by a_peer_that_keeps_registering_gets_05_55_04_and_memory_stays_flat, in children"]
fn child_registers_once() {
    let socket = std::env::var(CHILD_SOCKET).unwrap();
    let image = open_read_write(Path::new(&std::env::var(CHILD_IMAGE).unwrap())).unwrap();
    let key: u64 = std::env::var(CHILD_KEY).unwrap().parse().unwrap();
    let mut client = RawClient::connect(Path::new(&socket)).unwrap();
    client.handshake().unwrap();
    let (cdb, list) = build::register(0, key, false);
    client
        .send_request(&padded(&cdb), image.as_fd(), &list)
        .unwrap();
    let response = client.read_response().unwrap();
    let answer = if response.status == 0 {
        "good".to_owned()
    } else if response.is_check_condition(0x05, 0x55, 0x04) {
        "insufficient-registration-resources".to_owned()
    } else {
        format!("other {response:?}")
    };
    println!("CHILD-ANSWER {answer}");
}

/// `count` registrations from as many new processes (eight at a time);
/// returns how many got each answer.
fn register_from_new_processes(
    socket: &Path,
    image: &Path,
    first_key: u64,
    count: u64,
) -> Vec<String> {
    let mut answers = Vec::new();
    let keys: Vec<u64> = (first_key..first_key + count).collect();
    for batch in keys.chunks(8) {
        let children: Vec<_> = batch
            .iter()
            .map(|key| {
                Command::new(std::env::current_exe().unwrap())
                    .args([
                        "--exact",
                        "child_registers_once",
                        "--ignored",
                        "--nocapture",
                    ])
                    .env(CHILD_SOCKET, socket)
                    .env(CHILD_IMAGE, image)
                    .env(CHILD_KEY, key.to_string())
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            let answer = text
                .lines()
                .find_map(|line| line.strip_prefix("CHILD-ANSWER "))
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    format!(
                        "no answer: {text}{}",
                        String::from_utf8_lossy(&output.stderr)
                    )
                });
            answers.push(answer);
        }
    }
    answers
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn keys_registered(daemon: &Daemon, image: &File) -> usize {
    let mut client = daemon.client().unwrap();
    client
        .send_request(&padded(&build::read_keys(8192)), image.as_fd(), &[])
        .unwrap();
    let response = client.read_response().unwrap();
    assert_eq!(response.status, 0, "{response:?}");
    let additional = u32::from_be_bytes(response.data[4..8].try_into().unwrap());
    usize::try_from(additional).unwrap() / 8
}

#[test]
fn a_peer_that_keeps_registering_gets_05_55_04_and_memory_stays_flat() {
    const MORE: u64 = 96;
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with(
        DaemonOptions::new(env!("CARGO_BIN_EXE_pr-helper"))
            .args(["--emulated-state-dir".as_ref(), state.path().as_os_str()]),
    )
    .expect("daemon starts");
    let image = tempfile::NamedTempFile::new().unwrap();
    let fd = open_read_write(image.path()).unwrap();
    let socket = daemon.socket().to_owned();
    let table = u64::try_from(MAX_REGISTRATIONS).unwrap();

    // Filling the table: every registration is taken.
    let answers = register_from_new_processes(&socket, image.path(), 1, table);
    assert!(answers.iter().all(|a| a == "good"), "{answers:?}");
    assert_eq!(keys_registered(&daemon, &fd), MAX_REGISTRATIONS);

    // Beyond it: refused, twice as many times, the table unchanged.
    let answers = register_from_new_processes(&socket, image.path(), table + 1, MORE);
    assert!(
        answers
            .iter()
            .all(|a| a == "insufficient-registration-resources"),
        "{answers:?}"
    );
    let settled = resident_kib(daemon.pid());
    let answers = register_from_new_processes(&socket, image.path(), table + MORE + 1, MORE);
    assert!(
        answers
            .iter()
            .all(|a| a == "insufficient-registration-resources"),
        "{answers:?}"
    );
    let after = resident_kib(daemon.pid());
    assert_eq!(keys_registered(&daemon, &fd), MAX_REGISTRATIONS);
    // Each refused peer leaves nothing behind: the resident size after the
    // second round is that after the first, up to allocator noise.
    assert!(
        after <= settled + 512,
        "VmRSS grew from {settled} kB to {after} kB over {MORE} refused registrations"
    );
    println!("VmRSS {settled} kB after the first refused round, {after} kB after the second");
}
