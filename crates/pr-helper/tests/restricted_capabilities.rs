//! The daemon under the capability limits its systemd units impose, set
//! here with util-linux's `setpriv` (as root): the bounding set of
//! pr-helper.service (CAP_SYS_RAWIO and CAP_SYS_ADMIN only, NO_NEW_PRIVS),
//! and the SG_IO-only drop-in of docs/DEPLOY.md (a user other than root
//! with CAP_SYS_RAWIO as its only, ambient, capability). In both it serves,
//! stops on SIGTERM with status 0 and removes its socket and pid file.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};

use pr_testkit::checks::expect_served_with;
use pr_testkit::wait::wait_until;
use rustix::process::Signal;

/// Runs `setpriv LIMITS pr-helper -k SOCK -f PIDFILE`, sends one command,
/// stops it; returns its stderr.
fn serve_once_under(limits: &[&str], dir: &Path) -> String {
    let sock = dir.join("r.sock");
    let pidfile = dir.join("r.pid");
    let mut child = Command::new("setpriv")
        .args(limits)
        .arg(env!("CARGO_BIN_EXE_pr-helper"))
        .arg("-k")
        .arg(&sock)
        .arg("-f")
        .arg(&pidfile)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run setpriv (util-linux)");
    let pid = child.id();
    wait_until("the daemon listens", || {
        sock.exists() || child.try_wait().ok().flatten().is_some()
    });
    if !sock.exists() {
        let output = child.wait_with_output().unwrap();
        panic!(
            "the daemon did not start ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // READ KEYS on /dev/null: answered 0B/00/06 without an ioctl.
    let null = File::open("/dev/null").unwrap();
    expect_served_with(&sock, null.as_fd()).expect("one command answered");

    // setpriv execs: the child is the daemon.
    let target = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(target, Signal::TERM).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "exit {}: {stderr}", output.status);
    assert!(!sock.exists(), "socket left behind: {stderr}");
    assert!(!pidfile.exists(), "pid file left behind: {stderr}");
    assert!(!stderr.contains("could not remove"), "{stderr}");
    stderr
}

#[test]
fn serves_and_cleans_up_with_the_bounding_set_of_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    serve_once_under(
        &[
            "--bounding-set=-all,+sys_rawio,+sys_admin",
            "--inh-caps=-all",
            "--no-new-privs",
        ],
        dir.path(),
    );
}

#[test]
fn serves_and_cleans_up_as_another_user_with_only_cap_sys_rawio() {
    let dir = tempfile::tempdir().unwrap();
    // The user must be able to create and remove files in its directory.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let stderr = serve_once_under(
        &[
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--inh-caps=-all,+sys_rawio",
            "--ambient-caps=-all,+sys_rawio",
            "--bounding-set=-all,+sys_rawio",
            "--no-new-privs",
        ],
        dir.path(),
    );
    assert!(
        !stderr.contains("CAP_SYS_RAWIO is not available"),
        "the ambient capability did not arrive: {stderr}"
    );
}
