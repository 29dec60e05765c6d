//! The prtool binary against both real helpers (ours and Debian's
//! `qemu-pr-helper`), and with `--direct`: the words and exit codes a user
//! sees for a non-SCSI device and for an unreachable helper; `--help` of
//! every command carries an example.

#[path = "../../pr-manager/tests/common/mod.rs"]
mod common;

mod support;

use common::{Helper, Peer, regular_file};
use support::{prtool, text};

fn non_scsi_device(peer: Peer) {
    let helper = Helper::start(peer);
    let socket = helper.socket();
    let socket = socket.to_str().expect("utf-8 path");
    let file = regular_file();
    let device = file.path().to_str().expect("utf-8 path");
    for command in [
        vec!["read-keys", device],
        vec!["register", "--sa-key", "0x1", device],
    ] {
        let mut args = vec!["--socket", socket];
        args.extend(&command);
        let out = prtool(&args);
        assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("CHECK CONDITION")
                && stderr.contains("ABORTED COMMAND: I/O PROCESS TERMINATED"),
            "{stderr}"
        );
        args.insert(0, "--json");
        let out = prtool(&args);
        assert_eq!(out.status.code(), Some(4));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(json["outcome"], "scsi-error");
        assert_eq!(
            json["sense"]["text"],
            "ABORTED COMMAND: I/O PROCESS TERMINATED"
        );
        assert_eq!(json["sense"]["ascq"], 6);
    }
}

fn helper_down_is_transport_failure(peer: Peer) {
    let mut helper = Helper::start(peer);
    helper.stop();
    let socket = helper.socket();
    let file = regular_file();
    let out = prtool(&[
        "--socket",
        socket.to_str().expect("utf-8"),
        "--connect-attempts",
        "2",
        "--retry-interval-ms",
        "10",
        "read-reservation",
        file.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(5));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("ABORTED COMMAND: LOGICAL UNIT COMMUNICATION FAILURE")
            && stderr.contains("after 2 attempt(s)"),
        "{stderr}"
    );
}

#[test]
fn ours_non_scsi_device() {
    non_scsi_device(Peer::Ours);
}

#[test]
fn debian_non_scsi_device() {
    non_scsi_device(Peer::Debian);
}

#[test]
fn ours_helper_down_is_transport_failure() {
    helper_down_is_transport_failure(Peer::Ours);
}

#[test]
fn debian_helper_down_is_transport_failure() {
    helper_down_is_transport_failure(Peer::Debian);
}

#[test]
fn direct_on_a_regular_file_maps_like_the_helper() {
    let file = regular_file();
    let out = prtool(&[
        "--direct",
        "read-keys",
        file.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stderr).contains("ABORTED COMMAND: I/O PROCESS TERMINATED"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["reserve", "--key", "1", "--type", "shared", "/dev/null"],
        vec!["register", "/dev/null"],
        vec![
            "register-move",
            "--key",
            "1",
            "--sa-key",
            "2",
            "--type",
            "we",
            "--transport-id",
            "usb:1",
            "/dev/null",
        ],
        vec!["--direct", "--socket", "x", "read-keys", "/dev/null"],
        vec!["frobnicate"],
    ] {
        assert_eq!(prtool(&args).status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn every_command_has_help_with_an_example() {
    for command in [
        "read-keys",
        "read-reservation",
        "report-capabilities",
        "read-full-status",
        "register",
        "register-ignore",
        "reserve",
        "release",
        "clear",
        "preempt",
        "preempt-abort",
        "register-move",
    ] {
        let out = prtool(&[command, "--help"]);
        assert_eq!(out.status.code(), Some(0));
        let help = text(&out.stdout);
        assert!(
            help.contains("Example:")
                && (help.contains(&format!("prtool {command}"))
                    || help.contains(&format!("prtool --json {command}"))),
            "{command}: {help}"
        );
    }
    let top = text(&prtool(&["--help"]).stdout);
    assert!(top.contains("3 reservation conflict") && top.contains("5 transport failure"));
}
