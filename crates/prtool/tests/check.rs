//! `prtool check` against the real helpers on this host: our `pr-helper`
//! (its software target on image files, and with it off), Debian's
//! `qemu-pr-helper`, loop devices (not PR devices), a socket that is missing,
//! closed to a user, or left behind by a helper that was killed. Every case
//! checks the exit code, the text line and the JSON finding.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use pr_manager::{Client, Config, PrOutCommand, RegisterOptions};
use pr_testkit::reference::{LoopDevice, QEMU_PR_HELPER};
use pr_testkit::{Daemon, DaemonOptions};
use serde_json::Value;
use support::{prtool, text};

/// `prtool --socket S check ARGS...` in text and in JSON: the exit code (the
/// same for both), the text and the JSON object.
fn check(socket: &Path, args: &[&str]) -> (i32, String, Value) {
    let socket = socket.to_str().expect("utf-8");
    let mut line = vec!["--socket", socket, "--connect-attempts", "1", "check"];
    line.extend(args);
    let out = prtool(&line);
    let code = out.status.code().expect("exit code");
    let human = text(&out.stdout);
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let mut json_line = vec!["--json"];
    json_line.extend(&line);
    let out = prtool(&json_line);
    assert_eq!(
        out.status.code(),
        Some(code),
        "text and JSON agree on the exit code"
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(json["schema"], 1);
    assert_eq!(json["command"], "check");
    assert_eq!(json["exit_code"], code);
    (code, human, json)
}

/// The JSON finding with `code` (exactly one).
fn finding<'a>(json: &'a Value, code: &str) -> &'a Value {
    let found: Vec<&Value> = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["code"] == code)
        .collect();
    assert_eq!(found.len(), 1, "{code} in {json:#}");
    found[0]
}

fn has_line(human: &str, severity: &str, code: &str) -> bool {
    human
        .lines()
        .any(|l| l.starts_with(severity) && l.contains(&format!(" {code}: ")))
}

/// Debian's qemu-pr-helper on `DIR/q.sock`, pid file `DIR/q.pid`.
fn debian_helper() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    pr_testkit::reference::HelperProcess,
) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("q.sock");
    let helper = pr_testkit::reference::HelperProcess::spawn(
        Path::new(QEMU_PR_HELPER),
        &socket,
        &dir.path().join("q.pid"),
        &[],
    )
    .expect("start qemu-pr-helper");
    (dir, socket, helper)
}

fn emulated() -> (Daemon, tempfile::TempDir) {
    emulated_with(&[])
}

/// Our helper with its software target (state in the returned directory) and
/// `extra` options.
fn emulated_with(extra: &[&str]) -> (Daemon, tempfile::TempDir) {
    let state = tempfile::tempdir().expect("state directory");
    let daemon = Daemon::start_with(
        DaemonOptions::default()
            .args([
                "--emulated-state-dir",
                state.path().to_str().expect("utf-8"),
            ])
            .args(extra.iter().copied()),
    )
    .expect("start pr-helper");
    (daemon, state)
}

fn image(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, vec![0u8; 4096]).expect("image file");
    path.to_str().expect("utf-8").to_owned()
}

#[test]
fn an_empty_image_on_the_software_target_is_ready() {
    let (daemon, _state) = emulated();
    let disk = image(daemon.dir(), "disk.img");
    let (code, human, json) = check(daemon.socket(), &[&disk]);
    assert_eq!(code, 0, "{human}");
    assert!(
        human.starts_with(&format!("{disk}: READY for cluster reservations")),
        "{human}"
    );
    assert_eq!(json["verdict"], "ready");
    assert_eq!(json["outcome"], "ready");
    assert_eq!(json["facts"]["device"]["kind"], "image-file");
    assert_eq!(json["facts"]["device"]["source"], "helper");
    let process = &json["facts"]["helper"]["process"];
    assert_eq!(process["program"], "pr-helper");
    assert_eq!(process["pid"], daemon.pid());
    assert_eq!(process["multipath"], true);
    assert!(
        process["version"]
            .as_str()
            .unwrap()
            .starts_with("pr-helper ")
    );
    assert_eq!(
        process["seccomp"], 2,
        "the daemon runs under its seccomp filter"
    );
    assert!(
        finding(&json, "helper-process")["summary"]
            .as_str()
            .unwrap()
            .contains("software target on")
    );
    for code in [
        "handshake",
        "socket-access",
        "helper-read-keys",
        "capabilities",
    ] {
        assert_eq!(finding(&json, code)["severity"], "ok");
    }
    assert!(has_line(&human, "note", "image-file"), "{human}");
}

