//! Start-up files that a less privileged user may have prepared: the daemon
//! starts as root, so the paths it is given must not lead it to write
//! somewhere else.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Bounds the wait for a start-up that should fail (a hang guard only: a
/// daemon that starts instead is stopped, and the test fails on its output).
const HANG_LIMIT: Duration = Duration::from_secs(30);

fn run(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pr-helper"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pr-helper");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() && started.elapsed() < HANG_LIMIT {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Still running: it started serving. Stop it; its exit status shows it.
    let _ = child.kill();
    child.wait_with_output().expect("output")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// A symbolic link planted at the pid-file path: without `O_NOFOLLOW` root
/// would truncate the link's target and write its pid there.
#[test]
fn a_pid_file_path_that_is_a_symlink_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("not-a-pid-file");
    std::fs::write(&target, "important content\n").expect("write target");
    let pidfile = dir.path().join("helper.pid");
    std::os::unix::fs::symlink(&target, &pidfile).expect("symlink");
    let sock = dir.path().join("helper.sock");

    let output = run(&["-k", path_str(&sock), "-f", path_str(&pidfile)]);

    assert!(!output.status.success(), "started: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is a symbolic link") && stderr.contains("-f PATH"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&target).expect("target"),
        "important content\n"
    );
    assert!(!sock.exists(), "socket bound although start-up failed");
    assert!(
        std::fs::symlink_metadata(&pidfile)
            .expect("link")
            .file_type()
            .is_symlink(),
        "the planted link was replaced"
    );
}
