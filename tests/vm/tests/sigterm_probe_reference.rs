//! pr-sigterm-probe against Debian's qemu-pr-helper on the host (/dev/null
//! descriptors): the probe starts the helper, loads it, signals it and
//! prints its accounting. What the reference loses is its business; the
//! probe's own bookkeeping must be complete and consistent.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::process::Command;

#[test]
fn the_probe_accounts_for_every_request() {
    let dir = std::env::temp_dir().join(format!("sigterm-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("helper.sock");
    let pidfile = dir.join("helper.pid");
    let output = Command::new(env!("CARGO_BIN_EXE_pr-sigterm-probe"))
        .arg("--socket")
        .arg(&socket)
        .args([
            "--device",
            "/dev/null",
            "--clients",
            "4",
            "--replies-before-signal",
            "200",
        ])
        .arg("--pidfile")
        .arg(&pidfile)
        .arg("--")
        .arg("/usr/bin/qemu-pr-helper")
        .arg("-k")
        .arg(&socket)
        .arg("-f")
        .arg(&pidfile)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success(),
        "probe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = String::from_utf8(output.stdout).unwrap();
    let fields: HashMap<&str, &str> = line
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let number = |name: &str| -> u64 {
        fields
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from {line}"))
            .parse()
            .unwrap()
    };
    assert_eq!(number("clients"), 4);
    assert!(number("sent_before") >= 200, "{line}");
    assert_eq!(
        number("lost_before"),
        number("sent_before") - number("answered_before"),
        "{line}"
    );
    assert!(number("answered_in_flight") <= number("answered_before"));
    assert!(number("answered_after") <= number("sent_after"));
    assert_eq!(number("failures_before"), 0, "{line}");
    // /dev/null: the reference answers CHECK CONDITION to every request.
    assert_eq!(
        number("not_good"),
        number("answered_before") + number("answered_after"),
        "{line}"
    );
    assert_eq!(fields.get("exit"), Some(&"0"), "{line}");
    assert_eq!(fields.get("socket_removed"), Some(&"yes"), "{line}");
}
