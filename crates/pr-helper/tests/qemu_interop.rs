//! Interoperability with the real client: Debian's `qemu-system-x86_64`
//! (7.2) with a `pr-manager-helper` object connected to our `pr-helper`,
//! driven over QMP. The same scenario runs against Debian's
//! `qemu-pr-helper` as a control, so a failure tells whether QEMU or we
//! changed.
//!
//! Scenario: QEMU starts with `-object pr-manager-helper,id=pr0,path=SOCK`
//! (it connects and negotiates at creation, and refuses to start if that
//! fails) and `query-pr-managers` reports `connected: true`. Then the helper
//! is killed (SIGKILL, a crash): QEMU 7.2 keeps reporting `connected: true`
//! (it only notices at the next PR command, and `-M none` has no disk to
//! send one), keeps running, and a new `pr-manager-helper` object cannot be
//! created. The helper is restarted on the same path (its stale socket file
//! still there): a new object connects and reports `connected: true`.
//!
//! `PR_HELPER_BIN` overrides the binary under test (e.g. a release build).

use std::path::{Path, PathBuf};
use std::time::Duration;

use pr_testkit::qmp::Qmp;
use pr_testkit::reference::{self, HelperProcess, QemuProcess};
use serde_json::json;
use tempfile::TempDir;

/// Bounds every wait for QEMU so a wedged one fails the test instead of hanging
/// it. Measures nothing.
const QMP_IO_LIMIT: Duration = Duration::from_secs(60);

fn our_binary() -> PathBuf {
    std::env::var_os("PR_HELPER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pr-helper")))
}

fn require_qemu() {
    assert!(
        reference::qemu_system_available() && reference::qemu_pr_helper_available(),
        "{} or {} is missing: scripts/setup.sh installs qemu-system-x86 and qemu-system-common",
        reference::QEMU_SYSTEM,
        reference::QEMU_PR_HELPER
    );
}

fn managers(entries: &[(&str, bool)]) -> Vec<(String, bool)> {
    entries
        .iter()
        .map(|(id, connected)| ((*id).to_owned(), *connected))
        .collect()
}

/// The scenario of the module comment, with `program` as the helper.
fn connect_kill_restart(program: &Path) {
    require_qemu();
    let dir = TempDir::new().expect("temporary directory");
    let socket = dir.path().join("helper.sock");
    let pidfile = dir.path().join("helper.pid");
    let start_helper = || {
        HelperProcess::spawn(program, &socket, &pidfile, &[])
            .unwrap_or_else(|error| panic!("start {}: {error}", program.display()))
    };

    let mut helper = start_helper();
    let mut qemu = QemuProcess::spawn(&[("pr0", &socket)], &dir.path().join("qmp.sock"))
        .expect("QEMU starts with a pr-manager-helper on the helper's socket");
    let mut qmp = Qmp::connect(qemu.qmp_socket()).expect("QMP session");
    assert_eq!(qmp.pr_managers(), managers(&[("pr0", true)]));

    // A second object means a second connection, negotiated the same way.
    qmp.add_pr_manager("pr1", &socket)
        .expect("a second pr-manager-helper connects");
    assert_eq!(qmp.pr_managers(), managers(&[("pr0", true), ("pr1", true)]));
    qmp.execute("object-del", Some(json!({ "id": "pr1" })))
        .expect("object-del pr1");

    // The helper crashes.
    helper.kill().expect("kill the helper");
    let refused = qmp
        .add_pr_manager("pr2", &socket)
        .expect_err("no helper listens any more");
    let desc = refused["desc"].as_str().unwrap_or_default();
    assert!(desc.contains("connect"), "unexpected error: {refused}");
    // QEMU 7.2 only notices a dead helper at the next PR command.
    assert_eq!(qmp.pr_managers(), managers(&[("pr0", true)]));
    assert!(
        !qemu.has_exited().expect("QEMU status"),
        "QEMU died with the helper"
    );

    // Restarted on the same path, over the stale socket file.
    let _helper = start_helper();
    qmp.add_pr_manager("pr2", &socket)
        .expect("a new pr-manager-helper connects to the restarted helper");
    assert_eq!(qmp.pr_managers(), managers(&[("pr0", true), ("pr2", true)]));

    // QEMU 7.2 emits no status event for any of this; if a later QEMU does,
    // the events must at least name our objects.
    for event in &qmp.events {
        if event["event"] == "PR_MANAGER_STATUS_CHANGED" {
            let id = event["data"]["id"].as_str().unwrap_or_default();
            assert!(
                ["pr0", "pr1", "pr2"].contains(&id),
                "event for {id}: {event}"
            );
        }
    }

    qemu.kill().expect("kill QEMU");
    assert!(qemu.has_exited().expect("QEMU status"));
}

#[test]
fn qemu_connects_to_pr_helper_and_reconnects_after_a_restart() {
    connect_kill_restart(&our_binary());
}

#[test]
fn control_qemu_connects_to_debian_qemu_pr_helper() {
    connect_kill_restart(Path::new(reference::QEMU_PR_HELPER));
}

/// QEMU refuses to start when nothing listens on the helper socket: the
/// failure the two tests above rule out is visible.
#[test]
fn qemu_refuses_to_start_without_a_helper() {
    require_qemu();
    let dir = TempDir::new().expect("temporary directory");
    let missing = dir.path().join("nobody-listens.sock");
    match QemuProcess::spawn(&[("pr0", &missing)], &dir.path().join("qmp.sock")) {
        Err(reference::ReferenceError::ExitedEarly { status, .. }) => {
            assert!(!status.success(), "QEMU exited with {status}");
        }
        Err(other) => panic!("QEMU failed in an unexpected way: {other}"),
        // QMP may accept a connection just before QEMU gives up on the
        // helper: it must still exit on its own.
        Ok(mut qemu) => {
            let guard = std::time::Instant::now();
            while !qemu.has_exited().expect("QEMU status") {
                assert!(
                    guard.elapsed() < QMP_IO_LIMIT,
                    "QEMU keeps running although no helper listens"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