#[test]
fn an_image_with_registrations_live_and_stale() {
    let (daemon, _state) = emulated();
    let disk = image(daemon.dir(), "disk.img");
    // A registration by a prtool process that has exited since.
    let out = prtool(&[
        "--socket",
        daemon.socket().to_str().unwrap(),
        "register",
        "--sa-key",
        "0xdead",
        &disk,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // And one by this (live) test process.
    let client = Client::new(Config::new(daemon.socket()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&disk)
        .unwrap();
    client
        .pr_out(
            std::os::fd::AsFd::as_fd(&file),
            &PrOutCommand::register(0, 0xbeef, RegisterOptions::default()),
        )
        .expect("register 0xbeef");

    let (code, human, json) = check(daemon.socket(), &[&disk]);
    assert_eq!(code, 2, "degraded: {human}");
    assert!(human.starts_with(&format!("{disk}: DEGRADED")), "{human}");
    let stale = finding(&json, "stale-registration");
    assert_eq!(stale["severity"], "degraded");
    assert!(
        stale["summary"].as_str().unwrap().contains("key 0xdead"),
        "{stale}"
    );
    assert!(
        stale["summary"]
            .as_str()
            .unwrap()
            .contains("which has exited")
    );
    assert!(stale["fix"].is_string());
    let live = finding(&json, "emulated-registration");
    let own = format!("(pid {})", std::process::id());
    assert!(live["summary"].as_str().unwrap().contains(&own), "{live}");
    let registrants = json["facts"]["device"]["full_status"]["registrants"]
        .as_array()
        .unwrap();
    assert_eq!(registrants.len(), 2);
    assert!(
        has_line(&human, "degraded", "stale-registration"),
        "{human}"
    );

    // The write test refuses: this host has registrations there.
    let (code, _, json) = check(daemon.socket(), &["--write-test", &disk]);
    assert_eq!(code, 2);
    let refused = finding(&json, "write-test-refused");
    assert!(
        refused["summary"]
            .as_str()
            .unwrap()
            .contains("registration on the device already")
    );
    assert_eq!(json["facts"]["write_test"]["ran"], false);
}

#[test]
fn the_write_test_leaves_an_image_as_it_found_it() {
    let (daemon, _state) = emulated();
    let disk = image(daemon.dir(), "disk.img");
    let socket = daemon.socket().to_str().unwrap();
    let before = prtool(&["--socket", socket, "--json", "read-full-status", &disk]);
    let (code, human, json) = check(daemon.socket(), &["--write-test", &disk]);
    assert_eq!(code, 0, "{human}");
    let test = &json["facts"]["write_test"];
    assert_eq!(test["ran"], true);
    assert_eq!(test["left_as_found"], true);
    assert_eq!(test["route"], "the helper");
    let steps: Vec<&str> = test["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["ok"], true, "{s}");
            s["step"].as_str().unwrap()
        })
        .collect();
    assert_eq!(steps.len(), 6, "{steps:?}");
    assert!(steps[0].starts_with("register 0x70727463"));
    assert_eq!(steps[2], "reserve we-ro");
    assert_eq!(steps[5], "unregister");
    finding(&json, "write-test-left-as-found");
    let after = prtool(&["--socket", socket, "--json", "read-full-status", &disk]);
    let registrants = |out: &Output| {
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["data"]["registrants"].clone()
    };
    assert_eq!(registrants(&before), registrants(&after));
    assert_eq!(registrants(&after), Value::Array(vec![]));
}

#[test]
fn the_socket_missing() {
    let dir = tempfile::tempdir().unwrap();
    let disk = image(dir.path(), "disk.img");
    let (code, human, json) = check(&dir.path().join("none.sock"), &[&disk]);
    assert_eq!(code, 1, "{human}");
    assert!(human.contains("NOT READY"), "{human}");
    let f = finding(&json, "socket-missing");
    assert_eq!(f["severity"], "not-ready");
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("systemctl enable --now pr-helper.socket")
    );
    assert_eq!(json["facts"]["helper"]["socket_file"], "missing");
    assert!(has_line(&human, "not-ready", "socket-missing"), "{human}");
}

#[test]
fn a_socket_left_behind_by_a_killed_helper() {
    // Debian's qemu-pr-helper leaves its socket when it is killed (ours has a
    // janitor that removes it).
    let (dir, socket, mut helper) = debian_helper();
    helper.kill().unwrap();
    assert!(
        socket.exists(),
        "SIGKILL leaves qemu-pr-helper's socket file"
    );
    let disk = image(dir.path(), "disk.img");
    let (code, human, json) = check(&socket, &[&disk]);
    assert_eq!(code, 1, "{human}");
    let f = finding(&json, "helper-unreachable");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("Connection refused"),
        "{f}"
    );
    assert!(f["cause"].as_str().unwrap().contains("left it behind"));
    assert_eq!(json["facts"]["helper"]["handshake"], false);
    assert_eq!(json["facts"]["helper"]["socket_file"], "socket");
    let unknown = finding(&json, "helper-process-unknown");
    assert!(
        unknown["summary"]
            .as_str()
            .unwrap()
            .contains("no process listens"),
        "{unknown}"
    );
    assert!(
        has_line(&human, "not-ready", "helper-unreachable"),
        "{human}"
    );
}

