//! The daemon's log reaches the journal as structured entries: with `-d`,
//! and under systemd when its standard error is the journal stream
//! (`JOURNAL_STREAM`), every tracing field is a journal field of its own
//! (`PR_` + the name in capitals) beside MESSAGE, PRIORITY and
//! SYSLOG_IDENTIFIER.
//!
//! This machine runs no journald, so the daemon runs in a private mount
//! namespace (`unshare --mount --propagation private`, as root) whose /run
//! is a fresh tmpfs where `/run/systemd/journal/socket` is a symbolic link
//! to a datagram socket this test owns; the test decodes the journal's
//! native protocol itself (`KEY=VALUE` lines, and `KEY`, a 64-bit
//! little-endian length and the bytes for values with newlines). Waits are
//! bounded only to turn a hang into a failure.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pr_testkit::checks::expect_served_with;
use pr_testkit::detached::Detached;
use pr_testkit::wait::{KillOnDrop, has_exited, signal, wait_until};
use rustix::process::Signal;

/// Bounds every wait (a hang guard only).
const HANG_LIMIT: Duration = Duration::from_secs(60);

/// `sh -c SCRIPT sh JOURNAL_SOCKET PROGRAM ARGS...` in the new namespace.
const NAMESPACE_SCRIPT: &str = r#"set -e
mount -t tmpfs -o mode=0755 pr-helper-test-run /run
mkdir -p /run/systemd/journal
ln -s "$1" /run/systemd/journal/socket
shift
exec "$@"
"#;

/// One journal entry: field name to value.
type Entry = HashMap<String, String>;

/// Decodes one datagram of the journal's native protocol.
fn decode_entry(mut bytes: &[u8]) -> Entry {
    let mut entry = Entry::new();
    while !bytes.is_empty() {
        let newline = bytes
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or_else(|| panic!("a field without its newline: {bytes:?}"));
        let line = &bytes[..newline];
        if let Some(equals) = line.iter().position(|&b| b == b'=') {
            let name = String::from_utf8_lossy(&line[..equals]).into_owned();
            let value = String::from_utf8_lossy(&line[equals + 1..]).into_owned();
            entry.insert(name, value);
            bytes = &bytes[newline + 1..];
        } else {
            let name = String::from_utf8_lossy(line).into_owned();
            let rest = &bytes[newline + 1..];
            let length: [u8; 8] = rest[..8].try_into().unwrap();
            let length = usize::try_from(u64::from_le_bytes(length)).unwrap();
            let value = &rest[8..8 + length];
            assert_eq!(rest[8 + length], b'\n', "field {name} not closed");
            entry.insert(name, String::from_utf8_lossy(value).into_owned());
            bytes = &rest[8 + length + 1..];
        }
    }
    entry
}

/// Entries received until one satisfies `last`; all of them.
fn receive_until(journal: &UnixDatagram, last: impl Fn(&Entry) -> bool) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    while !entries.iter().any(&last) {
        match journal.recv(&mut buf) {
            // The layer's probe when it starts: an empty datagram.
            Ok(0) => {}
            Ok(n) => entries.push(decode_entry(&buf[..n])),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                panic!("the awaited journal entry did not come; got {entries:#?}")
            }
            Err(error) => panic!("receiving from the journal socket: {error}"),
        }
    }
    entries
}

fn bind_journal(path: &Path) -> UnixDatagram {
    let journal = UnixDatagram::bind(path).expect("bind the test's journal socket");
    journal.set_read_timeout(Some(HANG_LIMIT)).unwrap();
    journal
}

fn namespace_command(journal_socket: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(NAMESPACE_SCRIPT)
        .arg("sh")
        .arg(journal_socket)
        .arg(env!("CARGO_BIN_EXE_pr-helper"))
        .args(args)
        .stdin(Stdio::null());
    command
}

/// Connects, sends PR IN READ KEYS on /dev/null (answered 0B/00/06 without
/// an ioctl) and disconnects.
fn one_command(socket: &Path) {
    let null = File::open("/dev/null").unwrap();
    expect_served_with(socket, null.as_fd()).expect("one command answered");
}

fn field<'a>(entry: &'a Entry, name: &str) -> &'a str {
    entry
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {entry:#?}"))
}

