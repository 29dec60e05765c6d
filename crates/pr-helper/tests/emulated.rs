//! The emulated backend through the real daemon: `pr-helper --emulated-state-dir DIR`,
//! real sockets, real image-file descriptors, several peer processes, SIGKILL.
//!
//! A peer process is an initiator, so tests that need a second initiator run a
//! command in a child process: this test binary again, running only
//! [`peer_process_entry`] with the request in its environment.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pr_target::{LogicalUnit, PrOutAction, build};
use pr_testkit::cdb::padded;
use pr_testkit::descriptors::open_read_write;
use pr_testkit::{Daemon, DaemonOptions, RawClient, WireResponse};
use rustix::process::Signal;

const GOOD: i32 = 0x00;
const CHECK_CONDITION: i32 = 0x02;
const RESERVATION_CONFLICT: i32 = 0x18;
const EXCLUSIVE_ACCESS: u8 = 0x3;

/// Environment of a peer child: socket, image, CDB (hex), parameter list (hex).
const PEER_SOCKET: &str = "PR_EMULATED_TEST_PEER_SOCKET";
const PEER_IMAGE: &str = "PR_EMULATED_TEST_PEER_IMAGE";
const PEER_CDB: &str = "PR_EMULATED_TEST_PEER_CDB";
const PEER_LIST: &str = "PR_EMULATED_TEST_PEER_LIST";
const PEER_RESULT: &str = "PEER_RESULT";

fn start(state_dir: &Path) -> Daemon {
    try_start(state_dir).expect("pr-helper starts with --emulated-state-dir")
}

fn try_start(state_dir: &Path) -> std::io::Result<Daemon> {
    Daemon::start_with(
        DaemonOptions::new(env!("CARGO_BIN_EXE_pr-helper"))
            .args(["--emulated-state-dir".as_ref(), state_dir.as_os_str()]),
    )
}

fn new_image() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    file.as_file().set_len(1 << 20).unwrap();
    file
}

fn call(client: &mut RawClient, image: &File, cdb: &[u8], list: &[u8]) -> WireResponse {
    client.call(&padded(cdb), image.as_fd(), list).unwrap()
}

fn keys_of(response: &WireResponse) -> Vec<u64> {
    assert_eq!(response.status, GOOD);
    response.data[8..]
        .chunks_exact(8)
        .map(|k| u64::from_be_bytes(k.try_into().unwrap()))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Runs one command from a separate process (another initiator); returns its status
/// and payload.
fn from_other_process(daemon: &Daemon, image: &Path, cdb: &[u8], list: &[u8]) -> (i32, Vec<u8>) {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "peer_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PEER_SOCKET, daemon.socket())
        .env(PEER_IMAGE, image)
        .env(PEER_CDB, hex(cdb))
        .env(PEER_LIST, hex(list))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once(PEER_RESULT).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("peer printed no result: {stdout}"));
    let mut fields = line.split_whitespace();
    let status = fields.next().unwrap().parse().unwrap();
    (status, unhex(fields.next().unwrap_or("")))
}

/// The child side of [`from_other_process`]; does nothing in a normal test run.
#[test]
fn peer_process_entry() {
    let Ok(socket) = std::env::var(PEER_SOCKET) else {
        return;
    };
    let image = open_read_write(Path::new(&std::env::var(PEER_IMAGE).unwrap())).unwrap();
    let cdb = unhex(&std::env::var(PEER_CDB).unwrap());
    let list = unhex(&std::env::var(PEER_LIST).unwrap());
    let mut client = RawClient::connect(Path::new(&socket)).unwrap();
    client.handshake().unwrap();
    let response = call(&mut client, &image, &cdb, &list);
    println!("{PEER_RESULT} {} {}", response.status, hex(&response.data));
}