#[test]
fn a_socket_closed_to_the_named_user() {
    let (daemon, _state) = emulated_with(&["--socket-mode", "0600"]);
    let disk = image(daemon.dir(), "disk.img");
    // The directory first.
    std::fs::set_permissions(daemon.dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let (code, _, json) = check(daemon.socket(), &["--as", "nobody", &disk]);
    assert_eq!(code, 1);
    let f = finding(&json, "socket-access-denied");
    let summary = f["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("nobody (uid 65534) cannot connect"),
        "{summary}"
    );
    assert!(summary.contains("no search permission on"), "{summary}");
    assert!(f["fix"].as_str().unwrap().contains("chmod o+x"));
    // Then the socket's own mode.
    std::fs::set_permissions(daemon.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, human, json) = check(daemon.socket(), &["--as", "nobody", &disk]);
    assert_eq!(code, 1, "{human}");
    let f = finding(&json, "socket-access-denied");
    let summary = f["summary"].as_str().unwrap();
    assert!(
        summary.contains("no write permission on") && summary.contains("mode 0600, root:root"),
        "{summary}"
    );
    assert!(f["fix"].as_str().unwrap().contains("SocketMode=0660"));
    assert_eq!(json["facts"]["helper"]["mode"], "0600");
    // The caller (root) still may, and the rest of the check ran.
    assert_eq!(finding(&json, "socket-access")["severity"], "ok");
    finding(&json, "helper-read-keys");
    // A user this host does not know.
    let (code, _, json) = check(daemon.socket(), &["--as", "no-such-user-here", &disk]);
    assert_eq!(code, 1);
    assert!(
        finding(&json, "socket-access-denied")["summary"]
            .as_str()
            .unwrap()
            .contains("no user")
    );
}

/// As root, `--as` is also tried for real: a child with the user's uid and
/// groups calls connect(); its answer is reported next to the computed one.
#[test]
fn the_named_user_is_tried_for_real_as_root() {
    let (daemon, _state) = emulated_with(&["--socket-mode", "0600"]);
    let disk = image(daemon.dir(), "disk.img");
    let root = rustix::process::geteuid().is_root();
    let (code, human, json) = check(daemon.socket(), &["--as", "nobody", &disk]);
    assert_eq!(code, 1, "{human}");
    let as_user = &json["facts"]["helper"]["as_user"];
    if !root {
        assert!(as_user.is_null(), "{as_user}");
        return;
    }
    assert_eq!(as_user["computed"], false, "{as_user}");
    assert_eq!(as_user["observed"], "refused", "{as_user}");
    assert!(
        as_user["error"]
            .as_str()
            .unwrap()
            .contains("Permission denied"),
        "{as_user}"
    );
    assert!(
        finding(&json, "socket-access-observed")["summary"]
            .as_str()
            .unwrap()
            .starts_with("nobody (uid 65534) cannot connect to"),
        "{human}"
    );
    // Opened to everyone: both answers say yes, and the check is ready again.
    std::fs::set_permissions(daemon.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, human, json) = check(daemon.socket(), &["--as", "nobody", &disk]);
    assert_eq!(code, 0, "{human}");
    let as_user = &json["facts"]["helper"]["as_user"];
    assert_eq!(as_user["computed"], true, "{as_user}");
    assert_eq!(as_user["observed"], "connected", "{as_user}");
    assert_eq!(finding(&json, "socket-access-observed")["severity"], "ok");
    assert!(has_line(&human, "ok", "socket-access-observed"), "{human}");
}

#[test]
fn an_image_the_helper_does_not_serve() {
    let daemon = Daemon::start(["--no-multipath"]).unwrap();
    let disk = image(daemon.dir(), "disk.img");
    let (code, human, json) = check(daemon.socket(), &[&disk]);
    assert_eq!(code, 1, "{human}");
    let f = finding(&json, "image-not-served");
    assert!(f["fix"].as_str().unwrap().contains("--emulated-state-dir"));
    assert_eq!(json["facts"]["helper"]["process"]["multipath"], false);
    assert!(json["facts"]["helper"]["process"]["emulated_state_dir"].is_null());
}

#[test]
fn debian_qemu_pr_helper_is_recognised() {
    let (dir, socket, mut helper) = debian_helper();
    let disk = image(dir.path(), "disk.img");
    let (code, human, json) = check(&socket, &[&disk]);
    assert_eq!(code, 1, "{human}");
    assert_eq!(
        json["facts"]["helper"]["process"]["program"],
        "qemu-pr-helper"
    );
    assert!(
        finding(&json, "image-not-served")["summary"]
            .as_str()
            .unwrap()
            .contains("qemu-pr-helper")
    );
    // Found through its pid file too.
    let pid_file = dir.path().join("q.pid");
    let (_, _, json) = check(&socket, &["--pid-file", pid_file.to_str().unwrap(), &disk]);
    assert!(
        json["facts"]["helper"]["process"]["found_by"]
            .as_str()
            .unwrap()
            .starts_with("pid file")
    );
    helper.kill().unwrap();
}

#[test]
fn a_loop_device_is_not_a_pr_device() {
    let (daemon, _state) = emulated();
    let device = LoopDevice::attach(1 << 20).expect("a loop device (root and the loop driver)");
    let node = device.path().to_str().unwrap();
    let (code, human, json) = check(daemon.socket(), &[node]);
    assert_eq!(code, 1, "{human}");
    assert_eq!(json["facts"]["device"]["kind"], "loop");
    let f = finding(&json, "not-a-pr-device");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("is a loop device (backing file"),
        "{f}"
    );
    assert!(f["cause"].as_str().unwrap().contains("ENOTTY"));
    assert!(has_line(&human, "not-ready", "not-a-pr-device"), "{human}");
    // --direct: the helper is not looked at.
    let out = prtool(&["--json", "--direct", "check", node]);
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    finding(&json, "helper-not-checked");
    assert_eq!(json["via"], "direct");
    // --write-test refuses.
    let (_, _, json) = check(daemon.socket(), &["--write-test", node]);
    assert_eq!(json["facts"]["write_test"]["ran"], false);
}