/// What every entry of ours carries, and the fields of a command and of a
/// closed connection, found by their fields (not by message wording).
fn check_structured(entries: &[Entry]) {
    for entry in entries {
        assert_eq!(field(entry, "SYSLOG_IDENTIFIER"), "pr-helper");
        assert!(
            field(entry, "TARGET").starts_with("pr_helper"),
            "{entry:#?}"
        );
        assert!(!field(entry, "MESSAGE").is_empty());
        let priority: u8 = field(entry, "PRIORITY").parse().unwrap();
        assert!(priority <= 7);
        // No field of ours without the prefix: the journal's own names
        // (and the F_ default of tracing-journald) stay apart.
        for name in entry.keys() {
            assert!(!name.starts_with("F_"), "unprefixed field {name}");
        }
    }
    let command = entries
        .iter()
        .find(|e| e.contains_key("PR_LATENCY_US"))
        .unwrap_or_else(|| panic!("no command entry in {entries:#?}"));
    for name in [
        "PR_CONN",
        "PR_COMMAND",
        "PR_SERVICE_ACTION",
        "PR_STATUS",
        "PR_SENSE",
    ] {
        assert!(!field(command, name).is_empty(), "{name} empty");
    }
    field(command, "PR_LATENCY_US")
        .parse::<u64>()
        .expect("latency in microseconds");
    // Debug (7) or info (6), whichever level the command line is logged at.
    assert!(
        ["6", "7"].contains(&field(command, "PRIORITY")),
        "{command:#?}"
    );
    let closed = entries
        .iter()
        .find(|e| e.contains_key("PR_REASON"))
        .unwrap_or_else(|| panic!("no connection-closed entry in {entries:#?}"));
    assert_eq!(field(closed, "PR_CONN"), field(command, "PR_CONN"));
    // The connection's info-level entries (opened, closed) are priority 6,
    // as in syslog, not the notice (5) tracing-journald maps info to.
    assert!(
        entries
            .iter()
            .any(|e| e.get("PR_CONN") == command.get("PR_CONN") && field(e, "PRIORITY") == "6"),
        "no priority-6 entry of the connection in {entries:#?}"
    );
}

#[test]
fn detached_daemon_logs_structured_entries_to_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let journal_path = dir.path().join("journal.sock");
    let journal = bind_journal(&journal_path);
    let daemon = Detached::start(&mut namespace_command(&journal_path, &["-v"]), dir.path());
    let pid = daemon.pid();

    one_command(daemon.socket());
    let entries = receive_until(&journal, |e| e.contains_key("PR_REASON"));
    check_structured(&entries);
    // The start-up entry names the daemon's pid in a field.
    assert!(
        entries
            .iter()
            .any(|e| e.get("PR_PID").is_some_and(|p| *p == pid.to_string())),
        "no entry with PR_PID={pid}: {entries:#?}"
    );

    daemon.stop();
}

/// A foreground daemon as systemd starts it: stderr is a stream whose
/// device and inode are in JOURNAL_STREAM (or not, with `matching` false).
fn run_foreground(matching: bool) -> (Vec<Entry>, String) {
    let dir = tempfile::tempdir().unwrap();
    let journal_path = dir.path().join("journal.sock");
    let journal = bind_journal(&journal_path);
    let sock = dir.path().join("f.sock");
    let stderr_path = dir.path().join("stderr");
    let stderr = File::create(&stderr_path).unwrap();
    let meta = stderr.metadata().unwrap();
    let inode = if matching {
        meta.ino()
    } else {
        meta.ino().wrapping_add(1)
    };
    let child: Child = namespace_command(&journal_path, &["-v", "-k", sock.to_str().unwrap()])
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), inode))
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("run unshare (util-linux)");
    // unshare and sh exec: the child is the daemon.
    let pid = child.id();
    let _guard = KillOnDrop(pid);
    let mut child = child;
    wait_until("daemon listens", || sock.exists() || has_exited(pid));
    assert!(
        sock.exists(),
        "the daemon did not start: {}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    one_command(&sock);
    let entries = if matching {
        receive_until(&journal, |e| e.contains_key("PR_REASON"))
    } else {
        let text = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
        wait_until("connection closed on stderr", || text().contains("reason"));
        Vec::new()
    };
    signal(pid, Signal::TERM);
    let status = child.wait().unwrap();
    assert!(status.success(), "daemon exit: {status}");
    // The daemon is gone: whatever it sent is queued; take the rest.
    journal.set_nonblocking(true).unwrap();
    let mut rest = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    while let Ok(n) = journal.recv(&mut buf) {
        if n > 0 {
            rest.push(decode_entry(&buf[..n]));
        }
    }
    let mut all = entries;
    all.extend(rest);
    (all, std::fs::read_to_string(&stderr_path).unwrap())
}

#[test]
fn under_systemd_a_journal_stderr_gets_native_entries() {
    let (entries, stderr) = run_foreground(true);
    check_structured(&entries);
    // Nothing of it went to stderr as text as well.
    assert!(!stderr.contains("latency_us"), "also on stderr: {stderr}");
}

#[test]
fn journal_stream_of_another_descriptor_keeps_the_log_on_stderr() {
    let (entries, stderr) = run_foreground(false);
    assert!(entries.is_empty(), "sent to the journal: {entries:#?}");
    assert!(stderr.contains("latency_us"), "not on stderr: {stderr}");
}