#[test]
fn register_reserve_and_read_keys_on_an_image_file_through_the_socket() {
    let state = tempfile::tempdir().unwrap();
    let daemon = start(state.path());
    let image = new_image();
    let fd = open_read_write(image.path()).unwrap();
    let mut client = daemon.client().unwrap();

    let (cdb, list) = build::register(0, 0x1234, false);
    assert_eq!(call(&mut client, &fd, &cdb, &list).status, GOOD);
    let (cdb, list) = build::reserve(0x1234, EXCLUSIVE_ACCESS);
    assert_eq!(call(&mut client, &fd, &cdb, &list).status, GOOD);

    let keys = call(&mut client, &fd, &build::read_keys(512), &[]);
    assert_eq!(keys.size, 16);
    assert_eq!(keys.data[0..4], 1u32.to_be_bytes(), "generation");
    assert_eq!(keys_of(&keys), vec![0x1234]);

    let rr = call(
        &mut client,
        &fd,
        &build::pr_in(pr_target::PrInAction::ReadReservation, 512),
        &[],
    );
    assert_eq!(rr.status, GOOD);
    assert_eq!(rr.data[8..16], 0x1234u64.to_be_bytes());
    assert_eq!(rr.data[21], EXCLUSIVE_ACCESS);

    // A second descriptor on the same file (another open) is the same logical unit.
    let again = open_read_write(image.path()).unwrap();
    assert_eq!(
        keys_of(&call(&mut client, &again, &build::read_keys(512), &[])),
        vec![0x1234]
    );
    // Another image is another logical unit.
    let other = new_image();
    let other_fd = open_read_write(other.path()).unwrap();
    assert_eq!(
        keys_of(&call(&mut client, &other_fd, &build::read_keys(512), &[])),
        Vec::<u64>::new()
    );
}

#[test]
fn refusals_come_back_with_status_and_fixed_format_sense() {
    let state = tempfile::tempdir().unwrap();
    let daemon = start(state.path());
    let image = new_image();
    let fd = open_read_write(image.path()).unwrap();
    let mut client = daemon.client().unwrap();

    // RESERVE from an unregistered initiator: RESERVATION CONFLICT.
    let (cdb, list) = build::reserve(0, EXCLUSIVE_ACCESS);
    let response = call(&mut client, &fd, &cdb, &list);
    assert_eq!((response.status, response.size), (RESERVATION_CONFLICT, 0));

    // A 28-byte list without SPEC_I_PT: PARAMETER LIST LENGTH ERROR.
    let cdb = build::pr_out(PrOutAction::Register, 0, 28);
    let response = call(&mut client, &fd, &cdb, &[0; 28]);
    assert!(
        response.is_check_condition(0x05, 0x1A, 0x00),
        "{response:?}"
    );

    // RESERVE with reserved TYPE 2: INVALID FIELD IN CDB.
    let (cdb, list) = build::register(0, 5, false);
    assert_eq!(call(&mut client, &fd, &cdb, &list).status, GOOD);
    let (cdb, list) = build::reserve(5, 0x2);
    let response = call(&mut client, &fd, &cdb, &list);
    assert!(
        response.is_check_condition(0x05, 0x24, 0x00),
        "{response:?}"
    );
    assert_eq!(response.status, CHECK_CONDITION);
}

#[test]
fn two_peer_processes_are_two_initiators_and_see_conflicts() {
    let state = tempfile::tempdir().unwrap();
    let daemon = start(state.path());
    let image = new_image();
    let fd = open_read_write(image.path()).unwrap();
    let mut client = daemon.client().unwrap();

    // This process registers 0xA and holds Exclusive Access.
    let (cdb, list) = build::register(0, 0xA, false);
    assert_eq!(call(&mut client, &fd, &cdb, &list).status, GOOD);
    let (cdb, list) = build::reserve(0xA, EXCLUSIVE_ACCESS);
    assert_eq!(call(&mut client, &fd, &cdb, &list).status, GOOD);

    // Another process is not registered: its RESERVE conflicts, its REGISTER with a
    // non-zero reservation key conflicts, its READ KEYS sees our key.
    let (cdb, list) = build::reserve(0xA, EXCLUSIVE_ACCESS);
    assert_eq!(
        from_other_process(&daemon, image.path(), &cdb, &list).0,
        RESERVATION_CONFLICT
    );
    let (cdb, list) = build::register(0xA, 0xB, false);
    assert_eq!(
        from_other_process(&daemon, image.path(), &cdb, &list).0,
        RESERVATION_CONFLICT
    );
    let (status, data) = from_other_process(&daemon, image.path(), &build::read_keys(512), &[]);
    assert_eq!(status, GOOD);
    assert_eq!(data[8..], 0xAu64.to_be_bytes());

    // A third process registers 0xB (a new initiator), and our connection sees both keys.
    let (cdb, list) = build::register(0, 0xB, false);
    assert_eq!(
        from_other_process(&daemon, image.path(), &cdb, &list).0,
        GOOD
    );
    assert_eq!(
        keys_of(&call(&mut client, &fd, &build::read_keys(512), &[])),
        vec![0xA, 0xB]
    );

    // A second connection from this process is the same initiator: it may release.
    let mut second = daemon.client().unwrap();
    let (cdb, list) = build::out_command(
        PrOutAction::Release,
        EXCLUSIVE_ACCESS,
        0xA,
        0,
        Default::default(),
    );
    assert_eq!(call(&mut second, &fd, &cdb, &list).status, GOOD);
    let rr = call(
        &mut client,
        &fd,
        &build::pr_in(pr_target::PrInAction::ReadReservation, 64),
        &[],
    );
    assert_eq!(rr.data[4..8], [0, 0, 0, 0], "no reservation left");
}