#[test]
fn a_partition_is_not_the_disk() {
    let (daemon, _state) = emulated();
    let device = LoopDevice::attach_partitioned(4 << 20).expect("a partitioned loop device");
    let (code, _, json) = check(daemon.socket(), &[device.partition().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(json["facts"]["device"]["kind"], "partition");
    let f = finding(&json, "partition");
    let disk = device
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains(&format!("prtool check /dev/{disk}")),
        "{f}"
    );
}

#[test]
fn a_device_that_does_not_exist() {
    let (daemon, _state) = emulated();
    let (code, human, json) = check(daemon.socket(), &["/dev/no-such-disk"]);
    assert_eq!(code, 1, "{human}");
    assert_eq!(json["facts"]["device"]["kind"], "missing");
    assert!(
        finding(&json, "device-missing")["cause"]
            .as_str()
            .unwrap()
            .contains("No such file")
    );
}

#[test]
fn libvirt_configuration_is_read() {
    let (daemon, _state) = emulated();
    let disk = image(daemon.dir(), "disk.img");
    let conf = daemon.dir().join("qemu.conf");
    std::fs::write(&conf, "# pr_helper = \"/usr/bin/qemu-pr-helper\"\n").unwrap();
    let (_, _, json) = check(
        daemon.socket(),
        &["--libvirt-config", conf.to_str().unwrap(), &disk],
    );
    let f = finding(&json, "libvirt-pr-helper");
    assert_eq!(f["severity"], "note");
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("pr_helper = \"/usr/bin/pr-helper\"")
    );
    std::fs::write(&conf, "pr_helper = \"/usr/bin/pr-helper\"\n").unwrap();
    let (_, _, json) = check(
        daemon.socket(),
        &["--libvirt-config", conf.to_str().unwrap(), &disk],
    );
    assert_eq!(finding(&json, "libvirt-pr-helper")["severity"], "ok");
}

#[test]
fn check_help_documents_the_exit_codes() {
    let out = prtool(&["check", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(help.contains("0 ready, 1 not ready, 2 degraded"), "{help}");
    assert!(help.contains("prtool check /dev/mapper/mpatha"), "{help}");
    assert!(
        help.contains("--write-test") && help.contains("--as <USER>"),
        "{help}"
    );
}

#[test]
fn a_caller_that_is_not_root() {
    let (daemon, _state) = emulated_with(&["--socket-mode", "0666"]);
    std::fs::set_permissions(daemon.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let disk = image(daemon.dir(), "disk.img");
    // A copy of prtool that user nobody may run, wherever the build is.
    let bin_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = bin_dir.path().join("prtool");
    std::fs::copy(env!("CARGO_BIN_EXE_prtool"), &bin).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(&bin)
        .args([
            "--json",
            "--socket",
            daemon.socket().to_str().unwrap(),
            "check",
            &disk,
        ])
        .output()
        .expect("run setpriv (util-linux)");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["verdict"], "ready");
    let access = finding(&json, "socket-access");
    assert!(
        access["summary"]
            .as_str()
            .unwrap()
            .starts_with("nobody (uid 65534) may connect")
    );
    // Other users' descriptors are not readable: the helper's process and the
    // image's openers are unknown, and said so.
    assert!(
        finding(&json, "helper-process-unknown")["summary"]
            .as_str()
            .unwrap()
            .contains("not readable")
    );
    assert!(json["facts"]["device"]["openers"].is_null());
    finding(&json, "helper-read-keys");
}