#[test]
fn a_second_daemon_on_the_same_state_directory_refuses_to_start() {
    let state = tempfile::tempdir().unwrap();
    let _first = start(state.path());
    let log = match try_start(state.path()) {
        Err(error) => error.to_string(),
        Ok(mut second) => {
            // It got as far as listening: it must still exit on its own, not serve.
            let mut waited = 0;
            while second.is_running() && waited < 600 {
                std::thread::sleep(Duration::from_millis(100));
                waited += 1;
            }
            assert!(!second.is_running(), "second daemon kept running");
            second.log_text()
        }
    };
    assert!(log.contains("in use by another pr-helper"), "{log}");
}

/// Sends APTPL REGISTERs that change this initiator's key `k` to `k + 1`, counting
/// the acknowledged ones in `acked`, until the connection breaks.
fn register_stream(socket: &Path, image: &Path, first_key: u64, acked: &AtomicU64) {
    let fd = open_read_write(image).unwrap();
    let Ok(mut client) = RawClient::connect(socket) else {
        return;
    };
    if client.handshake().is_err() {
        return;
    }
    let mut key = first_key;
    loop {
        let (cdb, list) = build::register(key, key + 1, true);
        match client.call(&padded(&cdb), fd.as_fd(), &list) {
            Ok(response) if response.status == GOOD => {
                key += 1;
                acked.store(key, Ordering::SeqCst);
            }
            Ok(response) => panic!("REGISTER {key} -> {} refused: {response:?}", key + 1),
            Err(_) => return,
        }
    }
}

#[test]
fn sigkill_during_a_stream_of_aptpl_registers_loses_no_acknowledged_command() {
    let state = tempfile::tempdir().unwrap();
    let image = new_image();
    let mut key = 0u64;
    let mut in_flight_applied = 0;
    for round in 0..10u64 {
        let daemon = start(state.path());
        let acked = Arc::new(AtomicU64::new(key));
        let stream = {
            let (socket, image, acked) = (
                daemon.socket().to_path_buf(),
                image.path().to_path_buf(),
                Arc::clone(&acked),
            );
            std::thread::spawn(move || register_stream(&socket, &image, key, &acked))
        };
        // Kill after a different number of acknowledgements each round.
        let target = key + 5 + 3 * round;
        while acked.load(Ordering::SeqCst) < target {
            assert!(
                !stream.is_finished(),
                "the command stream stopped before the kill"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        daemon.signal(Signal::KILL).unwrap();
        stream.join().unwrap();
        let last_acked = acked.load(Ordering::SeqCst);
        drop(daemon);

        // Never a torn file: every state file parses as a whole unit.
        for entry in std::fs::read_dir(state.path()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("lu-") && name.ends_with(".json") {
                let unit: LogicalUnit = serde_json::from_slice(&std::fs::read(&path).unwrap())
                    .unwrap_or_else(|e| panic!("{name} is torn: {e}"));
                assert!(unit.aptpl());
            }
        }

        // Restart: the key is the last acknowledged one, or the one in flight.
        let daemon = start(state.path());
        let fd = open_read_write(image.path()).unwrap();
        let mut client = daemon.client().unwrap();
        let keys = keys_of(&call(&mut client, &fd, &build::read_keys(512), &[]));
        assert_eq!(keys.len(), 1, "round {round}: {keys:?}");
        assert!(
            keys[0] == last_acked || keys[0] == last_acked + 1,
            "round {round}: restored key {} but {last_acked} was acknowledged",
            keys[0]
        );
        in_flight_applied += usize::from(keys[0] == last_acked + 1);
        key = keys[0];
    }
    eprintln!("the command in flight at the kill was durable in {in_flight_applied} of 10 rounds");
}

#[test]
fn state_without_aptpl_does_not_survive_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let image = new_image();
    {
        let daemon = start(state.path());
        let fd = open_read_write(image.path()).unwrap();
        let mut client = daemon.client().unwrap();
        let (cdb, list) = build::register(0, 0x99, false);
        assert_eq!(call(&mut client, &fd, &cdb, &list).status, GOOD);
    }
    let daemon = start(state.path());
    let fd = open_read_write(image.path()).unwrap();
    let mut client = daemon.client().unwrap();
    assert_eq!(
        keys_of(&call(&mut client, &fd, &build::read_keys(512), &[])),
        Vec::<u64>::new()
    );
}
